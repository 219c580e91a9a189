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

/// The outcome of a form: what an action returned, or else (with `from_address`) what a form
/// posted without JavaScript carried back in the address (`notice`, `msg`; `notice=error` for
/// a refusal). `action` gives `(succeeded, sentence)`.
#[component]
pub fn FormOutcome(
    action: Signal<Option<(bool, String)>>,
    testid: &'static str,
    #[prop(optional)] from_address: bool,
) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let outcome = move || {
        action.get().or_else(|| {
            if !from_address {
                return None;
            }
            let q = query.read();
            let (notice, msg) = (q.get("notice")?, q.get("msg").unwrap_or_default());
            Some((notice != "error", msg))
        })
    };
    move || {
        outcome().map(|(ok, msg)| {
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
