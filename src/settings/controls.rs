//! The control of each key, generated from its registry entry: toggle, slider, number,
//! dropdown, text area, tag list (and the provider table, in `provider_table.rs`). Every
//! control submits one field, `value`, as text; the server parses it with the key's own rules.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
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

/// What a key's control needs to know of its registry entry: small and serializable, so that
/// an island carries it as a prop without the registry (and its help texts) in the bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlSpec {
    pub key: String,
    pub label: String,
    pub field: Field,
}

/// The kind of control and its bounds, as the form shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Field {
    Toggle,
    Slider {
        min: String,
        max: String,
        step: String,
        decimal: bool,
    },
    Numeric {
        min: String,
        max: String,
    },
    /// The options offered; the value in force comes first when it is not one of them.
    Dropdown {
        options: Vec<String>,
    },
    Textarea {
        max_chars: usize,
    },
    TagList,
    TableEditor,
}

impl ControlSpec {
    /// The control of `spec`; `choices` are the models a model dropdown offers.
    pub fn of(spec: &KeySpec, choices: Vec<String>) -> ControlSpec {
        let field = match spec.control {
            Control::Toggle => Field::Toggle,
            Control::Slider => {
                let (min, max, step) = match spec.kind {
                    Kind::Int { min, max } => (min.to_string(), max.to_string(), "1".to_string()),
                    Kind::Decimal { min, max, step } => {
                        (format_hundredths(min), format_hundredths(max), format_hundredths(step))
                    }
                    _ => ("0".into(), "1".into(), "1".into()),
                };
                Field::Slider { min, max, step, decimal: matches!(spec.kind, Kind::Decimal { .. }) }
            }
            Control::Numeric => match spec.kind {
                Kind::Int { min, max } => Field::Numeric { min: min.to_string(), max: max.to_string() },
                _ => Field::Numeric { min: String::new(), max: String::new() },
            },
            Control::Dropdown => Field::Dropdown {
                options: match spec.kind {
                    Kind::Enum { options } => options.iter().map(|o| o.to_string()).collect(),
                    _ => choices,
                },
            },
            Control::Textarea => Field::Textarea {
                max_chars: match spec.kind {
                    Kind::Text { max_chars, .. } => max_chars,
                    _ => 0,
                },
            },
            Control::TagList => Field::TagList,
            Control::TableEditor => Field::TableEditor,
        };
        ControlSpec { key: spec.key.to_string(), label: spec.label.to_string(), field }
    }
}

