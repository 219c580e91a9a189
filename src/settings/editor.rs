//! One key's editor: its control, provenance, layers, history, and the save, reset and revert
//! forms.

use leptos::prelude::*;

use super::api::{PinPolicy, ResetPolicy, RevertPolicy, SavePolicy};
use super::controls::{draft_text, error_id, ControlSpec, KeyControl};
use super::history::{HistoryList, ValueChart};
use super::store::draft_item;
use super::types::{SaveOutcome, Section};
use crate::paths::key_anchor;
use crate::policy::audit::{AuditRow, Conflict};
use crate::policy::registry::{spec, KeySpec, Kind, Layer};
use crate::policy::resolve::Resolved;
use crate::policy::value::{canonical_json, truncate};
use crate::ui::show_time;

/// One key's editor, rendered on the server: every form posts as it is (the navigation script
/// sends it and swaps in the page it is sent back to, with the outcome in its address). Only
/// the control is an island ([`KeyControl`]).
#[component]
pub fn KeyEditor(
    spec: &'static KeySpec,
    resolved: Resolved,
    history: Vec<AuditRow>,
    parent_on: Option<bool>,
    choices: Vec<String>,
    focused: bool,
    notice: Option<(String, String)>,
) -> impl IntoView {
    let key = spec.key;
    let initial = draft_text(spec, &resolved.value);
    let disabled = parent_on == Some(false);

    // The actions name the forms' server functions; the forms post without JavaScript.
    let save = ServerAction::<SavePolicy>::new();
    let reset = ServerAction::<ResetPolicy>::new();
    let revert = ServerAction::<RevertPolicy>::new();
    let pin = ServerAction::<PinPolicy>::new();

    let version = resolved.admin_version;
    let return_to = Section::Keys(spec.category).href();
    let return_to_save = return_to.clone();
    let return_to_reset = return_to.clone();
    let return_to_pin = return_to.clone();
    let resolved_source = resolved.source.as_str();
    let has_admin = resolved.layer(Layer::Admin).is_some();
    let env_var = spec.env_var();
    let layers = resolved.layers.clone();
    let warnings = resolved.warnings.clone();
    let provenance = resolved.provenance_short();
    let stage_from = provenance.clone();
    // The save of this key was just refused for a conflict, which this page shows.
    let conflicted = notice.as_ref().is_some_and(|(n, _)| n == "conflict");
    let changed = resolved
        .updated_by
        .clone()
        .map(|by| (by, resolved.updated_at.clone().map(|t| show_time(&t)).unwrap_or_default()));
    // A save refused for a conflict and sent back without JavaScript: who changed the key, when,
    // and to what, as this page now reads it.
    let conflict_now = resolved.updated_by.clone().map(|changed_by| Conflict {
        key: key.to_string(),
        expected_version: 0,
        current_version: version,
        changed_by,
        changed_at: resolved.updated_at.clone().unwrap_or_default(),
        current_value: resolved.layer(Layer::Admin).and_then(|l| l.value.clone()),
    });
    let numeric = matches!(spec.kind, Kind::Int { .. } | Kind::Decimal { .. });
    let default_json = spec.default_value().to_json();
    let testid = move |part: &str| format!("{part}-{key}");

    view! {
        <article
            class="key"
            class:key--focused=focused
            id=key_anchor(key)
            data-testid=testid("key")
        >
            <header class="key__head">
                <h2 class="key__label">{spec.label}</h2>
                <code class="key__name">{key}</code>
                {spec
                    .needs_review()
                    .then(|| {
                        view! {
                            <span
                                class="badge badge--review"
                                title="Saving opens a change request; another superuser approves or rejects it."
                                data-testid=testid("review")
                            >
                                "Needs a second superuser"
                            </span>
                        }
                    })}
            </header>
            <p class="key__help">
                {spec.scope} " " <span class="key__nonscope">"Not covered: " {spec.non_scope}</span>
            </p>
            <p class="key__snapshot" data-testid=testid("snapshot-note")>{spec.snapshot}</p>
            <p class="provenance" data-testid=testid("provenance")>
                <code>{provenance}</code>
            </p>
            <dl class="layers" data-testid=testid("layers")>
                {[Layer::Default, Layer::Env, Layer::Admin]
                    .into_iter()
                    .map(|layer| {
                        let lv = layers.iter().find(|l| l.layer == layer);
                        let name = match layer {
                            Layer::Env => format!("env ({env_var})"),
                            other => other.as_str().to_string(),
                        };
                        let shown = lv
                            .and_then(|l| l.value.as_ref())
                            .map(|v| truncate(&canonical_json(v), 60))
                            .unwrap_or_else(|| "not set".to_string());
                        let skipped = lv.is_some_and(|l| l.error.is_some());
                        view! {
                            <div class="layers__row" class:layers__row--skipped=skipped>
                                <dt>{name}</dt>
                                <dd data-testid=format!("layer-{}-{key}", layer.as_str())>{shown}</dd>
                            </div>
                        }
                    })
                    .collect_view()}
            </dl>
            {(!warnings.is_empty())
                .then(|| {
                    view! {
                        <ul class="warnings" data-testid=testid("warnings")>
                            {warnings.iter().map(|w| view! { <li>{w.clone()}</li> }).collect_view()}
                        </ul>
                    }
                })}
            <p class="key__changed">
                {match changed {
                    Some((by, at)) => format!("Last changed by {by} at {at} (version {version})"),
                    None => "Never changed by a superuser".to_string(),
                }}
            </p>
            {spec
                .depends_on
                .filter(|_| disabled)
                .map(|dep| {
                    view! {
                        <p class="key__note" data-testid=testid("dependency-note")>
                            {dep.note} " Turn on " <code>{dep.key}</code> " to change it."
                        </p>
                    }
                })}
            <ActionForm action=save attr:class="key__form" attr:novalidate=true attr:data-done=draft_item(key)>
                <input type="hidden" name="key" value=key />
                <input type="hidden" name="return_to" value=return_to_save />
                <KeyControl
                    spec=ControlSpec::of(spec, choices)
                    initial=initial.clone()
                    disabled=disabled
                    version=version
                    from=stage_from
                    rebase=conflicted
                />
                <div class="key__actions">
                    <label class="reason">
                        <span>"Reason for " {spec.label} " (optional)"</span>
                        <input
                            type="text"
                            name="reason"
                            maxlength="500"
                            placeholder="Why this change?"
                            disabled=disabled
                            data-testid=testid("reason")
                        />
                    </label>
                    <button type="submit" class="button" disabled=disabled data-testid=testid("save")>
                        "Save"
                    </button>
                </div>
            </ActionForm>
            <div class="key__outcome" id=error_id(key)>
                {
                    notice.map(|(n, m)| match n.as_str() {
                        "saved" => Ok(SaveOutcome::Saved { key: key.to_string(), version: 0 }),
                        "unchanged" => Ok(SaveOutcome::Unchanged { key: key.to_string() }),
                        "requested" => Ok(SaveOutcome::Requested { key: key.to_string(), id: m.parse().unwrap_or(0) }),
                        // Told in full from the value in force now, which this page shows.
                        "conflict" => conflict_now.clone().map(SaveOutcome::Conflict).ok_or(m),
                        _ => Err(m),
                    })
                    .map(|o| outcome_view(key, o))
                }
            </div>
            {has_admin
                .then({
                    let return_to = return_to_reset;
                    move || {
                    view! {
                        <ActionForm action=reset attr:class="key__reset" attr:data-done=draft_item(key)>
                            <input type="hidden" name="key" value=key />
                            <input type="hidden" name="expected_version" value=version />
                            <input type="hidden" name="return_to" value=return_to.clone() />
                            <button type="submit" class="button button--secondary" data-testid=testid("reset")>
                                "Reset to inherited value"
                            </button>
                        </ActionForm>
                    }
                }})}
            {(!has_admin)
                .then({
                    let return_to = return_to_pin;
                    let source = resolved_source;
                    move || {
                    view! {
                        <ActionForm action=pin attr:class="key__reset" attr:data-done=draft_item(key)>
                            <input type="hidden" name="key" value=key />
                            <input type="hidden" name="expected_version" value=version />
                            <input type="hidden" name="return_to" value=return_to.clone() />
                            <button
                                type="submit"
                                class="button button--secondary"
                                title=format!("Keep today's value at the admin layer, so a change to the {source} layer cannot move it")
                                data-testid=testid("pin")
                            >
                                {format!("Pin the {source} value")}
                            </button>
                        </ActionForm>
                    }
                }})}
            {numeric.then(|| view! { <ValueChart key=key rows=history.clone() default=default_json.clone() /> })}
            <HistoryList spec=spec rows=history version=version revert=revert return_to=return_to />
        </article>
    }
}

