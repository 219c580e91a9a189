//! The change-requests section: open requests with what approving each would change now (or
//! why it is stale), approve and reject for every superuser but the author, withdraw for the
//! author; then the latest decided ones with their steps. The forms work without JavaScript.

use leptos::prelude::*;

use super::api::{change_requests, DecideRequest};
use super::types::{RequestsPage, Section};
use crate::error::AppError;
use crate::policy::change_set::{ChangeRequest, RequestStatus};
use crate::ui::{show_time, ErrorText, FormOutcome};

/// The requests, loaded only while the section is shown. Made by the settings area.
#[derive(Clone, Copy)]
pub struct RequestsData(pub Resource<Result<Option<RequestsPage>, AppError>>);

impl RequestsData {
    pub fn new(shown: Memo<bool>) -> RequestsData {
        RequestsData(Resource::new(
            move || shown.get(),
            |shown| async move {
                if shown {
                    change_requests().await.map(Some)
                } else {
                    Ok(None)
                }
            },
        ))
    }
}

#[component]
pub fn Requests() -> impl IntoView {
    let RequestsData(page) = expect_context::<RequestsData>();
    let decide = ServerAction::<DecideRequest>::new();
    view! {
        <FormOutcome testid="decision-outcome" />
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorText error=e /> }.into_any(),
                    Ok(None) => view! { <p class="loading">"Loading…"</p> }.into_any(),
                    Ok(Some(p)) if p.requests.is_empty() => {
                        view! { <p class="muted" data-testid="requests-empty">"No change requests yet."</p> }.into_any()
                    }
                    Ok(Some(p)) => {
                        let viewer = p.viewer_id;
                        p.requests.into_iter().map(|r| request_view(r, viewer, decide)).collect_view().into_any()
                    }
                }
            })}
        </Transition>
    }
}

fn request_view(r: ChangeRequest, viewer: i64, decide: ServerAction<DecideRequest>) -> impl IntoView {
    let id = r.id;
    let mine = r.author_id == Some(viewer);
    let open = r.status == RequestStatus::Open;
    let changes = match r.preview.clone() {
        Some(Ok(lines)) if lines.is_empty() => {
            view! { <p class="muted">"Approving it would change nothing now: every value is already in force."</p> }
                .into_any()
        }
        Some(Ok(lines)) => view! {
            <ul class="restore__diff" data-testid=format!("request-diff-{id}")>
                {lines.into_iter().map(|l| view! { <li><code>{l.text()}</code></li> }).collect_view()}
            </ul>
        }
        .into_any(),
        Some(Err(why)) => view! {
            <p class="error" role="alert" data-testid=format!("request-stale-{id}")>
                {format!("Cannot be approved as it stands: {why}")}
            </p>
        }
        .into_any(),
        None => view! {
            <ul class="restore__diff">
                {r.changes.iter().map(|c| view! { <li><code>{c.key.clone()}</code></li> }).collect_view()}
            </ul>
        }
        .into_any(),
    };
    let form = move |decision: &'static str, label: &'static str, danger: bool, needs_comment: bool| {
        view! {
            <ActionForm action=decide attr:class="request__decision">
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="decision" value=decision />
                <input type="hidden" name="return_to" value=Section::Requests.href() />
                <label>
                    {if needs_comment { "Comment (required)" } else { "Comment (optional)" }}
                    <input
                        type="text"
                        name="comment"
                        maxlength="500"
                        required=needs_comment
                        data-testid=format!("{decision}-comment-{id}")
                    />
                </label>
                <button
                    type="submit"
                    class=if danger { "button button--danger" } else { "button" }
                    data-testid=format!("{decision}-{id}")
                >
                    {label}
                </button>
            </ActionForm>
        }
    };
    let actions = open.then(|| {
        if mine {
            view! {
                <p class="muted">"You made this request: another superuser decides it."</p>
                {form("withdraw", "Withdraw", true, false)}
            }
            .into_any()
        } else {
            view! {
                {form("approve", "Approve and apply", false, false)}
                {form("reject", "Reject", true, true)}
            }
            .into_any()
        }
    });
    view! {
        <article class="key" data-testid=format!("request-{id}") data-status=r.status.as_str()>
            <header class="key__head">
                <h2 class="key__label">{format!("Change request {id}")}</h2>
                <span class="badge" data-testid=format!("request-status-{id}")>{r.status.as_str()}</span>
            </header>
            <p>
                {format!("{} by {} at ", r.kind.describe(), r.author_email)}
                <time datetime=r.created_at.clone()>{show_time(&r.created_at)}</time>
            </p>
            {r.reason.clone().map(|x| view! { <p class="history__reason">"Reason: " {x}</p> })}
            {changes}
            {actions}
            <details class="history">
                <summary>{format!("Steps ({})", r.events.len())}</summary>
                <ol class="history__rows">
                    {r
                        .events
                        .into_iter()
                        .map(|e| {
                            view! {
                                <li class="history__row">
                                    <span class="history__action">{e.action}</span>
                                    " · "
                                    {e.actor_email}
                                    " · "
                                    <time datetime=e.at.clone()>{show_time(&e.at)}</time>
                                    {e.comment.map(|c| view! { <p class="history__reason">{c}</p> })}
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            </details>
        </article>
    }
}
