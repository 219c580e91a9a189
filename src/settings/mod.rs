//! The superuser settings page: a category side nav and a detail panel.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_params_map};

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

#[component]
pub fn SettingsPage() -> impl IntoView {
    let params = use_params_map();
    // `None` means the slug in the address names no category.
    let category = Memo::new(move |_| match params.read().get("category") {
        None => Some(Category::Models),
        Some(slug) => Category::from_slug(&slug),
    });

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
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </nav>
            <section class="detail-panel" data-testid="detail-panel" aria-live="polite">
                {move || match category.get() {
                    Some(c) => {
                        view! {
                            <h1 data-testid="panel-title">{c.label()}</h1>
                            <p class="summary">{c.summary()}</p>
                        }
                            .into_any()
                    }
                    None => {
                        view! {
                            <h1 data-testid="panel-title">"Unknown category"</h1>
                            <p class="summary">"Pick a category from the list."</p>
                        }
                            .into_any()
                    }
                }}
            </section>
        </div>
    }
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
}