/// The control of a key. Every control submits one field, `value`, as text; the server parses
/// it with the key's own rules.
pub(super) fn control(
    spec: ControlSpec,
    initial: String,
    draft: Memo<String>,
    set_draft: Callback<String>,
    disabled: bool,
) -> AnyView {
    let ControlSpec { key, label, field } = spec;
    let id = input_id(&key);
    let described = error_id(&key);
    let testid = format!("input-{key}");
    match field {
        Field::Toggle => {
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
        Field::Slider { min, max, step, decimal: is_decimal } => {
            let slider_label = format!("{label} (slider)");
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
                            aria-label=slider_label
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
        Field::Numeric { min, max } => {
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
        Field::Dropdown { mut options } => {
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
        Field::Textarea { max_chars: max } => {
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
        Field::TagList => view! { <TagList key=key label=label initial=initial draft=draft set_draft=set_draft disabled=disabled /> }.into_any(),
        Field::TableEditor => view! { <ProviderTable key=key label=label initial=initial draft=draft set_draft=set_draft disabled=disabled /> }.into_any(),
    }
}

/// A key's control, an island: the field, its draft kept in the tab's store (so it outlives a
/// page swap), the "Staged" and "Unsaved changes" badges and the Stage button. Until it has
/// hydrated it shows exactly what the server rendered; then it reads the store.
#[island]
pub fn KeyControl(
    spec: ControlSpec,
    initial: String,
    disabled: bool,
    version: i64,
    from: String,
    rebase: bool,
) -> impl IntoView {
    use super::store::{self, Draft};
    use super::types::StagedChange;
    use crate::policy::value::truncate;

    let key = spec.key.clone();
    let staged_text = {
        let key = key.clone();
        move || store::staged().into_iter().find(|c| c.key == key).map(|c| truncate(&c.text, 40))
    };
    let kept = RwSignal::new(None::<Draft>);
    let staged = RwSignal::new(None::<String>);
    let ready = RwSignal::new(false);
    Effect::new({
        let (key, initial, staged_text) = (key.clone(), initial.clone(), staged_text.clone());
        move |_| {
            // A draft equal to the value now in force is no longer a change. One whose save
            // was just refused for a conflict, now shown, may replace that change.
            let draft = store::draft(&key).filter(|d| d.text != initial).map(|d| {
                if rebase {
                    Draft { base: version, ..d }
                } else {
                    d
                }
            });
            store::set_draft(&key, draft.as_ref());
            kept.set(draft);
            staged.set(staged_text());
            ready.set(true);
        }
    });
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener_untyped(store::STAGED_EVENT, move |_| staged.set(staged_text()));
        on_cleanup(move || handle.remove());
    }
    let draft = {
        let initial = initial.clone();
        Memo::new(move |_| kept.with(|d| d.as_ref().map(|d| d.text.clone())).unwrap_or_else(|| initial.clone()))
    };
    // The version a save expects: the one the draft was begun at.
    let base = Memo::new(move |_| kept.with(|d| d.as_ref().map_or(version, |d| d.base)));
    let set_draft = {
        let (key, initial) = (key.clone(), initial.clone());
        Callback::new(move |text: String| {
            let draft = (text != initial).then(|| Draft { text, base: base.get_untracked() });
            store::set_draft(&key, draft.as_ref());
            kept.set(draft);
        })
    };
    let stage = {
        let key = key.clone();
        move |_| {
            store::stage(StagedChange {
                key: key.clone(),
                text: draft.get_untracked(),
                expected_version: base.get_untracked(),
                from: from.clone(),
            })
        }
    };
    let (staged_id, unsaved_id, stage_id, stale_id) =
        (format!("staged-{key}"), format!("unsaved-{key}"), format!("stage-{key}"), format!("stale-{key}"));
    view! {
        <input type="hidden" name="expected_version" value=version prop:value=move || base.get() />
        <p class="key__badges">
            {move || {
                staged.get().map(|text| {
                    view! {
                        <span class="badge badge--unsaved" data-testid=staged_id.clone()>
                            {format!("Staged: {text}")}
                        </span>
                    }
                })
            }}
            <Show when=move || kept.with(Option::is_some)>
                <span class="badge badge--unsaved" data-testid=unsaved_id.clone()>
                    "Unsaved changes"
                </span>
            </Show>
        </p>
        <Show when=move || base.get() != version>
            <p class="key__note" data-testid=stale_id.clone()>
                "Changed by someone else since you began this edit: saving it shows you their change first."
            </p>
        </Show>
        {control(spec, initial, draft, set_draft, disabled)}
        <Show when=move || ready.get()>
            <p class="key__stage">
                <button
                    type="button"
                    class="button button--secondary"
                    title="Add this edit to the pending changes, applied later with others as one change set"
                    disabled=disabled
                    data-testid=stage_id.clone()
                    on:click=stage.clone()
                >
                    "Stage"
                </button>
            </p>
        </Show>
    }
}

pub(super) fn split_tags(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// Tags with remove buttons and an input to add one. The text field holding the whole list is
/// what the form submits, so the list can also be edited without JavaScript.
#[component]
fn TagList(
    key: String,
    label: String,
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
    let id = input_id(&key);
    let described = error_id(&key);
    view! {
        <div class="field field--tags">
            <label for=id.clone()>{label.clone()}</label>
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
                aria-describedby=described
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
