//! The superuser settings page: a category side nav and a detail panel with every key's
//! control, provenance, layers and history, plus the audit log.

pub mod api;
mod audit_log;
mod controls;
mod editor;
mod history;
mod integrations;
mod provider_table;
mod requests;
mod revisions;
mod staging;
mod store;
pub mod types;

#[cfg(feature = "ssr")]
pub mod export;
#[cfg(feature = "ssr")]
pub mod rest;

use leptos::prelude::*;
use leptos_router::{
    components::A,
    hooks::{use_location, use_query_map},
};

use self::api::settings_data;
use self::audit_log::{AuditLog, AuditRows};
use self::editor::KeyEditor;
use self::integrations::{Integrations, IntegrationsData};
use self::requests::{Requests, RequestsData};
use self::revisions::{Revisions, RevisionsData};
use self::types::{PolicyPage, Section};
use crate::error::AppError;
use crate::policy::parse::model_choices;
use crate::policy::registry::{keys, keys_in, spec, Category, Layer};
use crate::ui::ErrorText;

/// The section in the address and its data, made once per visit to the settings area.
#[derive(Clone, Copy)]
struct SettingsData {
    /// `None` when the slug in the address names no section.
    section: Memo<Option<Section>>,
    data: Resource<Result<PolicyPage, AppError>>,
}

/// The section an address under the settings area names: the first section for the area
/// itself, `None` for a slug that names none.
pub fn section_of_path(path: &str) -> Option<Section> {
    match path.strip_prefix(crate::paths::SETTINGS).unwrap_or_default().trim_matches('/') {
        "" => Some(Section::Keys(Category::Models)),
        slug => Section::from_slug(slug),
    }
}

