//! Edits staged across categories: the pending list (key, from, to) above every section, and
//! applying them together with one reason as one change set (or one change request when a key
//! needs review). Staging needs JavaScript; every key still saves on its own without it.

use leptos::prelude::*;

use super::types::StagedChange;
use crate::policy::value::truncate;
use crate::ui::FormOutcome;

/// The outcome of applying the staged edits, from the address the form was sent back to (a
/// `notice` that names no key).
#[component]
pub fn AppliedOutcome() -> impl IntoView {
    view! { <FormOutcome testid="pending-outcome" keyless=true /> }
}

/// The staged edits, kept in the tab's store by each key's control, listed with a form that
/// applies them as one change set. The form posts like any other (the navigation script sends
/// it and clears the store once the server accepts it).
#[island]
pub fn StagedEdits(return_to: String) -> impl IntoView {
    use super::api::ApplyChanges;
    use super::store;
    use leptos::server_fn::ServerFn;

    let staged = RwSignal::new(Vec::<StagedChange>::new());
    Effect::new(move |_| staged.set(store::staged()));
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener_untyped(store::STAGED_EVENT, move |_| staged.set(store::staged()));
        on_cleanup(move || handle.remove());
    }
    let row = move |c: StagedChange| {
        let key = c.key.clone();
        view! {
            <tr data-testid=format!("pending-{}", c.key)>
                <th scope="row"><code>{c.key.clone()}</code></th>
                <td><code>{c.from.clone()}</code></td>
                <td><code>{truncate(&c.text, 80)}</code></td>
                <td>
                    <button
                        type="button"
                        class="link-button"
                        aria-label=format!("Unstage {}", c.key)
                        on:click=move |_| {
                            let mut list = store::staged();
                            list.retain(|x| x.key != key);
                            store::set_staged(&list);
                        }
                    >
                        "Unstage"
                    </button>
                </td>
            </tr>
        }
    };
    move || {
        let list = staged.get();
        (!list.is_empty()).then(|| {
            let count = list.len();
            let changes = serde_json::to_string(&list).unwrap_or_default();
            // Once applied, the staged edits and the drafts they came from are done with.
            let done = std::iter::once(store::STAGED.to_string())
                .chain(list.iter().map(|c| store::draft_item(&c.key)))
                .collect::<Vec<_>>()
                .join(" ");
            view! {
                <section class="restore pending" aria-labelledby="pending-title" data-testid="pending">
                    <h2 id="pending-title">{format!("Pending changes ({count})")}</h2>
                    <p class="muted">
                        "Staged edits from any category, applied together as one change set with one reason."
                    </p>
                    <div class="table-wrap">
                        <table class="audit">
                            <thead>
                                <tr>
                                    <th scope="col">"Key"</th>
                                    <th scope="col">"From"</th>
                                    <th scope="col">"To"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                        </table>
                    </div>
                    <form method="post" action=ApplyChanges::url() class="request__decision" data-done=done>
                        <input type="hidden" name="changes" value=changes />
                        <input type="hidden" name="return_to" value=return_to.clone() />
                        <label>
                            "Reason (optional)"
                            <input type="text" name="reason" maxlength="500" data-testid="pending-reason" />
                        </label>
                        <button type="submit" class="button" data-testid="pending-apply">
                            {format!("Apply {count} change(s)")}
                        </button>
                        <button
                            type="button"
                            class="button button--secondary"
                            on:click=move |_| store::set_staged(&[])
                            data-testid="pending-discard"
                        >
                            "Discard all"
                        </button>
                    </form>
                </section>
            }
        })
    }
}
