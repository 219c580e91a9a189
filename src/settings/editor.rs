//! One key's editor: its control (generated from the registry), provenance, layers, history,
//! and the save, reset and revert forms.

use leptos::prelude::*;
use serde_json::Value as Json;

use super::audit_view::{HistoryList, ValueChart};
use super::{key_anchor, EditorState};
use crate::policy::api::{ResetPolicy, RevertPolicy, SaveOutcome, SavePolicy, PolicyPage};
use crate::policy::audit::AuditRow;
use crate::policy::registry::{Control, KeySpec, Kind, Layer};
use crate::policy::resolve::Resolved;
use crate::policy::value::{canonical_json, format_hundredths, to_hundredths, truncate, Provider};

/// The text a form field holds for a value.
pub fn draft_text(spec: &KeySpec, v: &Json) -> String {
    let text = match spec.kind {
        Kind::Bool => v.as_bool().map(|b| b.to_string()),
        Kind::Int { .. } => v.as_i64().map(|i| i.to_string()),
        Kind::Decimal { .. } => v.as_f64().and_then(to_hundredths).map(format_hundredths),
        Kind::Enum { .. } | Kind::ModelRef | Kind::Text { .. } => v.as_str().map(str::to_string),
        Kind::Extensions { .. } => v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")),
        Kind::Providers => serde_json::to_string_pretty(v).ok(),
    };
    text.unwrap_or_else(|| canonical_json(v))
}

fn input_id(key: &str) -> String {
    format!("input-{}", key.replace('.', "-"))
}

fn error_id(key: &str) -> String {
    format!("error-{}", key.replace('.', "-"))
}

/// How a stored timestamp reads on the page: `2026-01-02 03:04:05 UTC`.
pub fn show_time(at: &str) -> String {
    let mut s = at.replacen('T', " ", 1);
    if let Some(dot) = s.find('.') {
        s.truncate(dot);
    }
    s.trim_end_matches('Z').to_string() + " UTC"
}

