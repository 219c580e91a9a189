use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    path, SsrMode,
};

use crate::auth::{provide_auth, LoginPage, SuperuserArea, UserMenu};
use crate::runs::{RunPage, RunsArea, RunsPage};
use crate::settings::SettingsPage;

/// Where `/` sends a visitor.
pub const HOME_PATH: &str = "/app/settings/superuser";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_auth();
    view! {
        <Stylesheet id="leptos" href="/pkg/runtime-policy.css" />
        <Title text="Runtime Policy" />
        <Router>
            <header class="topbar">
                <a class="brand" href=HOME_PATH>
                    "Runtime Policy"
                </a>
                <UserMenu />
            </header>
            <main id="main">
                <Routes fallback=NotFound>
                    <Route path=path!("/login") view=LoginPage />
                    <ParentRoute path=path!("/app/settings/superuser") view=SuperuserArea>
                        <Route path=path!("") view=SettingsPage />
                        <Route path=path!(":category") view=SettingsPage />
                    </ParentRoute>
                    // Rendered whole before sending, so the run pages and their form also work
                    // without JavaScript.
                    <ParentRoute path=path!("/app/runs") view=RunsArea ssr=SsrMode::Async>
                        <Route path=path!("") view=RunsPage ssr=SsrMode::Async />
                        <Route path=path!(":id") view=RunPage ssr=SsrMode::Async />
                    </ParentRoute>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <section class="notice">
            <h1>"Page not found"</h1>
            <p>
                <a href=HOME_PATH>"Back to the settings"</a>
            </p>
        </section>
    }
}
