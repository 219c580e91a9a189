//! The control of each key, generated from its registry entry: toggle, slider, number,
//! dropdown, text area, tag list (and the provider table, in `provider_table.rs`). Every
//! control submits one field, `value`, as text; the server parses it with the key's own rules.

use leptos::prelude::*;
use serde_json::Value as Json;

use super::provider_table::ProviderTable;
use crate::policy::registry::{Control, KeySpec, Kind};
use crate::policy::value::{canonical_json, format_hundredths, to_hundredths};

/// The text a form field holds for a value.
pub fn draft_text(spec: &KeySpec, v: &Json) -> String {
    let text = match spec.kind {
        Kind::Bool => v.as_bool().map(|b| b.to_string()),
        Kind::Int { .. } => v.as_i64().map(|i| i.to_string()),
        Kind::Decimal { .. } => v.as_f64().and_then(to_hundredths).map(format_hundredths),
        Kind::Enum { .. } | Kind::ModelRef | Kind::Text { .. } => v.as_str().map(str::to_string),
        Kind::Extensions { .. } => {
            v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
        }
        Kind::Providers => serde_json::to_string_pretty(v).ok(),
    };
    text.unwrap_or_else(|| canonical_json(v))
}

pub(super) fn input_id(key: &str) -> String {
    format!("input-{}", key.replace('.', "-"))
}

pub(super) fn error_id(key: &str) -> String {
    format!("error-{}", key.replace('.', "-"))
}

/// The control of a key, generated from its registry entry. Every control submits one field,
/// `value`, as text; the server parses it with the key's own rules.
pub(super) fn control(
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

pub(super) fn split_tags(s: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::registry::{spec, REGISTRY};
    use serde_json::json;

    #[test]
    fn draft_text_is_what_a_person_would_type() {
        assert_eq!(draft_text(spec("models.platform_default_temperature").unwrap(), &json!(0.3)), "0.30");
        assert_eq!(draft_text(spec("upload.allowed_extensions").unwrap(), &json!(["pdf", "txt"])), "pdf, txt");
        assert_eq!(draft_text(spec("worker.prompt_caching.enabled").unwrap(), &json!(true)), "true");
        // Every default survives the trip through its own form field.
        for s in REGISTRY {
            let d = s.default_value();
            assert_eq!(s.parse_text(&draft_text(s, &d.to_json())).as_ref(), Ok(&d), "{}", s.key);
        }
    }
}