#[component]
pub fn KeyEditor(
    spec: &'static KeySpec,
    resolved: Resolved,
    history: Vec<AuditRow>,
    parent_on: Option<bool>,
    choices: Vec<String>,
    focused: bool,
    notice: Option<(String, String)>,
    data: Resource<Result<PolicyPage, ServerFnError>>,
) -> impl IntoView {
    let state = expect_context::<EditorState>();
    let key = spec.key;
    let initial = draft_text(spec, &resolved.value);
    let draft = {
        let initial = initial.clone();
        Memo::new(move |_| state.drafts.with(|d| d.get(key).cloned()).unwrap_or_else(|| initial.clone()))
    };
    let set_draft = {
        let initial = initial.clone();
        Callback::new(move |v: String| {
            state.drafts.update(|d| {
                if v == initial {
                    d.remove(key);
                } else {
                    d.insert(key.to_string(), v);
                }
            })
        })
    };
    let dirty = Memo::new(move |_| state.drafts.with(|d| d.contains_key(key)));
    let disabled = parent_on == Some(false);

    let save = ServerAction::<SavePolicy>::new();
    let reset = ServerAction::<ResetPolicy>::new();
    let revert = ServerAction::<RevertPolicy>::new();
    let on_result = move |r: Result<SaveOutcome, ServerFnError>| {
        let reload = matches!(r, Ok(SaveOutcome::Saved { .. }) | Ok(SaveOutcome::Unchanged { .. }));
        if reload {
            state.drafts.update(|d| {
                d.remove(key);
            });
        }
        state.outcomes.update(|o| {
            o.insert(key.to_string(), r.map_err(|e| e.to_string()));
        });
        if reload {
            data.refetch();
        }
    };
    Effect::new(move |_| {
        if let Some(r) = save.value().get() {
            on_result(r);
        }
    });
    Effect::new(move |_| {
        if let Some(r) = reset.value().get() {
            on_result(r);
        }
    });
    Effect::new(move |_| {
        if let Some(r) = revert.value().get() {
            on_result(r);
        }
    });
    // A form posted without JavaScript comes back with its outcome in the query.
    let outcome = Memo::new(move |_| state.outcomes.with(|o| o.get(key).cloned()));
    let notice = StoredValue::new(notice);
    let pending = Memo::new(move |_| save.pending().get() || reset.pending().get() || revert.pending().get());

    let version = resolved.admin_version;
    let return_to = spec.category.href();
    let return_to_save = return_to.clone();
    let return_to_reset = return_to.clone();
    let has_admin = resolved.layer(Layer::Admin).is_some();
    let env_var = spec.env_var();
    let layers = resolved.layers.clone();
    let warnings = resolved.warnings.clone();
    let provenance = resolved.provenance_short();
    let changed = resolved.updated_by.clone().map(|by| {
        (by, resolved.updated_at.clone().map(|t| show_time(&t)).unwrap_or_default())
    });
    let numeric = matches!(spec.kind, Kind::Int { .. } | Kind::Decimal { .. });
    let default_json = spec.default_value().to_json();
    let testid = move |part: &str| format!("{part}-{key}");

    view! {
        <article
            class="key"
            class:key--focused=focused
            class:key--dirty=move || dirty.get()
            id=key_anchor(key)
            data-testid=testid("key")
        >
            <header class="key__head">
                <h2 class="key__label">{spec.label}</h2>
                <code class="key__name">{key}</code>
                <Show when=move || dirty.get()>
                    <span class="badge badge--unsaved" data-testid=testid("unsaved")>
                        "Unsaved changes"
                    </span>
                </Show>
            </header>
            <p class="key__help">
                {spec.scope} " " <span class="key__nonscope">"Not covered: " {spec.non_scope}</span>
            </p>
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
            <ActionForm action=save attr:class="key__form" attr:novalidate=true>
                <input type="hidden" name="key" value=key />
                <input type="hidden" name="expected_version" value=version />
                <input type="hidden" name="return_to" value=return_to_save />
                {control(spec, initial.clone(), draft, set_draft, disabled, choices)}
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
                    <button type="submit" class="button" disabled=move || disabled || pending.get() data-testid=testid("save")>
                        "Save"
                    </button>
                </div>
            </ActionForm>
            <div class="key__outcome" id=error_id(key)>
                {move || {
                    let from_query = notice.get_value().map(|(n, m)| match n.as_str() {
                        "saved" => Ok(SaveOutcome::Saved { key: key.to_string(), version: 0 }),
                        "unchanged" => Ok(SaveOutcome::Unchanged { key: key.to_string() }),
                        _ => Err(m),
                    });
                    outcome.get().or(from_query).map(|o| outcome_view(key, o, data, set_draft))
                }}
            </div>
            {has_admin
                .then({
                    let return_to = return_to_reset;
                    move || {
                    view! {
                        <ActionForm action=reset attr:class="key__reset">
                            <input type="hidden" name="key" value=key />
                            <input type="hidden" name="expected_version" value=version />
                            <input type="hidden" name="return_to" value=return_to.clone() />
                            <button type="submit" class="button button--secondary" data-testid=testid("reset")>
                                "Reset to inherited value"
                            </button>
                        </ActionForm>
                    }
                }})}
            {numeric.then(|| view! { <ValueChart key=key rows=history.clone() default=default_json.clone() /> })}
            <HistoryList spec=spec rows=history version=version revert=revert return_to=return_to />
        </article>
    }
}

fn outcome_view(
    key: &'static str,
    o: Result<SaveOutcome, String>,
    data: Resource<Result<PolicyPage, ServerFnError>>,
    set_draft: Callback<String>,
) -> AnyView {
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
            let _ = set_draft;
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
                    <button
                        type="button"
                        class="button button--secondary"
                        data-testid=format!("reload-{key}")
                        on:click=move |_| data.refetch()
                    >
                        "Reload"
                    </button>
                </div>
            }
            .into_any()
        }
    }
}

