//! The provider registry as a table: add, remove, enable and disable providers and edit their
//! models. The JSON text under it is what the form submits (and what works without JavaScript).

use leptos::prelude::*;

use super::controls::{error_id, input_id, split_tags};
use crate::policy::value::Provider;

/// One change to the provider list, applied to the draft.
type ProviderEdit = Box<dyn FnOnce(&mut Vec<Provider>)>;

#[component]
pub(super) fn ProviderTable(
    key: String,
    label: String,
    initial: String,
    draft: Memo<String>,
    set_draft: Callback<String>,
    disabled: bool,
) -> impl IntoView {
    let providers = Memo::new(move |_| serde_json::from_str::<Vec<Provider>>(&draft.get()).ok());
    let edit = move |f: ProviderEdit| {
        if let Some(mut ps) = providers.get_untracked() {
            f(&mut ps);
            if let Ok(text) = serde_json::to_string_pretty(&ps) {
                set_draft.run(text);
            }
        }
    };
    let id = input_id(&key);
    let described = error_id(&key);
    let label_id = format!("label-{key}");
    let table_label = label_id.clone();
    view! {
        <div class="field field--table">
            <span class="field__label" id=label_id>{label.clone()}</span>
            {move || match providers.get() {
                None => view! {
                    <p class="field-error" role="alert">"The JSON below is not a valid provider list; fix it there."</p>
                }
                .into_any(),
                Some(ps) => view! {
                    <table class="providers" aria-labelledby=table_label.clone() data-testid="providers-table">
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
                    aria-describedby=described
                    data-testid=format!("input-{key}")
                >
                    {initial}
                </textarea>
            </details>
        </div>
    }
}
