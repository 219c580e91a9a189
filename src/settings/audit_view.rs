//! The audit views: a key's history with readable diffs and revert, a small chart of numeric
//! values over time, and the global log with filters, paging and export.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde_json::Value as Json;

use super::editor::show_time;
use super::encode_query;
use crate::policy::api::{audit_log, RevertPolicy};
use crate::policy::audit::AuditRow;
use crate::policy::registry::{spec, KeySpec, REGISTRY};
use crate::policy::value::{canonical_json, truncate, Provider};

fn show_value(v: Option<&Json>) -> String {
    v.map(|v| truncate(&canonical_json(v), 60)).unwrap_or_else(|| "(inherited)".to_string())
}

fn strings(v: Option<&Json>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(|x| x.as_str().map(str::to_string)).collect()
}

fn providers(v: Option<&Json>) -> Option<Vec<Provider>> {
    serde_json::from_value(v?.clone()).ok()
}

/// A change in words: `a → b` for scalars; what was added and removed for lists and for the
/// provider registry, where a missing admin value stands for `inherited` (the default).
pub fn describe_change(from: Option<&Json>, to: Option<&Json>, inherited: &Json) -> Vec<String> {
    let structured = inherited.is_array();
    let (from, to) = if structured { (from.or(Some(inherited)), to.or(Some(inherited))) } else { (from, to) };
    if let (Some(a), Some(b)) = (providers(from), providers(to)) {
        let mut out = Vec::new();
        for p in &b {
            match a.iter().find(|q| q.id == p.id) {
                None => out.push(format!("added provider {} ({})", p.id, p.models.join(", "))),
                Some(q) => {
                    if q.enabled != p.enabled {
                        out.push(format!("{} {}", if p.enabled { "enabled" } else { "disabled" }, p.id));
                    }
                    if q.label != p.label {
                        out.push(format!("renamed {} to \"{}\"", p.id, p.label));
                    }
                    let added: Vec<_> = p.models.iter().filter(|m| !q.models.contains(m)).cloned().collect();
                    let removed: Vec<_> = q.models.iter().filter(|m| !p.models.contains(m)).cloned().collect();
                    if !added.is_empty() {
                        out.push(format!("{}: added {}", p.id, added.join(", ")));
                    }
                    if !removed.is_empty() {
                        out.push(format!("{}: removed {}", p.id, removed.join(", ")));
                    }
                }
            }
        }
        for q in &a {
            if !b.iter().any(|p| p.id == q.id) {
                out.push(format!("removed provider {}", q.id));
            }
        }
        if out.is_empty() {
            out.push("reordered providers".into());
        }
        return out;
    }
    if let (Some(a), Some(b)) = (strings(from), strings(to)) {
        let added: Vec<_> = b.iter().filter(|x| !a.contains(x)).cloned().collect();
        let removed: Vec<_> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
        let mut out = Vec::new();
        if !added.is_empty() {
            out.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            out.push(format!("removed {}", removed.join(", ")));
        }
        if out.is_empty() {
            out.push("reordered".into());
        }
        return out;
    }
    vec![format!("{} → {}", show_value(from), show_value(to))]
}