/// The control of a key, generated from its registry entry. Every control submits one field,
/// `value`, as text; the server parses it with the key's own rules.
fn control(
    spec: &'static KeySpec,
    initial: String,
    draft: Memo<String>,
    set_draft: Callback<String>,
    disabled: bool,
    choices: Vec<String>,
) -> AnyView {
    let key = spec.key;
    let id = input_id(key);
    let described = error_id(key);
    let label = spec.label;
    let testid = format!("input-{key}");
    match spec.control {
        Control::Toggle => {
            let checked = initial == "true";
            view! {
                <div class="field field--toggle">
                    <input
                        type="checkbox"
                        role="switch"
                        id=id.clone()
                        name="value"
                        value="true"
                        checked=checked
                        prop:checked=move || draft.get() == "true"
                        on:change=move |ev| set_draft.run(event_target_checked(&ev).to_string())
                        disabled=disabled
                        aria-describedby=described
                        data-testid=testid
                    />
                    <label for=id>{label}</label>
                    <span class="toggle__state">{move || if draft.get() == "true" { "On" } else { "Off" }}</span>
                </div>
            }
            .into_any()
        }
        Control::Slider => {
            let (min, max, step) = match spec.kind {
                Kind::Int { min, max } => (min.to_string(), max.to_string(), "1".to_string()),
                Kind::Decimal { min, max, step } => (format_hundredths(min), format_hundredths(max), format_hundredths(step)),
                _ => ("0".into(), "1".into(), "1".into()),
            };
            let is_decimal = matches!(spec.kind, Kind::Decimal { .. });
            view! {
                <div class="field field--slider">
                    <label for=id.clone()>{label}</label>
                    <div class="slider">
                        <input
                            type="range"
                            min=min.clone()
                            max=max.clone()
                            step=step.clone()
                            value=initial.clone()
                            prop:value=move || draft.get()
                            on:input=move |ev| {
                                let v = event_target_value(&ev);
                                let v = if is_decimal {
                                    v.parse::<f64>().ok().and_then(to_hundredths).map(format_hundredths).unwrap_or(v)
                                } else {
                                    v
                                };
                                set_draft.run(v)
                            }
                            disabled=disabled
                            aria-label=format!("{label} (slider)")
                            data-testid=format!("slider-{key}")
                        />
                        <input
                            type="number"
                            id=id
                            name="value"
                            min=min
                            max=max
                            step=step
                            inputmode="decimal"
                            value=initial
                            prop:value=move || draft.get()
                            on:input=move |ev| set_draft.run(event_target_value(&ev))
                            disabled=disabled
                            aria-describedby=described
                            data-testid=testid
                        />
                    </div>
                </div>
            }
            .into_any()
        }
        Control::Numeric => {
            let (min, max) = match spec.kind {
                Kind::Int { min, max } => (min.to_string(), max.to_string()),
                _ => (String::new(), String::new()),
            };
            view! {
                <div class="field">
                    <label for=id.clone()>{label}</label>
                    <input
                        type="number"
                        id=id
                        name="value"
                        min=min.clone()
                        max=max.clone()
                        step="1"
                        value=initial
                        prop:value=move || draft.get()
                        on:input=move |ev| set_draft.run(event_target_value(&ev))
                        disabled=disabled
                        aria-describedby=described
                        data-testid=testid
                    />
                    <span class="field__hint">{format!("{min} to {max}")}</span>
                </div>
            }
            .into_any()
        }
        Control::Dropdown => {
            let mut options: Vec<String> = match spec.kind {
                Kind::Enum { options } => options.iter().map(|o| o.to_string()).collect(),
                _ => choices,
            };
            if !options.contains(&initial) {
                options.insert(0, initial.clone());
            }
            view! {
                <div class="field">
                    <label for=id.clone()>{label}</label>
                    <select
                        id=id
                        name="value"
                        prop:value=move || draft.get()
                        on:change=move |ev| set_draft.run(event_target_value(&ev))
                        disabled=disabled
                        aria-describedby=described
                        data-testid=testid
                    >
                        {options
                            .into_iter()
                            .map(|o| {
                                let selected = o == initial;
                                view! {
                                    <option value=o.clone() selected=selected>
                                        {o.clone()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </div>
            }
            .into_any()
        }
        Control::Textarea => {
            let max = match spec.kind {
                Kind::Text { max_chars, .. } => max_chars,
                _ => 0,
            };
            view! {
                <div class="field">
                    <label for=id.clone()>{label}</label>
                    <textarea
                        id=id
                        name="value"
                        rows="6"
                        prop:value=move || draft.get()
                        on:input=move |ev| set_draft.run(event_target_value(&ev))
                        disabled=disabled
                        aria-describedby=described
                        data-testid=testid
                    >
                        {initial}
                    </textarea>
                    <span class="field__hint" data-testid=format!("count-{key}")>
                        {move || format!("{} / {max} characters", draft.with(|d| d.chars().count()))}
                    </span>
                </div>
            }
            .into_any()
        }
        Control::TagList => view! { <TagList key=key label=label initial=initial draft=draft set_draft=set_draft disabled=disabled /> }.into_any(),
        Control::TableEditor => view! { <ProviderTable key=key label=label initial=initial draft=draft set_draft=set_draft disabled=disabled /> }.into_any(),
    }
}

fn split_tags(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// Tags with remove buttons and an input to add one. The text field holding the whole list is
/// what the form submits, so the list can also be edited without JavaScript.
#[component]
fn TagList(
    key: &'static str,
    label: &'static str,
    initial: String,
    draft: Memo<String>,
    set_draft: Callback<String>,
    disabled: bool,
) -> impl IntoView {
    let new_tag = RwSignal::new(String::new());
    let add = move || {
        let tag = new_tag.get_untracked().trim().to_string();
        if tag.is_empty() {
            return;
        }
        let mut tags = split_tags(&draft.get_untracked());
        tags.push(tag);
        set_draft.run(tags.join(", "));
        new_tag.set(String::new());
    };
    let id = input_id(key);
    view! {
        <div class="field field--tags">
            <label for=id.clone()>{label}</label>
            <ul class="tags" data-testid=format!("tags-{key}")>
                <For each=move || split_tags(&draft.get()) key=|t| t.clone() let:tag>
                    <li class="tag">
                        <span>{tag.clone()}</span>
                        <button
                            type="button"
                            class="tag__remove"
                            aria-label=format!("Remove {tag}")
                            disabled=disabled
                            on:click={
                                let tag = tag.clone();
                                move |_| {
                                    let tags: Vec<String> = split_tags(&draft.get_untracked()).into_iter().filter(|t| *t != tag).collect();
                                    set_draft.run(tags.join(", "))
                                }
                            }
                        >
                            "×"
                        </button>
                    </li>
                </For>
            </ul>
            <div class="tags__add">
                <input
                    type="text"
                    aria-label=format!("Add to {label}")
                    placeholder="add an extension"
                    prop:value=move || new_tag.get()
                    on:input=move |ev| new_tag.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" {
                            ev.prevent_default();
                            add();
                        }
                    }
                    disabled=disabled
                    data-testid=format!("tag-new-{key}")
                />
                <button type="button" class="button button--secondary" on:click=move |_| add() disabled=disabled>
                    "Add"
                </button>
            </div>
            <input
                type="text"
                id=id
                name="value"
                class="tags__all"
                value=initial
                prop:value=move || draft.get()
                on:input=move |ev| set_draft.run(event_target_value(&ev))
                disabled=disabled
                aria-describedby=error_id(key)
                data-testid=format!("input-{key}")
            />
            <span class="field__hint">"Comma-separated, lower-case, no dots."</span>
        </div>
    }
}

/// The provider registry as a table: add, remove, enable and disable providers and edit their
/// models. The JSON text under it is what the form submits (and what works without JavaScript).
#[component]
fn ProviderTable(
    key: &'static str,
    label: &'static str,
    initial: String,
    draft: Memo<String>,
    set_draft: Callback<String>,
    disabled: bool,
) -> impl IntoView {
    let providers = Memo::new(move |_| serde_json::from_str::<Vec<Provider>>(&draft.get()).ok());
    let edit = move |f: Box<dyn FnOnce(&mut Vec<Provider>)>| {
        if let Some(mut ps) = providers.get_untracked() {
            f(&mut ps);
            if let Ok(text) = serde_json::to_string_pretty(&ps) {
                set_draft.run(text);
            }
        }
    };
    let id = input_id(key);
    view! {
        <div class="field field--table">
            <span class="field__label" id=format!("label-{key}")>{label}</span>
            {move || match providers.get() {
                None => view! {
                    <p class="field-error" role="alert">"The JSON below is not a valid provider list; fix it there."</p>
                }
                .into_any(),
                Some(ps) => view! {
                    <table class="providers" aria-labelledby=format!("label-{key}") data-testid="providers-table">
                        <thead>
                            <tr>
                                <th scope="col">"Id"</th>
                                <th scope="col">"Label"</th>
                                <th scope="col">"Enabled"</th>
                                <th scope="col">"Models (comma-separated)"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {ps
                                .into_iter()
                                .enumerate()
                                .map(|(i, p)| {
                                    let pid = p.id.clone();
                                    view! {
                                        <tr data-testid=format!("provider-{pid}")>
                                            <td>
                                                <input
                                                    type="text"
                                                    aria-label=format!("Id of provider {}", i + 1)
                                                    value=p.id.clone()
                                                    disabled=disabled
                                                    on:change=move |ev| {
                                                        let v = event_target_value(&ev);
                                                        edit(Box::new(move |ps| if let Some(p) = ps.get_mut(i) { p.id = v }))
                                                    }
                                                />
                                            </td>
                                            <td>
                                                <input
                                                    type="text"
                                                    aria-label=format!("Label of provider {pid}")
                                                    value=p.label.clone()
                                                    disabled=disabled
                                                    on:change=move |ev| {
                                                        let v = event_target_value(&ev);
                                                        edit(Box::new(move |ps| if let Some(p) = ps.get_mut(i) { p.label = v }))
                                                    }
                                                />
                                            </td>
                                            <td>
                                                <input
                                                    type="checkbox"
                                                    aria-label=format!("Provider {pid} enabled")
                                                    checked=p.enabled
                                                    disabled=disabled
                                                    on:change=move |ev| {
                                                        let v = event_target_checked(&ev);
                                                        edit(Box::new(move |ps| if let Some(p) = ps.get_mut(i) { p.enabled = v }))
                                                    }
                                                />
                                            </td>
                                            <td>
                                                <input
                                                    type="text"
                                                    aria-label=format!("Models of provider {pid}")
                                                    value=p.models.join(", ")
                                                    disabled=disabled
                                                    on:change=move |ev| {
                                                        let v = split_tags(&event_target_value(&ev));
                                                        edit(Box::new(move |ps| if let Some(p) = ps.get_mut(i) { p.models = v }))
                                                    }
                                                />
                                            </td>
                                            <td>
                                                <button
                                                    type="button"
                                                    class="button button--secondary"
                                                    aria-label=format!("Remove provider {pid}")
                                                    disabled=disabled
                                                    on:click=move |_| edit(Box::new(move |ps| {
                                                        if i < ps.len() {
                                                            ps.remove(i);
                                                        }
                                                    }))
                                                >
                                                    "Remove"
                                                </button>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                    <button
                        type="button"
                        class="button button--secondary"
                        disabled=disabled
                        data-testid="provider-add"
                        on:click=move |_| edit(Box::new(|ps| {
                            ps.push(Provider { id: format!("provider-{}", ps.len() + 1), label: "New provider".into(), enabled: false, models: vec![] })
                        }))
                    >
                        "Add provider"
                    </button>
                }
                .into_any(),
            }}
            <details class="json-edit">
                <summary>"Edit as JSON"</summary>
                <label for=id.clone()>{format!("{label} (JSON)")}</label>
                <textarea
                    id=id
                    name="value"
                    rows="12"
                    spellcheck="false"
                    prop:value=move || draft.get()
                    on:change=move |ev| set_draft.run(event_target_value(&ev))
                    disabled=disabled
                    aria-describedby=error_id(key)
                    data-testid=format!("input-{key}")
                >
                    {initial}
                </textarea>
            </details>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::spec;
    use serde_json::json;

    #[test]
    fn draft_text_is_what_a_person_would_type() {
        assert_eq!(draft_text(spec("models.platform_default_temperature").unwrap(), &json!(0.3)), "0.30");
        assert_eq!(draft_text(spec("upload.allowed_extensions").unwrap(), &json!(["pdf", "txt"])), "pdf, txt");
        assert_eq!(draft_text(spec("worker.prompt_caching.enabled").unwrap(), &json!(true)), "true");
        // Every default survives the trip through its own form field.
        for s in crate::policy::REGISTRY {
            let d = s.default_value();
            assert_eq!(s.parse_text(&draft_text(s, &d.to_json())).as_ref(), Ok(&d), "{}", s.key);
        }
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(show_time("2026-01-02T03:04:05.123456Z"), "2026-01-02 03:04:05 UTC");
    }
}
