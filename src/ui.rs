//! Small pieces shared by the pages: how times and errors read.

use leptos::prelude::*;

use crate::error::AppError;

/// How a stored timestamp reads on the page: `2026-01-02 03:04:05 UTC`.
pub fn show_time(at: &str) -> String {
    let mut s = at.replacen('T', " ", 1);
    if let Some(dot) = s.find('.') {
        s.truncate(dot);
    }
    s.trim_end_matches('Z').to_string() + " UTC"
}

/// The attribute that marks a page rendered with an error (a failed load), so that the server
/// never keeps it for the next request (`web/page_cache.rs`).
pub const RENDER_ERROR_ATTR: &str = "data-render-error";

/// An error as a person reads it, announced to screen readers.
#[component]
pub fn ErrorText(error: AppError) -> impl IntoView {
    view! { <p class="error" role="alert" data-render-error="">{error.to_string()}</p> }
}

/// The outcome of a form, as the address it was sent back to tells it (`notice`, `msg`): every
/// form posts and is sent back to its page, with or without JavaScript. With `keyless`, only an
/// outcome that names no key (a key's own outcome shows beside the key).
#[component]
pub fn FormOutcome(testid: &'static str, #[prop(optional)] keyless: bool) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map().get_untracked();
    let outcome = match (query.get("notice"), query.get("key")) {
        (Some(_), Some(_)) if keyless => None,
        (Some(notice), _) => Some((notice != "error", query.get("msg").unwrap_or_default())),
        (None, _) => None,
    };
    outcome.map(|(ok, msg)| {
        view! {
            <p
                class=if ok { "outcome outcome--ok" } else { "outcome outcome--error" }
                role=if ok { "status" } else { "alert" }
                data-testid=testid
            >
                {msg}
            </p>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "ssr")]
    #[test]
    fn an_error_marks_the_page() {
        let html = view! { <ErrorText error=AppError::internal() /> }.to_html();
        assert!(html.contains(RENDER_ERROR_ATTR), "{html}");
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(show_time("2026-01-02T03:04:05.123456Z"), "2026-01-02 03:04:05 UTC");
    }
}