/// The settings area: its data, then the superuser check around the pages. The data is made
/// here, above the check, because the check's view is built more than once while the signed-in
/// user resolves, and a page that made its own data there would load and send it each time.
#[component]
pub fn SettingsArea() -> impl IntoView {
    let location = use_location();
    let section = Memo::new(move |_| section_of_path(&location.pathname.read()));
    let data = Resource::new(
        move || section.get().map(|c| c.slug()).unwrap_or(Category::Models.slug()),
        |slug| settings_data(slug.to_string()),
    );
    provide_context(SettingsData { section, data });
    provide_context(AuditRows::new(Memo::new(move |_| section.get() == Some(Section::Audit))));
    provide_context(RevisionsData::new(Memo::new(move |_| section.get() == Some(Section::Revisions))));
    provide_context(RequestsData::new(Memo::new(move |_| section.get() == Some(Section::Requests))));
    provide_context(IntegrationsData::new(Memo::new(move |_| section.get() == Some(Section::Integrations))));
    crate::auth::SuperuserArea()
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let query = use_query_map();
    let SettingsData { section, data } = expect_context::<SettingsData>();

    let nav_data = data;
    // Staged edits: an island reading the tab's store, and the outcome of applying them from
    // the address.
    let pending = {
        // Applied from a category, the form comes back to it; from elsewhere, to the first.
        let here = section.get_untracked();
        let keys = matches!(here, Some(Section::Keys(_)));
        let back = here.filter(|_| keys).unwrap_or(Section::Keys(Category::Models)).href();
        view! {
            {keys.then(|| view! { <self::staging::AppliedOutcome /> })}
            <self::staging::StagedEdits return_to=back />
        }
    };
    view! {
        <div class="settings">
            <nav class="side-nav" aria-label="Policy categories">
                <h2 class="side-nav__title">"Settings"</h2>
                <ul>
                    {Section::ALL
                        .into_iter()
                        .map(|c| {
                            view! {
                                <li>
                                    <A href=c.href() attr:data-testid=format!("nav-{}", c.slug())>
                                        {c.label()}
                                        {(c == Section::Requests)
                                            .then(|| {
                                                view! {
                                                    <Transition fallback=|| ()>
                                                        {move || Suspend::new(async move {
                                                            let open = nav_data.await.map(|d| d.open_requests).unwrap_or(0);
                                                            (open > 0)
                                                                .then(|| {
                                                                    view! {
                                                                        <span class="count" data-testid="open-requests">
                                                                            {format!(" ({open} open)")}
                                                                        </span>
                                                                    }
                                                                })
                                                        })}
                                                    </Transition>
                                                }
                                            })}
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
                {pending}
                {move || match section.get() {
                    None => {
                        view! {
                            <h1 data-testid="panel-title">"Unknown category"</h1>
                            <p class="summary">"Pick a category from the list."</p>
                        }
                            .into_any()
                    }
                    Some(Section::Audit) => {
                        view! {
                            <h1 data-testid="panel-title">{Section::Audit.label()}</h1>
                            <p class="summary">{Section::Audit.summary()}</p>
                            <AuditLog />
                        }
                            .into_any()
                    }
                    Some(Section::Integrations) => {
                        view! {
                            <h1 data-testid="panel-title">{Section::Integrations.label()}</h1>
                            <p class="summary">{Section::Integrations.summary()}</p>
                            <Integrations />
                        }
                            .into_any()
                    }
                    Some(Section::Requests) => {
                        view! {
                            <h1 data-testid="panel-title">{Section::Requests.label()}</h1>
                            <p class="summary">{Section::Requests.summary()}</p>
                            <Requests />
                        }
                            .into_any()
                    }
                    Some(Section::Revisions) => {
                        view! {
                            <h1 data-testid="panel-title">{Section::Revisions.label()}</h1>
                            <p class="summary">{Section::Revisions.summary()}</p>
                            <Revisions />
                        }
                            .into_any()
                    }
                    Some(Section::Keys(c)) => {
                        view! {
                            <h1 data-testid="panel-title">{c.label()}</h1>
                            <p class="summary">{c.summary()}</p>
                            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                                {move || Suspend::new(async move {
                                    match data.await {
                                        Ok(d) => {
                                            let q = query.get_untracked();
                                            let warning = d.env_warning.clone().map(|w| {
                                                view! { <p class="notice-banner" role="alert" data-testid="env-mismatch">{w}</p> }
                                            });
                                            view! {
                                                {warning}
                                                {category_panel(c, d, q.get("key"), q.get("notice"), q.get("msg"))}
                                            }
                                                .into_any()
                                        }
                                        Err(error) => view! { <ErrorText error /> }.into_any(),
                                    }
                                })}
                            </Transition>
                        }
                            .into_any()
                    }
                }}
            </section>
        </div>
    }
}

/// The keys of a section under its nav link, each marked when not at its default.
fn nav_keys(section: Section, data: Option<&PolicyPage>) -> impl IntoView {
    let data = data.cloned();
    let Section::Keys(c) = section else { return None };
    Some({
        view! {
            <ul class="side-nav__keys">
                {keys_in(c)
                    .map(|s| {
                        let source = data.as_ref().and_then(|d| d.resolved(s.key)).map(|r| r.source);
                        let changed = source.is_some_and(|l| l != Layer::Default);
                        view! {
                            <li>
                                <a href=s.href() data-testid=format!("navkey-{}", s.key)>
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
) -> impl IntoView {
    let choices = d
        .resolved(keys::PROVIDER_REGISTRY)
        .and_then(|r| spec(&r.key).and_then(|s| s.parse_json(&r.value).ok()))
        .and_then(|v| v.as_providers().map(model_choices))
        .unwrap_or_default();
    keys_in(c)
        .filter_map(|s| {
            let resolved = d.resolved(s.key)?.clone();
            let parent_on =
                s.depends_on.and_then(|dep| d.resolved(dep.key)).map(|r| r.value.as_bool().unwrap_or(false));
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
                />
            })
        })
        .collect_view()
}
