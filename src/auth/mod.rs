//! Sign-in and access control: the login page, the sign-out button, the 403 page and the
//! parent routes of the signed-in areas. The checks that count run on the server (`guard.rs`,
//! and the middleware in `web/`); what the components hide or show is only for the people
//! using the page.

pub mod api;
pub mod types;

#[cfg(feature = "ssr")]
pub mod api_token;
#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod guard;
#[cfg(feature = "ssr")]
pub mod password;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod setup;
#[cfg(feature = "ssr")]
pub mod signin;
#[cfg(feature = "ssr")]
pub mod token;
#[cfg(feature = "ssr")]
pub mod users;

use leptos::prelude::*;
use leptos_router::components::{Outlet, Redirect};
use leptos_router::hooks::{use_location, use_query_map};

use self::api::{current_user, setup_state, FirstSuperuser, Login, Logout};
use self::types::{AuthUser, Role, SetupStatus};
use crate::error::AppError;
use crate::paths::login_href;
use crate::ui::ErrorText;

/// The sign-in state of the page, provided once by [`provide_auth`].
#[derive(Clone, Copy)]
pub struct Auth {
    /// The signed-in user, loaded with the page (blocking, so the server render knows it).
    pub user: Resource<Result<Option<AuthUser>, AppError>>,
}

/// Puts [`Auth`] into context. Signing in or out reloads the whole page, so the user resource
/// never has to be refreshed in place.
pub fn provide_auth() -> Auth {
    let auth = Auth { user: Resource::new_blocking(|| (), |_| current_user()) };
    provide_context(auth);
    auth
}

#[component]
pub fn LoginPage() -> impl IntoView {
    // Created inside the router, so an error carried back to a plain form post shows here.
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let error = move || login.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    // Whether a superuser exists yet, for the first-run hint.
    let first_run = Resource::new(|| (), |_| setup_state(String::new()));
    view! {
        <section class="login" data-testid="login-page">
            <h1>"Sign in"</h1>
            <ActionForm action=login>
                <input type="hidden" name="next" value=next />
                <label>
                    "Email" <input type="email" name="email" autocomplete="username" required data-testid="login-email" />
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        required
                        data-testid="login-password"
                    />
                </label>
                <button type="submit" data-testid="login-submit">
                    "Sign in"
                </button>
            </ActionForm>
            {move || {
                error()
                    .map(|m| {
                        view! {
                            <p class="error" role="alert" data-testid="login-error">
                                {m}
                            </p>
                        }
                    })
            }}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    (first_run.await.ok() != Some(SetupStatus::Done))
                        .then(|| {
                            view! {
                                <p class="notice-banner" data-testid="first-run-hint">
                                    "No superuser exists yet. When the server started, it printed a one-time setup address "
                                    "(in its terminal or log, ending in "
                                    <code>"/setup?token=…"</code>
                                    "): open it to create the first superuser. On the host, "
                                    <code>"runtime-policy user create EMAIL --role superuser"</code>
                                    " does the same."
                                </p>
                            }
                        })
                })}
            </Suspense>
        </section>
    }
}

