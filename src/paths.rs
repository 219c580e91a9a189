//! Every page and API path, and the helpers that build links to them. Shared by the server,
//! the wasm bundle, the reference worker and the tests, so a path is spelled once.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The sign-in page.
pub const LOGIN: &str = "/login";
/// First-run setup: creates the first superuser with the token the server printed at start.
pub const SETUP: &str = "/setup";
/// The superuser settings page: where a superuser lands.
pub const SETTINGS: &str = "/app/settings/superuser";
/// The run list: where a member lands.
pub const RUNS: &str = "/app/runs";
/// The fleet page (superusers).
pub const FLEET: &str = "/app/runs/fleet";
/// The run list's upload form posts here (a signed-in user's session).
pub const RUNS_UPLOAD: &str = "/app/runs/upload";
/// Liveness: 200 while the database answers.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: 200 while the database answers, every migration is applied and the server is not
/// stopping.
pub const READYZ: &str = "/readyz";
/// Counters and latencies in the Prometheus text format.
pub const METRICS: &str = "/metrics";
/// Downloads of the audit log.
pub const AUDIT_EXPORT_CSV: &str = "/api/v1/audit/export.csv";
pub const AUDIT_EXPORT_JSON: &str = "/api/v1/audit/export.json";

/// The worker API, as axum route templates.
pub const API_RUNS: &str = "/api/v1/runs";
pub const API_POLICY: &str = "/api/v1/policy";
pub const API_POLICY_KEY: &str = "/api/v1/policy/{key}";
pub const API_POLICY_EXPORT: &str = "/api/v1/policy/export";
pub const API_POLICY_IMPORT: &str = "/api/v1/policy/import";
pub const API_POLICY_CHANGE_SETS: &str = "/api/v1/policy/change-sets";
pub const API_POLICY_REQUESTS: &str = "/api/v1/policy/change-requests";
pub const API_POLICY_REQUEST_DECISION: &str = "/api/v1/policy/change-requests/{id}/{decision}";
pub const API_POLICY_REVISIONS: &str = "/api/v1/policy/revisions";
pub const API_POLICY_REVISION: &str = "/api/v1/policy/revisions/{n}";
pub const API_AUDIT: &str = "/api/v1/audit";
pub const API_OPENAPI: &str = "/api/v1/openapi.json";
pub const API_RUN: &str = "/api/v1/runs/{id}";
pub const API_RUN_EVENTS: &str = "/api/v1/runs/{id}/events";
pub const API_BATCH_COMPLETE: &str = "/api/v1/runs/{id}/batches/{batch_id}/complete";
pub const API_RUN_POLICY: &str = "/api/v1/runs/{id}/policy";
pub const API_RUN_CLAIMS: &str = "/api/v1/runs/{id}/claims";
pub const API_BLOCK_COMPLETE: &str = "/api/v1/runs/{id}/blocks/{uid}/complete";
pub const API_BLOCK_FAIL: &str = "/api/v1/runs/{id}/blocks/{uid}/fail";

/// The one-time setup address on `origin` (`http://127.0.0.1:3000`) for `token`.
pub fn setup_href(origin: &str, token: &str) -> String {
    format!("{}{SETUP}?token={}", origin.trim_end_matches('/'), encode_query(token))
}

/// Everything but unreserved characters (RFC 3986) is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same, keeping `/`: a path carried in a query value stays readable.
const PATH_VALUE: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Percent-encodes a query-string value (or one path segment).
pub fn encode_query(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// `/login?next=<path>`, with `path` percent-encoded.
pub fn login_href(next: &str) -> String {
    format!("{LOGIN}?next={}", utf8_percent_encode(next, PATH_VALUE))
}

/// Where a person lands after signing in (and from `/`): superusers on the settings, everyone
/// else on the runs.
pub fn home_for(superuser: bool) -> &'static str {
    if superuser {
        SETTINGS
    } else {
        RUNS
    }
}

