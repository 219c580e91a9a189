//! The app: the HTML shell, the routes, the top bar and the not-found page. Only the
//! composition root (`web/`) and the wasm entry point use it.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes, A},
    path, SsrMode,
};

use crate::auth::types::Role;
use crate::auth::{provide_auth, Auth, LoginPage, SetupPage, UserMenu};
use crate::paths;
use crate::runs::fleet_view::FleetPage;
use crate::runs::{RunPage, RunsArea, RunsPage};
use crate::settings::{SettingsArea, SettingsPage};

/// The Content-Security-Policy of a page: scripts only from this site or inline with the
/// page's nonce (the hydration script), wasm allowed to compile, no frames, no plugins.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The HTML document around the app, rendered on the server only. It sends the page's CSP,
/// with the nonce Leptos puts on its inline scripts.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(res)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>()) {
        if let Ok(value) = axum::http::HeaderValue::from_str(&page_csp(&nonce)) {
            res.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    // In the shell, not the app: its address names the bundle's folder, which only the server
    // knows.
    let css = format!("/{}/runtime-policy.css", options.site_pkg_dir);
    // Only islands hydrate, after the first paint (`islands_load.js`); links and plain forms
    // then swap the page's body in place (`islands_nav.js`). Leptos' own islands router patches
    // the old page node by node and left stale fields behind (ARCHITECTURE.md). As Leptos'
    // `HydrationScripts` does in islands mode, the page outside the islands is rendered as not
    // hydrating: it sends nothing for the browser to hydrate.
    if let Some(sc) = Owner::current_shared_context() {
        sc.set_is_hydrating(false);
    }
    let pkg = format!("/{}/{}", options.site_pkg_dir, options.output_name);
    let bundle = |path: String| serde_json::to_string(&path).unwrap_or_default();
    let load = format!(
        "{}({}, {});",
        include_str!("islands_load.js").trim_end(),
        bundle(format!("{pkg}.js")),
        bundle(format!("{pkg}_bg.wasm"))
    );
    let scripts = view! {
        <script type="module" nonce=leptos::nonce::use_nonce()>{load}</script>
        <script type="module" nonce=leptos::nonce::use_nonce()>{include_str!("islands_nav.js")}</script>
    };
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" href=css />
                {scripts}
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
        <Title text="Runtime Policy" />
        <Router>
            <header class="topbar">
                <a class="brand" href="/">
                    "Runtime Policy"
                </a>
                <MainNav />
                <UserMenu />
            </header>
            <main id="main">
                <Routes fallback=NotFound>
                    // Async: the whole page (the signed-in user included) is rendered before it is
                    // sent, so it works with JavaScript off and the status can still be set.
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/setup") view=SetupPage ssr=SsrMode::Async />
                    <ParentRoute
                        path=path!("/app/settings/superuser")
                        view=SettingsArea
                        ssr=SsrMode::Async
                    >
                        <Route path=path!("") view=SettingsPage ssr=SsrMode::Async />
                        <Route path=path!(":category") view=SettingsPage ssr=SsrMode::Async />
                    </ParentRoute>
                    // Rendered whole before sending, so the run pages and their form also work
                    // without JavaScript.
                    <ParentRoute path=path!("/app/runs") view=RunsArea ssr=SsrMode::Async>
                        <Route path=path!("") view=RunsPage ssr=SsrMode::Async />
                        <Route path=path!("fleet") view=FleetPage ssr=SsrMode::Async />
                        <Route path=path!(":id") view=RunPage ssr=SsrMode::Async />
                    </ParentRoute>
                </Routes>
            </main>
        </Router>
    }
}

/// Links to the two areas, for whoever is signed in (the server checks access either way).
#[component]
fn MainNav() -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                auth.user
                    .await
                    .ok()
                    .flatten()
                    .map(|u| {
                        let superuser = u.role == Role::Superuser;
                        view! {
                            <nav class="main-nav" aria-label="Main">
                                {superuser.then(|| view! { <A href=paths::SETTINGS>"Settings"</A> })}
                                <A href=paths::RUNS>"Runs"</A>
                            </nav>
                        }
                    })
            })}
        </Transition>
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
                <a href=paths::SETTINGS>"Back to the settings"</a>
            </p>
        </section>
    }
}