/// A key's recent history, newest first, each row with a confirmed revert.
#[component]
pub fn HistoryList(
    spec: &'static KeySpec,
    rows: Vec<AuditRow>,
    version: i64,
    revert: ServerAction<RevertPolicy>,
    return_to: String,
) -> impl IntoView {
    let key = spec.key;
    let count = rows.len();
    let inherited = spec.default_value().to_json();
    view! {
        <details class="history" open={count > 0} data-testid=format!("history-{key}")>
            <summary>{format!("History ({count})")}</summary>
            {if rows.is_empty() {
                view! { <p class="muted">"No changes yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="history__rows">
                        {rows
                            .into_iter()
                            .map(|row| {
                                let change = describe_change(row.from_value.as_ref(), row.to_value.as_ref(), &inherited);
                                let target = show_value(row.to_value.as_ref());
                                let return_to = return_to.clone();
                                view! {
                                    <li class="history__row" data-testid=format!("history-row-{}", row.id)>
                                        <div class="history__meta">
                                            <span class="history__who">{row.actor_email.clone()}</span>
                                            " · "
                                            <time datetime=row.at.clone()>{show_time(&row.at)}</time>
                                            " · "
                                            <span class="history__action">{row.action.clone()}</span>
                                        </div>
                                        <ul class="history__change">
                                            {change.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}
                                        </ul>
                                        {row.reason.clone().map(|r| view! { <p class="history__reason">"Reason: " {r}</p> })}
                                        <details class="revert">
                                            <summary data-testid=format!("revert-{}", row.id)>"Revert to this value…"</summary>
                                            <ActionForm action=revert>
                                                <input type="hidden" name="key" value=key />
                                                <input type="hidden" name="audit_id" value=row.id />
                                                <input type="hidden" name="expected_version" value=version />
                                                <input type="hidden" name="return_to" value=return_to />
                                                <p>
                                                    "Set " <code>{key}</code> " back to " <code>{target}</code> "?"
                                                </p>
                                                <button
                                                    type="submit"
                                                    class="button button--danger"
                                                    data-testid=format!("revert-confirm-{}", row.id)
                                                >
                                                    "Confirm revert"
                                                </button>
                                            </ActionForm>
                                        </details>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                }
                    .into_any()
            }}
        </details>
    }
}

/// A numeric key's value over time as an inline SVG line, from its audit rows (oldest first);
/// a reset shows the default.
#[component]
pub fn ValueChart(key: &'static str, rows: Vec<AuditRow>, default: Json) -> impl IntoView {
    let mut points: Vec<f64> = rows
        .iter()
        .rev()
        .map(|r| r.to_value.as_ref().unwrap_or(&default).as_f64().unwrap_or(0.0))
        .collect();
    if let Some(first) = rows.last() {
        points.insert(0, first.from_value.as_ref().unwrap_or(&default).as_f64().unwrap_or(0.0));
    }
    (points.len() >= 2).then(|| {
        let (w, h, pad) = (240.0, 56.0, 4.0);
        let min = points.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = points.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let span = if max > min { max - min } else { 1.0 };
        let step = (w - 2.0 * pad) / (points.len() - 1) as f64;
        let coords: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .map(|(i, v)| (pad + i as f64 * step, h - pad - (v - min) / span * (h - 2.0 * pad)))
            .collect();
        let line = coords.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
        let label = format!(
            "{key} over its last {} changes: from {} to {}, range {} to {}",
            points.len() - 1,
            points[0],
            points[points.len() - 1],
            min,
            max
        );
        view! {
            <figure class="chart" data-testid=format!("chart-{key}")>
                <svg viewBox=format!("0 0 {w} {h}") width=w height=h role="img" aria-label=label.clone()>
                    <title>{label.clone()}</title>
                    <polyline points=line fill="none" stroke="currentColor" stroke-width="2" />
                    {coords
                        .iter()
                        .map(|(x, y)| view! { <circle cx=format!("{x:.1}") cy=format!("{y:.1}") r="2.5" /> })
                        .collect_view()}
                </svg>
                <figcaption>{format!("Value over time: {} → {}", points[0], points[points.len() - 1])}</figcaption>
            </figure>
        }
    })
}

/// The global audit log: filters in the address (so a filtered view is a link), paging by id,
/// and downloads of the filtered rows.
#[component]
pub fn AuditLog() -> impl IntoView {
    let query = use_query_map();
    let field = move |name: &str| query.read().get(name).filter(|v| !v.is_empty());
    let page = Resource::new(
        move || {
            (
                field("key"),
                field("actor"),
                field("from"),
                field("to"),
                field("before").and_then(|b| b.parse::<i64>().ok()),
            )
        },
        |(key, actor, from, to, before)| audit_log(key, actor, from, to, before),
    );
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
        format!("{}?{q}{sep}before={before}", super::Category::Audit.href())
    };

    view! {
        <Form method="GET" action=super::Category::Audit.href() attr:class="audit-filters">
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
            <a href=move || format!("/api/v1/audit/export.csv?{}", export_query()) download data-testid="export-csv" rel="external">"CSV"</a>
            " · "
            <a href=move || format!("/api/v1/audit/export.json?{}", export_query()) download data-testid="export-json" rel="external">"JSON"</a>
        </p>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(p) if p.error.is_some() => view! {
                        <p class="error" role="alert" data-testid="audit-error">{p.error.unwrap_or_default()}</p>
                    }
                    .into_any(),
                    Ok(p) if p.rows.is_empty() => view! { <p class="muted" data-testid="audit-empty">"No changes match."</p> }.into_any(),
                    Ok(p) => view! {
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
                                            let change = describe_change(r.from_value.as_ref(), r.to_value.as_ref(), &inherited).join("; ");
                                            view! {
                                                <tr data-testid="audit-row">
                                                    <td><time datetime=r.at.clone()>{show_time(&r.at)}</time></td>
                                                    <td>{r.actor_email}</td>
                                                    <td><a href=super::key_href(&r.key)><code>{r.key.clone()}</code></a></td>
                                                    <td>{format!("{}: {change}", r.action)}</td>
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_read_as_added_and_removed() {
        let n = json!(3);
        assert_eq!(describe_change(Some(&json!(3)), Some(&json!(7)), &n), vec!["3 → 7"]);
        assert_eq!(describe_change(Some(&json!(7)), None, &n), vec!["7 → (inherited)"]);
        let inherited = json!(["pdf", "txt"]);
        assert_eq!(
            describe_change(Some(&json!(["pdf", "txt"])), Some(&json!(["pdf", "md"])), &inherited),
            vec!["added md", "removed txt"]
        );
        assert_eq!(describe_change(None, Some(&json!(["pdf"])), &inherited), vec!["removed txt"]);
        let a = json!([{"id": "a", "label": "A", "enabled": true, "models": ["m1"]}]);
        let b = json!([
            {"id": "a", "label": "A", "enabled": false, "models": ["m1", "m2"]},
            {"id": "b", "label": "B", "enabled": true, "models": ["x"]}
        ]);
        assert_eq!(describe_change(Some(&a), Some(&b), &a), vec!["disabled a", "a: added m2", "added provider b (x)"]);
        assert_eq!(describe_change(Some(&b), None, &a), vec!["enabled a", "a: removed m2", "removed provider b"]);
    }
}
