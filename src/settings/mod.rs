//! The superuser settings page: a category side nav and a detail panel with every key's
//! control, provenance, layers and history, plus the audit log.

mod audit_view;
mod editor;

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_router::{components::A, hooks::{use_params_map, use_query_map}};

use crate::policy::api::{settings_data, SaveOutcome, PolicyPage};
use crate::policy::registry::{keys_in, spec, Layer};

pub use audit_view::AuditLog;
use editor::KeyEditor;

/// The categories of the side nav, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Models,
    Worker,
    Optimization,
    Upload,
    Audit,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Models,
        Category::Worker,
        Category::Optimization,
        Category::Upload,
        Category::Audit,
    ];

    /// The path segment used in deep links.
    pub fn slug(self) -> &'static str {
        match self {
            Category::Models => "models",
            Category::Worker => "worker",
            Category::Optimization => "optimization",
            Category::Upload => "upload",
            Category::Audit => "audit",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Category::Models => "Models",
            Category::Worker => "Worker execution",
            Category::Optimization => "Optimization",
            Category::Upload => "Upload",
            Category::Audit => "Audit log",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Category::Models => {
                "Which providers and models workers may use, and the platform defaults for model, temperature and output length."
            }
            Category::Worker => {
                "How workers claim and process blocks: batch size, ordering, prompts and retries."
            }
            Category::Optimization => "Prompt caching and multi-block batching switches.",
            Category::Upload => {
                "Limits on what users may upload: files per batch and allowed extensions."
            }
            Category::Audit => "Every change to the policy: who, when, from, to and why.",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.slug() == slug)
    }

    pub fn href(self) -> String {
        format!("{}/{}", crate::app::HOME_PATH, self.slug())
    }
}

/// The id of a key's section on the page, usable as a URL fragment.
pub fn key_anchor(key: &str) -> String {
    format!("key-{}", key.replace('.', "-"))
}

/// The deep link to one key.
pub fn key_href(key: &str) -> String {
    let cat = spec(key).map(|s| s.category).unwrap_or(Category::Models);
    format!("{}?key={}#{}", cat.href(), encode_query(key), key_anchor(key))
}

/// Percent-encodes a query-string value.
pub fn encode_query(s: &str) -> String {
    crate::app::percent_encode(s, b"")
}

/// Edits in progress and the last outcome per key. They live above the page so that reloading
/// the data (after a save, or to see someone else's change) never loses what a person typed.
#[derive(Clone, Copy, Default)]
pub struct EditorState {
    pub drafts: RwSignal<HashMap<String, String>>,
    pub outcomes: RwSignal<HashMap<String, Result<SaveOutcome, String>>>,
}

impl EditorState {
    pub fn any_unsaved(&self) -> bool {
        !self.drafts.with(|d| d.is_empty())
    }
}

