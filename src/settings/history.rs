//! A key's audit trail on the page: its history with readable diffs and revert, and a small
//! chart of numeric values over time.

use leptos::prelude::*;
use serde_json::Value as Json;

use super::api::RevertPolicy;
use crate::policy::audit::AuditRow;
use crate::policy::registry::KeySpec;
use crate::policy::value::{canonical_json, truncate, Provider};
use crate::ui::show_time;

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

/// A row's change in words. Rows that record what was in force say so with its layer
/// (`0.3 (default) → 0.55 (admin)`; lists and the provider registry as what was added and
/// removed, then the layers); older rows fall back to the admin values.
pub fn describe_row(row: &AuditRow, inherited: &Json) -> Vec<String> {
    let (Some(a), Some(b), Some(from), Some(to)) =
        (&row.from_effective, &row.to_effective, row.from_source.as_deref(), row.to_source.as_deref())
    else {
        return describe_change(row.from_value.as_ref(), row.to_value.as_ref(), inherited);
    };
    if a == b {
        return vec![format!("{} ({from}) pinned ({to})", show_value(Some(a)))];
    }
    if !inherited.is_array() {
        return vec![format!("{} ({from}) → {} ({to})", show_value(Some(a)), show_value(Some(b)))];
    }
    let mut out = describe_change(Some(a), Some(b), inherited);
    if from != to {
        out.push(format!("{from} → {to}"));
    }
    out
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
                                let change = describe_row(&row, &inherited);
                                let target = show_value(row.to_value.as_ref());
                                let return_to = return_to.clone();
                                view! {
                                    <li class="history__row" data-testid=format!("history-row-{}", row.id)>
                                        <div class="history__meta">
                                            <span class="history__who">{row.actor_email.clone()}</span>
                                            " · "
                                            <time datetime=row.at.clone()>{show_time(&row.at)}</time>
                                            " · "
                                            <span class="history__action">{row.action_label()}</span>
                                        </div>
                                        <ul class="history__change">
                                            {change.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}
                                        </ul>
                                        {row.reason.clone().map(|r| view! { <p class="history__reason">"Reason: " {r}</p> })}
                                        <details class="revert">
                                            <summary data-testid=format!("revert-{}", row.id)>"Revert to this value…"</summary>
                                            <ActionForm action=revert attr:data-done=super::store::draft_item(key)>
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

/// A numeric key's value over time as an inline SVG line, from its audit rows (oldest first):
/// the value in force after each change (an env value after a reset where env sets it); rows
/// from before that was recorded show their admin value, or the default after a reset.
#[component]
pub fn ValueChart(key: &'static str, rows: Vec<AuditRow>, default: Json) -> impl IntoView {
    let mut points: Vec<f64> = rows.iter().rev().map(|r| in_force(&r.to_effective, &r.to_value, &default)).collect();
    if let Some(first) = rows.last() {
        points.insert(0, in_force(&first.from_effective, &first.from_value, &default));
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

fn in_force(effective: &Option<Json>, admin: &Option<Json>, default: &Json) -> f64 {
    effective.as_ref().or(admin.as_ref()).unwrap_or(default).as_f64().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_that_record_what_was_in_force_read_with_their_layers() {
        let row = |from: Json, from_source: &str, to: Json, to_source: &str| {
            serde_json::from_value::<AuditRow>(json!({
                "id": 1, "key": "k", "action": "update", "actor_id": null, "actor_email": "a", "at": "t",
                "from_value": null, "to_value": to.clone(), "reason": null, "policy_revision": 1, "key_version": 1,
                "reverted_audit_id": null, "from_effective": from, "from_source": from_source,
                "to_effective": to, "to_source": to_source
            }))
            .unwrap()
        };
        let n = json!(3);
        assert_eq!(
            describe_row(&row(json!(0.3), "default", json!(0.55), "admin"), &n),
            vec!["0.3 (default) → 0.55 (admin)"]
        );
        assert_eq!(describe_row(&row(json!(42), "env", json!(42), "admin"), &n), vec!["42 (env) pinned (admin)"]);
        let inherited = json!(["pdf", "txt"]);
        assert_eq!(
            describe_row(&row(json!(["pdf", "txt"]), "env", json!(["pdf"]), "admin"), &inherited),
            vec!["removed txt", "env → admin"]
        );
        // A row from before effective values were recorded.
        let old = AuditRow { from_effective: None, ..row(json!(1), "default", json!(7), "admin") };
        assert_eq!(describe_row(&old, &n), vec!["(inherited) → 7"]);
    }

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
