//! The global audit log: filters in the address (so a filtered view is a link), paging by id,
//! and downloads of the filtered rows.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde_json::Value as Json;

use super::api::audit_log;
use super::history::describe_row;
use super::types::{key_href, AuditPage, Section};
use crate::error::AppError;
use crate::paths::{encode_query, AUDIT_EXPORT_CSV, AUDIT_EXPORT_JSON};
use crate::policy::registry::{spec, REGISTRY};
use crate::ui::{show_time, ErrorText};

/// The audit rows for the filters in the address, loaded only while the audit section is shown.
/// Made by the settings area, above the views that are built more than once per render.
#[derive(Clone, Copy)]
pub struct AuditRows(Resource<Result<Option<AuditPage>, AppError>>);

impl AuditRows {
    pub fn new(shown: Memo<bool>) -> AuditRows {
        let query = use_query_map();
        let field = move |name: &str| query.read().get(name).filter(|v| !v.is_empty());
        AuditRows(Resource::new(
            move || {
                shown.get().then(|| {
                    (
                        field("key"),
                        field("actor"),
                        field("from"),
                        field("to"),
                        field("before").and_then(|b| b.parse::<i64>().ok()),
                    )
                })
            },
            |filters| async move {
                match filters {
                    Some((key, actor, from, to, before)) => audit_log(key, actor, from, to, before).await.map(Some),
                    None => Ok(None),
                }
            },
        ))
    }
}

/// The global audit log, with its filters, paging and downloads.
#[component]
pub fn AuditLog() -> impl IntoView {
    let query = use_query_map();
    let field = move |name: &str| query.read().get(name).filter(|v| !v.is_empty());
    let AuditRows(page) = expect_context::<AuditRows>();
    let export_query = move || {
        ["key", "actor", "from", "to"]
            .into_iter()
            .filter_map(|n| field(n).map(|v| format!("{n}={}", encode_query(&v))))
            .collect::<Vec<_>>()
            .join("&")
    };
    let page_link = move |before: i64| {
        let q = export_query();
        let sep = if q.is_empty() { "" } else { "&" };
        format!("{}?{q}{sep}before={before}", Section::Audit.href())
    };

    view! {
        <Form method="GET" action=Section::Audit.href() attr:class="audit-filters">
            <label>
                "Key"
                <select name="key" data-testid="filter-key">
                    <option value="" selected=move || field("key").is_none()>"All keys"</option>
                    {REGISTRY
                        .iter()
                        .map(|s| {
                            view! {
                                <option value=s.key selected=move || field("key").as_deref() == Some(s.key)>
                                    {s.key}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "Actor"
                <input type="text" name="actor" placeholder="email or cli:user" value=move || field("actor").unwrap_or_default() data-testid="filter-actor" />
            </label>
            <label>
                "From"
                <input type="date" name="from" value=move || field("from").unwrap_or_default() data-testid="filter-from" />
            </label>
            <label>
                "Until (exclusive)"
                <input type="date" name="to" value=move || field("to").unwrap_or_default() data-testid="filter-to" />
            </label>
            <button type="submit" class="button" data-testid="filter-apply">"Apply filters"</button>
        </Form>
        <p class="exports">
            "Download these rows: "
            <a href=move || format!("{AUDIT_EXPORT_CSV}?{}", export_query()) download data-testid="export-csv" rel="external">"CSV"</a>
            " · "
            <a href=move || format!("{AUDIT_EXPORT_JSON}?{}", export_query()) download data-testid="export-json" rel="external">"JSON"</a>
        </p>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorText error=e /> }.into_any(),
                    Ok(None) => view! { <p class="loading">"Loading…"</p> }.into_any(),
                    Ok(Some(p)) if p.error.is_some() => view! {
                        <p class="error" role="alert" data-testid="audit-error">{p.error.unwrap_or_default()}</p>
                    }
                    .into_any(),
                    Ok(Some(p)) if p.rows.is_empty() => view! { <p class="muted" data-testid="audit-empty">"No changes match."</p> }.into_any(),
                    Ok(Some(p)) => view! {
                        <div class="table-wrap">
                            <table class="audit" data-testid="audit-table">
                                <thead>
                                    <tr>
                                        <th scope="col">"When"</th>
                                        <th scope="col">"Who"</th>
                                        <th scope="col">"Key"</th>
                                        <th scope="col">"Change"</th>
                                        <th scope="col">"Reason"</th>
                                        <th scope="col">"Revision"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {p.rows
                                        .into_iter()
                                        .map(|r| {
                                            let inherited = spec(&r.key).map(|s| s.default_value().to_json()).unwrap_or(Json::Null);
                                            let change = describe_row(&r, &inherited).join("; ");
                                            let action = r.action_label();
                                            view! {
                                                <tr data-testid="audit-row">
                                                    <td><time datetime=r.at.clone()>{show_time(&r.at)}</time></td>
                                                    <td>{r.actor_email}</td>
                                                    <td><a href=key_href(&r.key)><code>{r.key.clone()}</code></a></td>
                                                    <td>{format!("{action}: {change}")}</td>
                                                    <td>{r.reason.unwrap_or_default()}</td>
                                                    <td>{r.policy_revision}</td>
                                                </tr>
                                            }
                                        })
                                        .collect_view()}
                                </tbody>
                            </table>
                        </div>
                        {p.older.map(|before| view! {
                            <p class="pager">
                                <a href=page_link(before) data-testid="audit-older">"Older entries →"</a>
                            </p>
                        })}
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}