pub fn provide_editor_state() {
    if use_context::<EditorState>().is_none() {
        provide_context(EditorState { drafts: RwSignal::new(HashMap::new()), outcomes: RwSignal::new(HashMap::new()) });
    }
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    provide_editor_state();
    let editor = expect_context::<EditorState>();
    let params = use_params_map();
    let query = use_query_map();
    // `None` means the slug in the address names no category.
    let category = Memo::new(move |_| match params.read().get("category") {
        None => Some(Category::Models),
        Some(slug) => Category::from_slug(&slug),
    });
    let data = Resource::new(
        move || category.get().map(|c| c.slug()).unwrap_or("models"),
        |slug| settings_data(slug.to_string()),
    );

    // Warn before leaving the page with unsaved changes.
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::beforeunload, move |ev| {
            if editor.any_unsaved() {
                ev.prevent_default();
                ev.set_return_value("You have unsaved changes.");
            }
        });
        on_cleanup(move || handle.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = editor;

    let nav_data = data;
    view! {
        <div class="settings">
            <nav class="side-nav" aria-label="Policy categories">
                <h2 class="side-nav__title">"Settings"</h2>
                <ul>
                    {Category::ALL
                        .into_iter()
                        .map(|c| {
                            view! {
                                <li>
                                    <A href=c.href() attr:data-testid=format!("nav-{}", c.slug())>
                                        {c.label()}
                                    </A>
                                    <Transition fallback=|| ()>
                                        {move || Suspend::new(async move {
                                            let d = nav_data.await.ok();
                                            nav_keys(c, d.as_ref())
                                        })}
                                    </Transition>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </nav>
            <section class="detail-panel" data-testid="detail-panel">
                {move || match category.get() {
                    None => {
                        view! {
                            <h1 data-testid="panel-title">"Unknown category"</h1>
                            <p class="summary">"Pick a category from the list."</p>
                        }
                            .into_any()
                    }
                    Some(Category::Audit) => {
                        view! {
                            <h1 data-testid="panel-title">{Category::Audit.label()}</h1>
                            <p class="summary">{Category::Audit.summary()}</p>
                            <AuditLog />
                        }
                            .into_any()
                    }
                    Some(c) => {
                        view! {
                            <h1 data-testid="panel-title">{c.label()}</h1>
                            <p class="summary">{c.summary()}</p>
                            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                                <ErrorBoundary fallback=|errors| {
                                    view! {
                                        <p class="error" role="alert">
                                            {move || {
                                                errors
                                                    .get()
                                                    .into_iter()
                                                    .map(|(_, e)| e.to_string())
                                                    .collect::<Vec<_>>()
                                                    .join("; ")
                                            }}
                                        </p>
                                    }
                                }>
                                    {move || Suspend::new(async move {
                                        data.await
                                            .map(|d| {
                                                let q = query.get_untracked();
                                                category_panel(c, d, q.get("key"), q.get("notice"), q.get("msg"), data)
                                            })
                                    })}
                                </ErrorBoundary>
                            </Transition>
                        }
                            .into_any()
                    }
                }}
            </section>
        </div>
    }
}

/// The keys of a category under its nav link, each marked when not at its default.
fn nav_keys(c: Category, data: Option<&PolicyPage>) -> impl IntoView {
    let data = data.cloned();
    (c != Category::Audit).then(|| {
        view! {
            <ul class="side-nav__keys">
                {keys_in(c)
                    .map(|s| {
                        let source = data.as_ref().and_then(|d| d.resolved(s.key)).map(|r| r.source);
                        let changed = source.is_some_and(|l| l != Layer::Default);
                        view! {
                            <li>
                                <a href=key_href(s.key) data-testid=format!("navkey-{}", s.key)>
                                    {s.label}
                                    {changed
                                        .then(|| {
                                            let layer = source.map(|l| l.as_str()).unwrap_or_default();
                                            view! {
                                                <span
                                                    class="marker"
                                                    title=format!("set at the {layer} layer")
                                                    data-testid=format!("marker-{}", s.key)
                                                >
                                                    <span class="visually-hidden">{format!(" (source={layer})")}</span>
                                                </span>
                                            }
                                        })}
                                </a>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        }
    })
}

fn category_panel(
    c: Category,
    d: PolicyPage,
    focus: Option<String>,
    notice: Option<String>,
    msg: Option<String>,
    data: Resource<Result<PolicyPage, ServerFnError>>,
) -> impl IntoView {
    let choices = d
        .resolved("models.provider_registry")
        .and_then(|r| spec(&r.key).and_then(|s| s.parse_json(&r.value).ok()))
        .and_then(|v| v.as_providers().map(crate::policy::registry::model_choices))
        .unwrap_or_default();
    keys_in(c)
        .filter_map(|s| {
            let resolved = d.resolved(s.key)?.clone();
            let parent_on = s
                .depends_on
                .and_then(|dep| d.resolved(dep.key))
                .map(|r| r.value.as_bool().unwrap_or(false));
            let history = d.history(s.key).to_vec();
            let is_focus = focus.as_deref() == Some(s.key);
            // The outcome of a save made without JavaScript, carried back in the query.
            let notice = if is_focus { notice.clone().map(|n| (n, msg.clone().unwrap_or_default())) } else { None };
            Some(view! {
                <KeyEditor
                    spec=s
                    resolved=resolved
                    history=history
                    parent_on=parent_on
                    choices=choices.clone()
                    focused=is_focus
                    notice=notice
                    data=data
                />
            })
        })
        .collect_view()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_round_trips_through_its_slug() {
        for c in Category::ALL {
            assert_eq!(Category::from_slug(c.slug()), Some(c));
            assert!(c.href().starts_with("/app/settings/superuser/"));
        }
        assert_eq!(Category::from_slug("nope"), None);
    }

    #[test]
    fn deep_links_name_the_category_and_the_key() {
        assert_eq!(
            key_href("worker.claim_batch_size"),
            "/app/settings/superuser/worker?key=worker.claim_batch_size#key-worker-claim_batch_size"
        );
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }
}
