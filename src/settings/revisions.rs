//! The revisions section: every policy revision (who, when, why, which keys), each openable to
//! the whole policy as it stood then, compared with today or another revision; a run's snapshot
//! the same way (`?run=ID`). Restoring shows its diff first and applies it as one change set;
//! the forms work without JavaScript.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use super::api::{policy_revisions, RestorePolicy};
use super::types::{Comparison, PolicySide, RevisionsPage, Section};
use crate::error::AppError;
use crate::ui::{show_time, ErrorText, FormOutcome};

/// The revisions page for the address's `rev`, `run`, `with` and `before`, loaded only while
/// the section is shown. Made by the settings area, above the views built more than once.
#[derive(Clone, Copy)]
pub struct RevisionsData(pub Resource<Result<Option<RevisionsPage>, AppError>>);

impl RevisionsData {
    pub fn new(shown: Memo<bool>) -> RevisionsData {
        let query = use_query_map();
        let number = move |name: &str| query.read().get(name).and_then(|v| v.trim().parse::<i64>().ok());
        RevisionsData(Resource::new(
            move || shown.get().then(|| (number("rev"), number("run"), number("with"), number("before"))),
            |args| async move {
                match args {
                    Some((rev, run, with, before)) => policy_revisions(rev, run, with, before).await.map(Some),
                    None => Ok(None),
                }
            },
        ))
    }
}

fn open_href(side: PolicySide) -> String {
    let base = Section::Revisions.href();
    match side {
        PolicySide::Revision(n) => format!("{base}?rev={n}"),
        PolicySide::Run(r) => format!("{base}?run={r}"),
        PolicySide::Today => base,
    }
}

#[component]
pub fn Revisions() -> impl IntoView {
    let RevisionsData(page) = expect_context::<RevisionsData>();
    let restore = ServerAction::<RestorePolicy>::new();

    view! {
        <FormOutcome testid="restore-outcome" />
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorText error=e /> }.into_any(),
                    Ok(None) => view! { <p class="loading">"Loading…"</p> }.into_any(),
                    Ok(Some(p)) => revisions_view(p, restore).into_any(),
                }
            })}
        </Transition>
    }
}

