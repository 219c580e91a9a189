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

/// An error as a person reads it, announced to screen readers.
#[component]
pub fn ErrorText(error: AppError) -> impl IntoView {
    view! { <p class="error" role="alert">{error.to_string()}</p> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(show_time("2026-01-02T03:04:05.123456Z"), "2026-01-02 03:04:05 UTC");
    }
}