/// Where to go after signing in: `next` when it is a path on this site, else the settings
/// page. A path starts with one `/`; `//host`, a scheme, a backslash (which browsers read as
/// `/`) or a control character (which browsers strip, turning `/\t/host` into `//host`) would
/// let a link send people to another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2048 =>
        {
            n.to_string()
        }
        _ => SETTINGS.to_string(),
    }
}

/// True for the settings page and everything under it (superusers only).
pub fn is_settings_page(path: &str) -> bool {
    path == SETTINGS || path.strip_prefix(SETTINGS).is_some_and(|rest| rest.starts_with('/'))
}

/// One section of the settings page, by its slug.
pub fn settings_section(slug: &str) -> String {
    format!("{SETTINGS}/{slug}")
}

/// The id of a key's section on the settings page, usable as a URL fragment.
pub fn key_anchor(key: &str) -> String {
    format!("key-{}", key.replace('.', "-"))
}

/// The deep link to one key, in the section of its category.
pub fn key_link(category_slug: &str, key: &str) -> String {
    format!("{}?key={}#{}", settings_section(category_slug), encode_query(key), key_anchor(key))
}

/// A run's page.
pub fn run_href(id: i64) -> String {
    format!("{RUNS}/{id}")
}

fn with_run(template: &str, run_id: i64) -> String {
    template.replace("{id}", &run_id.to_string())
}

pub fn api_run_policy(run_id: i64) -> String {
    with_run(API_RUN_POLICY, run_id)
}

pub fn api_run(run_id: i64) -> String {
    with_run(API_RUN, run_id)
}

pub fn api_run_events(run_id: i64) -> String {
    with_run(API_RUN_EVENTS, run_id)
}

pub fn api_batch_complete(run_id: i64, batch_id: &str) -> String {
    with_run(API_BATCH_COMPLETE, run_id).replace("{batch_id}", &utf8_percent_encode(batch_id, PATH_VALUE).to_string())
}

pub fn api_run_claims(run_id: i64) -> String {
    with_run(API_RUN_CLAIMS, run_id)
}

pub fn api_block_complete(run_id: i64, uid: &str) -> String {
    with_run(API_BLOCK_COMPLETE, run_id).replace("{uid}", &encode_query(uid))
}

pub fn api_block_fail(run_id: i64, uid: &str) -> String {
    with_run(API_BLOCK_FAIL, run_id).replace("{uid}", &encode_query(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_only_same_site_paths() {
        assert_eq!(safe_next(Some("/app/settings/superuser/worker")), "/app/settings/superuser/worker");
        assert_eq!(safe_next(Some("/x?y=1")), "/x?y=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "/\t/evil.example",
            "javascript:alert(1)",
            "",
            "evil",
        ] {
            assert_eq!(safe_next(Some(bad)), SETTINGS, "{bad:?}");
        }
        assert_eq!(safe_next(None), SETTINGS);
    }

    #[test]
    fn login_path_encodes_next() {
        assert_eq!(login_href("/app/settings/superuser?a=b&c"), "/login?next=/app/settings/superuser%3Fa%3Db%26c");
    }

    #[test]
    fn links_are_encoded_once() {
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
        assert_eq!(encode_query("é"), "%C3%A9");
        assert_eq!(
            key_link("worker", "worker.claim_batch_size"),
            "/app/settings/superuser/worker?key=worker.claim_batch_size#key-worker-claim_batch_size"
        );
        assert_eq!(api_block_complete(3, "r1-b2/x"), "/api/v1/runs/3/blocks/r1-b2%2Fx/complete");
        assert_eq!(api_run_claims(7), "/api/v1/runs/7/claims");
        assert!(is_settings_page("/app/settings/superuser/audit"));
        assert!(!is_settings_page("/app/settings/superuserx"));
        assert_eq!((home_for(true), home_for(false)), (SETTINGS, RUNS));
    }
}