fn revisions_view(p: RevisionsPage, restore: ServerAction<RestorePolicy>) -> impl IntoView {
    let error = p.error.clone().map(|e| view! { <p class="error" role="alert" data-testid="revisions-error">{e}</p> });
    let choices: Vec<i64> = p.revisions.iter().map(|r| r.revision).collect();
    let comparison = p.comparison.clone().map(|c| comparison_view(c, p.current, choices, restore));
    let older = p.older.map(|before| {
        view! {
            <p>
                <a href=format!("{}?before={before}", Section::Revisions.href()) data-testid="revisions-older">
                    "Older revisions"
                </a>
            </p>
        }
    });
    let list = if p.revisions.is_empty() {
        view! { <p class="muted" data-testid="revisions-empty">"No revisions yet: the policy has never been changed."</p> }
            .into_any()
    } else {
        view! {
            <div class="table-wrap">
                <table class="audit" data-testid="revisions-table">
                    <caption class="visually-hidden">"Policy revisions, newest first"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Revision"</th>
                            <th scope="col">"When"</th>
                            <th scope="col">"Who"</th>
                            <th scope="col">"What"</th>
                            <th scope="col">"Keys changed"</th>
                            <th scope="col">"Reason"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {p
                            .revisions
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <tr data-testid=format!("revision-{}", r.revision)>
                                        <td>
                                            <a
                                                href=open_href(PolicySide::Revision(r.revision))
                                                data-testid=format!("open-revision-{}", r.revision)
                                            >
                                                {format!("Open revision {}", r.revision)}
                                            </a>
                                        </td>
                                        <td><time datetime=r.at.clone()>{show_time(&r.at)}</time></td>
                                        <td>{r.actor_email.clone()}</td>
                                        <td>{r.what()}</td>
                                        <td>{r.keys.join(", ")}</td>
                                        <td>{r.reason.clone().unwrap_or_default()}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        }
        .into_any()
    };
    view! {
        {error}
        {comparison}
        <h2>"All revisions"</h2>
        <p class="muted">{format!("The policy is at revision {} now.", p.current)}</p>
        {list}
        {older}
    }
}

fn comparison_view(
    c: Comparison,
    current: i64,
    choices: Vec<i64>,
    restore: ServerAction<RestorePolicy>,
) -> impl IntoView {
    let (left, right) = (c.left.label(), c.right.label());
    let differing = c.lines.iter().filter(|l| l.differs).count();
    let (rev, run) = match c.left {
        PolicySide::Revision(n) => (Some(n), None),
        PolicySide::Run(r) => (None, Some(r)),
        PolicySide::Today => (None, None),
    };
    let with = match c.right {
        PolicySide::Revision(n) => Some(n),
        _ => None,
    };
    let restore_view = c.restore.clone().map(|r| {
        let left = left.clone();
        match r {
        Err(m) => view! { <p class="error" role="alert" data-testid="restore-refused">{format!("Cannot restore {left}: {m}")}</p> }
            .into_any(),
        Ok(lines) if lines.is_empty() => {
            view! { <p class="muted" data-testid="restore-none">{format!("{left} is the policy in force: nothing to restore.")}</p> }
                .into_any()
        }
        Ok(lines) => {
            let count = lines.len();
            view! {
                <section class="restore" aria-labelledby="restore-title" data-testid="restore">
                    <h3 id="restore-title">{format!("Restore {left}")}</h3>
                    <p>{format!("Restoring changes {count} key(s), as one new change set:")}</p>
                    <ul class="restore__diff" data-testid="restore-diff">
                        {lines.into_iter().map(|l| view! { <li><code>{l.text()}</code></li> }).collect_view()}
                    </ul>
                    <ActionForm action=restore>
                        {rev.map(|n| view! { <input type="hidden" name="revision" value=n /> })}
                        {run.map(|r| view! { <input type="hidden" name="run" value=r /> })}
                        <input type="hidden" name="shown_revision" value=current />
                        <input type="hidden" name="return_to" value=Section::Revisions.href() />
                        <label>
                            "Reason (optional)"
                            <input type="text" name="reason" maxlength="500" data-testid="restore-reason" />
                        </label>
                        <button type="submit" class="button button--danger" data-testid="restore-confirm">
                            {format!("Restore {left}")}
                        </button>
                    </ActionForm>
                </section>
            }
                .into_any()
        }
    }});
    view! {
        <section class="comparison" aria-labelledby="comparison-title" data-testid="comparison">
            <h2 id="comparison-title">{format!("{left} compared with {right}")}</h2>
            <Form method="GET" action=Section::Revisions.href() attr:class="audit-filters">
                {rev.map(|n| view! { <input type="hidden" name="rev" value=n /> })}
                {run.map(|r| view! { <input type="hidden" name="run" value=r /> })}
                <label>
                    "Compare with"
                    <select name="with" data-testid="compare-with">
                        <option value="" selected=with.is_none()>"Today's policy"</option>
                        {choices
                            .into_iter()
                            .map(|n| view! { <option value=n selected=with == Some(n)>{format!("Revision {n}")}</option> })
                            .collect_view()}
                    </select>
                </label>
                <button type="submit" class="button" data-testid="compare-apply">"Compare"</button>
            </Form>
            <p data-testid="compare-summary">
                {if differing == 0 {
                    "Every key is the same on both sides.".to_string()
                } else {
                    format!("{differing} key(s) differ.")
                }}
            </p>
            <div class="table-wrap">
                <table class="audit" data-testid="compare-table">
                    <thead>
                        <tr>
                            <th scope="col">"Key"</th>
                            <th scope="col">{left.clone()}</th>
                            <th scope="col">{right.clone()}</th>
                            <th scope="col">"Differs"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {c
                            .lines
                            .into_iter()
                            .map(|l| {
                                view! {
                                    <tr
                                        class:differs=l.differs
                                        data-testid=format!("compare-{}", l.key)
                                        data-differs=l.differs.to_string()
                                    >
                                        <th scope="row"><code>{l.key.clone()}</code></th>
                                        <td><code>{l.left}</code></td>
                                        <td><code>{l.right}</code></td>
                                        <td>{if l.differs { "yes" } else { "" }}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
            {restore_view}
            <p><a href=Section::Revisions.href()>"Close"</a></p>
        </section>
    }
}