/// The outcome of a form of this key, as its address tells it.
fn outcome_view(key: &'static str, o: Result<SaveOutcome, String>) -> AnyView {
    let testid = format!("outcome-{key}");
    match o {
        Ok(SaveOutcome::Saved { .. }) => view! {
            <p class="outcome outcome--ok" role="status" data-testid=testid>"Saved."</p>
        }
        .into_any(),
        Ok(SaveOutcome::Unchanged { .. }) => view! {
            <p class="outcome outcome--info" role="status" data-testid=testid>
                "Unchanged: that value is already in force."
            </p>
        }
        .into_any(),
        Ok(SaveOutcome::Requested { id, .. }) => view! {
            <p class="outcome outcome--info" role="status" data-testid=testid>
                {format!("Change request {id} opened: this key needs a second superuser. ")}
                <a href=Section::Requests.href() data-testid=format!("request-link-{key}")>"See change requests"</a>
                "."
            </p>
        }
        .into_any(),
        Ok(SaveOutcome::Invalid { message, .. }) | Err(message) => view! {
            <p class="outcome outcome--error field-error" role="alert" data-testid=testid>{message}</p>
        }
        .into_any(),
        Ok(SaveOutcome::Conflict(c)) => {
            let theirs = c
                .current_value
                .as_ref()
                .map(|v| truncate(&canonical_json(v), 120))
                .unwrap_or_else(|| "the inherited value (reset)".to_string());
            // Reloading follows a link to the key; the draft stays in the tab's store.
            let href = spec(key).map(|s| s.href()).unwrap_or_default();
            view! {
                <div class="outcome outcome--conflict" role="alert" data-testid=testid>
                    <p>
                        <strong>"Someone else saved first. "</strong>
                        {format!("{} changed it at {} to ", c.changed_by, show_time(&c.changed_at))}
                        <code data-testid=format!("conflict-value-{key}")>{theirs}</code>
                        {format!(" (version {}).", c.current_version)}
                    </p>
                    <p>
                        "Your input is kept below. Reload to see their change, then save again to replace it."
                    </p>
                    <a class="button button--secondary" href=href data-testid=format!("reload-{key}")>
                        "Reload"
                    </a>
                </div>
            }
            .into_any()
        }
    }
}