/// First run: creates the first superuser with the one-time address the server printed, then
/// signs them in. Any other address, a used one, or one opened after a superuser exists is
/// refused (with status 403 from the server).
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let status = Resource::new(token, setup_state);
    let create = ServerAction::<FirstSuperuser>::new();
    let error = move || create.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    view! {
        <section class="login" data-testid="setup-page">
            <h1>"Create the first superuser"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(SetupStatus::Open) => {
                            view! {
                                <ActionForm action=create>
                                    <input type="hidden" name="token" value=token />
                                    <label>
                                        "Email"
                                        <input type="email" name="email" autocomplete="username" required data-testid="setup-email" />
                                    </label>
                                    <label>
                                        "Password (at least 12 characters)"
                                        <input
                                            type="password"
                                            name="password"
                                            autocomplete="new-password"
                                            minlength="12"
                                            required
                                            data-testid="setup-password"
                                        />
                                    </label>
                                    <label>
                                        "The same password again"
                                        <input
                                            type="password"
                                            name="password_again"
                                            autocomplete="new-password"
                                            minlength="12"
                                            required
                                            data-testid="setup-password-again"
                                        />
                                    </label>
                                    <button type="submit" data-testid="setup-submit">
                                        "Create and sign in"
                                    </button>
                                </ActionForm>
                            }
                                .into_any()
                        }
                        Ok(SetupStatus::WrongToken) => {
                            refuse_on_server();
                            view! {
                                <p class="error" role="alert" data-testid="setup-refused">
                                    "This setup address is not valid: it was used already, or it is not the one the server printed at start. "
                                    "Restart the server to get a new one, or create a superuser with the CLI."
                                </p>
                            }
                                .into_any()
                        }
                        Ok(SetupStatus::Done) => {
                            refuse_on_server();
                            view! {
                                <p data-testid="setup-done">
                                    "A superuser exists already. " <a href=crate::paths::LOGIN>"Sign in"</a>
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorText error /> }.into_any(),
                    }
                })}
            </Suspense>
            {move || {
                error()
                    .map(|m| {
                        view! {
                            <p class="error" role="alert" data-testid="setup-error">
                                {m}
                            </p>
                        }
                    })
            }}
        </section>
    }
}

/// A refused setup page answers 403 when rendered on the server.
fn refuse_on_server() {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::FORBIDDEN);
    }
}

/// A POST form, so a link prefetch or a cross-site image can never sign anyone out.
#[component]
pub fn LogoutButton() -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        // Signing out forgets what the settings page kept in this tab (drafts, staged edits).
        <ActionForm action=logout attr:data-done="rp.*">
            <button type="submit" class="link-button" data-testid="logout">
                "Sign out"
            </button>
        </ActionForm>
    }
}

/// The signed-in user's address and the sign-out button, for the top bar.
#[component]
pub fn UserMenu() -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                auth.user
                    .await
                    .ok()
                    .flatten()
                    .map(|u| {
                        view! {
                            // `data-user`: the tab's store (drafts, staged edits) belongs to
                            // this user; `islands_nav.js` forgets it when another signs in.
                            <div class="user-menu" data-user=u.id.to_string()>
                                <span data-testid="whoami">{u.email}</span>
                                <LogoutButton />
                            </div>
                        }
                    })
            })}
        </Transition>
    }
}

/// The 403 page, with status 403 when rendered on the server.
#[component]
pub fn Forbidden() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::FORBIDDEN);
        }
    }
    view! {
        <section class="notice" data-testid="forbidden">
            <h1>"Not allowed"</h1>
            <p>"This page is for superusers. Ask one if you need a change here."</p>
        </section>
    }
}

/// Parent route of the superuser pages: the page for a superuser, the 403 page for a member,
/// the login page for anyone else. The server enforces the same before rendering (and every
/// server function checks again); this keeps client-side navigation consistent with it.
#[component]
pub fn SuperuserArea() -> impl IntoView {
    signed_in_area(true)
}

/// The pages under a parent route for signed-in users (`superuser_only`: superusers, others
/// get the 403 page); anyone else is sent to sign in and brought back to the same address.
pub fn signed_in_area(superuser_only: bool) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let location = use_location();
    view! {
        // The router builds the page under this more than once while rendering on the server:
        // a page's data is made by its area (`SettingsArea`, `RunsArea`), not by the page.
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(u)) if !superuser_only || u.role == Role::Superuser => view! { <Outlet /> }.into_any(),
                    Ok(Some(_)) => view! { <Forbidden /> }.into_any(),
                    _ => {
                        let path = location.pathname.get_untracked();
                        let search = location.search.get_untracked();
                        let search = search.trim_start_matches('?');
                        let here = if search.is_empty() { path } else { format!("{path}?{search}") };
                        view! { <Redirect path=login_href(&here) /> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
