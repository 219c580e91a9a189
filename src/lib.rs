//! Runtime Policy: a control plane for the runtime policy of a worker fleet.
//!
//! One crate, built twice: with `ssr` it is the server (axum, sqlx, sessions) and the
//! `runtime-policy` binary; with `hydrate` it is the wasm library that hydrates the pages.

// The layers, lowest first (ARCHITECTURE.md; `tests/it/layers.rs` enforces them):
// paths, error, config, db -> policy -> auth, runs, settings internals -> state
// -> server functions and HTTP handlers -> components -> app -> web.
pub mod error;
pub mod paths;

#[cfg(feature = "ssr")]
pub mod api_doc;
#[cfg(feature = "ssr")]
pub mod context;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod request_id;

pub mod policy;

pub mod auth;
pub mod runs;
pub mod settings;

pub mod ui;

pub mod app;

#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod web;

/// Entry point of the wasm bundle: hydrates the server-rendered page, then marks `<body>` so
/// tests (and anything else) can tell that the page is interactive.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // The page's script hydrates each island after this.
    leptos::mount::hydrate_islands();
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
