//! Sign-in and access control, through the real router on both backends: every server function
//! and API route for every kind of caller, sessions, cookies, throttling, cross-site requests.

use std::net::SocketAddr;

use crate::helpers::TestDb;
use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use runtime_policy::auth::password::{Hasher, NewPassword};
use runtime_policy::auth::token::{
    create_token, list_tokens, revoke_token, verify_worker_token, Grant, TokenName, TOKEN_REQUIRED,
};
use runtime_policy::auth::types::Role;
use runtime_policy::auth::users::{create_user, disable_user, list_users, Email};
use runtime_policy::error::AppError;
use runtime_policy::paths::{self, login_href};
use runtime_policy::state::AppState;
use runtime_policy::web::middleware::server_fn_paths;
use runtime_policy::web::{api_routes, router};
use sqlx::Row;
use tower::ServiceExt;

const HOST: &str = "rp.test";
const SUPER: (&str, &str) = ("root@example.com", "correct horse battery");
const MEMBER: (&str, &str) = ("member@example.com", "member password 1");

struct Res {
    status: StatusCode,
    location: Option<String>,
    retry_after: Option<String>,
    set_cookie: Vec<String>,
    csp: Option<String>,
    request_id: Option<String>,
    body: String,
}

/// A browser-like caller: a client address, and the session cookie it was last given.
struct Caller {
    app: Router,
    ip: [u8; 4],
    cookie: Option<String>,
}

impl Caller {
    fn new(app: &Router, ip: [u8; 4]) -> Caller {
        Caller { app: app.clone(), ip, cookie: None }
    }

    async fn send(&mut self, method: Method, path: &str, body: &str, extra: &[(&str, &str)]) -> Res {
        self.send_bytes(method, path, body.as_bytes().to_vec(), extra).await
    }

    async fn send_bytes(&mut self, method: Method, path: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Res {
        let mut req = Request::builder().method(method.clone()).uri(path).header(header::HOST, HOST);
        if method == Method::POST {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, format!("http://{HOST}"));
        }
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c.as_str());
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from((self.ip, 40000))));
        let res = match tokio::time::timeout(std::time::Duration::from_secs(20), self.app.clone().oneshot(req)).await {
            Ok(res) => res.unwrap(),
            Err(_) => panic!("{method} {path} got no answer within 20 s"),
        };
        let status = res.status();
        let location = res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string());
        let retry_after = res.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
        let csp = res.headers().get(header::CONTENT_SECURITY_POLICY).map(|v| v.to_str().unwrap().to_string());
        let request_id = res.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
        let set_cookie: Vec<String> =
            res.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        for c in &set_cookie {
            let pair = c.split(';').next().unwrap().to_string();
            if c.contains("Max-Age=0") || c.contains("max-age=0") {
                self.cookie = None;
            } else {
                self.cookie = Some(pair);
            }
        }
        let body = to_bytes(res.into_body(), 1 << 22).await.unwrap();
        Res {
            status,
            location,
            retry_after,
            set_cookie,
            csp,
            request_id,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn post(&mut self, path: &str, body: &str) -> Res {
        self.send(Method::POST, path, body, &[]).await
    }

    async fn get(&mut self, path: &str) -> Res {
        self.send(Method::GET, path, "", &[]).await
    }

    async fn login(&mut self, email: &str, password: &str) -> Res {
        self.post("/api/login", &form(&[("email", email), ("password", password)])).await
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn add_user(state: &AppState, (email, password): (&str, &str), role: Role) -> i64 {
    let hash = state.auth.hasher.hash(NewPassword::parse(password).unwrap()).await.unwrap();
    create_user(&state.db, &Email::parse(email).unwrap(), role, &hash).await.unwrap().id
}

async fn setup(t: &TestDb) -> (AppState, Router) {
    let state = t.state().await;
    add_user(&state, SUPER, Role::Superuser).await;
    add_user(&state, MEMBER, Role::Member).await;
    let app = router(state.clone());
    (state, app)
}

/// Row counts of every application table, plus the content of the ones this feature owns:
/// what a refused call must leave as it was. Sessions and sign-in failures are bookkeeping.
async fn snapshot(state: &AppState) -> Vec<String> {
    let db = &state.db;
    let tables_sql = match db.backend {
        runtime_policy::config::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        runtime_policy::config::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    let mut out = Vec::new();
    for row in sqlx::query(tables_sql).fetch_all(&db.pool).await.unwrap() {
        let name: String = row.try_get("name").unwrap();
        if matches!(name.as_str(), "tower_sessions" | "sign_in_failures" | "_sqlx_migrations") {
            continue;
        }
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {name}"))
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        out.push(format!("{name}: {n}"));
    }
    for u in list_users(db).await.unwrap() {
        out.push(format!("{u:?}"));
    }
    for tk in list_tokens(db).await.unwrap() {
        out.push(format!("{tk:?}"));
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Anonymous,
    Member,
    Superuser,
}

/// One row per server function: a request body that would change something if it were
/// allowed, and the status each caller must get. A server function missing from here fails
/// the test, so a new one cannot go unchecked.
struct Case {
    path: &'static str,
    body: &'static str,
    anonymous: u16,
    member: u16,
    superuser: u16,
}

const SERVER_FN_CASES: &[Case] = &[
    // Wrong credentials whoever calls: nobody is signed in as someone else.
    Case {
        path: "/api/login",
        body: "email=root%40example.com&password=wrong+password",
        anonymous: 401,
        member: 401,
        superuser: 401,
    },
    // Ends only the caller's own session; the table check below still sees nothing changed.
    Case { path: "/api/logout", body: "", anonymous: 200, member: 200, superuser: 200 },
    Case { path: "/api/current_user", body: "", anonymous: 200, member: 200, superuser: 200 },
    // First-run setup: public, the printed token is the credential; once a superuser exists
    // (as here) it is refused whoever calls.
    Case { path: "/api/setup_state", body: "token=nope", anonymous: 200, member: 200, superuser: 200 },
    Case {
        path: "/api/first_superuser",
        body: "token=nope&email=new%40example.com&password=long+enough+pw&password_again=long+enough+pw",
        anonymous: 403,
        member: 403,
        superuser: 403,
    },
    // Policy functions: superusers only. The superuser's call is one the store turns down
    // (out of range, nothing to reset, no such audit row), so the table check still holds.
    Case { path: "/api/settings_data", body: "category=worker", anonymous: 401, member: 403, superuser: 200 },
    Case {
        path: "/api/save_policy",
        body: "key=worker.max_retries&value=99&expected_version=0",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case {
        path: "/api/reset_policy",
        body: "key=worker.max_retries&expected_version=0",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case {
        path: "/api/pin_policy",
        body: "key=worker.max_retries&expected_version=5",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case { path: "/api/policy_revisions", body: "rev=1", anonymous: 401, member: 403, superuser: 200 },
    Case { path: "/api/change_requests", body: "", anonymous: 401, member: 403, superuser: 200 },
    Case { path: "/api/integrations_data", body: "", anonymous: 401, member: 403, superuser: 200 },
    // A token name that is not allowed: refused, nothing written.
    Case {
        path: "/api/integration_action",
        body: "action=create_token&name=not+allowed",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    // Out of bounds: refused, nothing written.
    Case {
        path: "/api/apply_changes",
        body: "changes=%5B%7B%22key%22%3A%22worker.claim_batch_size%22%2C%22text%22%3A%22500%22%2C%22expected_version%22%3A0%7D%5D",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case {
        path: "/api/decide_request",
        body: "id=999&decision=approve&comment=ok",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case {
        path: "/api/restore_policy",
        body: "revision=999&shown_revision=0",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case {
        path: "/api/revert_policy",
        body: "key=worker.max_retries&audit_id=999&expected_version=0",
        anonymous: 401,
        member: 403,
        superuser: 200,
    },
    Case { path: "/api/audit_log", body: "", anonymous: 401, member: 403, superuser: 200 },
    // Runs: members and superusers. Creating needs text, so an empty body changes nothing.
    Case { path: "/api/list_runs", body: "", anonymous: 401, member: 200, superuser: 200 },
    Case { path: "/api/get_run", body: "id=1", anonymous: 401, member: 404, superuser: 404 },
    Case { path: "/api/create_run", body: "text=", anonymous: 401, member: 422, superuser: 422 },
    // The fleet: superusers only.
    Case { path: "/api/fleet", body: "", anonymous: 401, member: 403, superuser: 200 },
];

/// Pages with an access rule: the status each caller gets.
const PAGE_CASES: &[(&str, u16, u16, u16)] = &[
    ("/app/settings/superuser", 303, 403, 200),
    ("/app/settings/superuser/worker", 303, 403, 200),
    ("/app/settings/superuser/audit", 303, 403, 200),
    ("/login", 200, 200, 200),
    ("/setup?token=nope", 403, 403, 403),
];

/// Where `/` sends each caller: superusers (and anonymous visitors, on their way to sign in) to
/// the settings, members to their runs.
const ROOT_CASES: [&str; 3] = ["/app/settings/superuser", "/app/runs", "/app/settings/superuser"];

/// API routes outside Leptos: the status each caller (with a session, not a worker token) gets.
const API_CASES: &[(&str, u16, u16, u16)] = &[
    ("/healthz", 200, 200, 200),
    (paths::READYZ, 200, 200, 200),
    // From these test addresses (not loopback) only a superuser's session reads the metrics.
    (paths::METRICS, 403, 403, 200),
    (paths::AUDIT_EXPORT_CSV, 401, 403, 200),
    (paths::AUDIT_EXPORT_JSON, 401, 403, 200),
    // The worker API takes a bearer token, never a session.
    (paths::API_RUNS, 401, 401, 401),
    (paths::API_RUN_POLICY, 401, 401, 401),
    (paths::API_RUN_CLAIMS, 401, 401, 401),
    (paths::API_BLOCK_COMPLETE, 401, 401, 401),
    (paths::API_BLOCK_FAIL, 401, 401, 401),
    // The run list's upload form: a browser is sent to sign in, or back to the list with the
    // error (an empty body holds no file).
    (paths::RUNS_UPLOAD, 303, 303, 303),
    (paths::API_RUN, 401, 401, 401),
    (paths::API_RUN_EVENTS, 401, 401, 401),
    (paths::API_BATCH_COMPLETE, 401, 401, 401),
    // The policy API: a bearer API token or a superuser's session (the literal `{key}` is no key).
    (paths::API_POLICY, 401, 403, 200),
    (paths::API_POLICY_KEY, 401, 403, 404),
    (paths::API_POLICY_EXPORT, 401, 403, 200),
    // An empty body is no document.
    (paths::API_POLICY_IMPORT, 401, 403, 400),
    (paths::API_POLICY_CHANGE_SETS, 401, 403, 400),
    (paths::API_POLICY_REQUESTS, 401, 403, 200),
    (paths::API_POLICY_REQUEST_DECISION, 401, 403, 422),
    (paths::API_POLICY_REVISIONS, 401, 403, 200),
    (paths::API_POLICY_REVISION, 401, 403, 422),
    (paths::API_AUDIT, 401, 403, 200),
    // It describes the API and holds nothing else.
    (paths::API_OPENAPI, 200, 200, 200),
];

/// The same routes called with a bearer token and no session: a worker token with the default
/// grant (runs:create, runs:work, snapshot:read) and a read-only personal API token (policy:read,
/// audit:read). `None` as the method: every method of the path.
const TOKEN_API_CASES: &[(&str, Option<Method>, u16, u16)] = &[
    ("/healthz", None, 200, 200),
    (paths::READYZ, None, 200, 200),
    (paths::METRICS, None, 403, 403),
    // The page's downloads need the session.
    (paths::AUDIT_EXPORT_CSV, None, 401, 401),
    (paths::AUDIT_EXPORT_JSON, None, 401, 401),
    // The worker API: an API token is no worker token; the worker's literal `{id}` is no run.
    (paths::API_RUNS, None, 422, 401),
    (paths::API_RUN_POLICY, None, 422, 401),
    (paths::API_RUN_CLAIMS, None, 422, 401),
    (paths::API_BLOCK_COMPLETE, None, 422, 401),
    (paths::API_BLOCK_FAIL, None, 422, 401),
    // The upload form takes a session only.
    (paths::RUNS_UPLOAD, None, 303, 303),
    (paths::API_RUN, None, 422, 401),
    (paths::API_RUN_EVENTS, None, 422, 401),
    (paths::API_BATCH_COMPLETE, None, 422, 401),
    // Reads of the baseline take a worker token only with policy:read; writes never take one.
    (paths::API_POLICY, None, 403, 200),
    (paths::API_POLICY_KEY, Some(Method::GET), 403, 404),
    (paths::API_POLICY_KEY, Some(Method::PUT), 401, 403),
    (paths::API_POLICY_KEY, Some(Method::DELETE), 401, 403),
    (paths::API_POLICY_EXPORT, None, 401, 200),
    (paths::API_POLICY_IMPORT, None, 401, 403),
    (paths::API_POLICY_CHANGE_SETS, None, 401, 403),
    (paths::API_POLICY_REQUESTS, None, 401, 200),
    (paths::API_POLICY_REQUEST_DECISION, None, 401, 403),
    (paths::API_POLICY_REVISIONS, None, 401, 200),
    (paths::API_POLICY_REVISION, None, 401, 422),
    (paths::API_AUDIT, None, 401, 200),
    (paths::API_OPENAPI, None, 200, 200),
];

async fn caller_as(app: &Router, who: Who, ip: [u8; 4]) -> Caller {
    let mut c = Caller::new(app, ip);
    let creds = match who {
        Who::Anonymous => return c,
        Who::Member => MEMBER,
        Who::Superuser => SUPER,
    };
    let r = c.login(creds.0, creds.1).await;
    assert_eq!(r.status, StatusCode::OK, "sign-in as {who:?}: {}", r.body);
    c
}

on_both_backends!(every_server_function_and_route_checks_its_caller, |t| {
    let (state, app) = setup(&t).await;
    let worker_token = create_token(&state.db, &TokenName::parse("acl-worker").unwrap(), &Grant::all()).await.unwrap();
    let owner = list_users(&state.db).await.unwrap().into_iter().map(|r| r.user).find(|u| u.email == SUPER.0).unwrap();
    let read_only = runtime_policy::auth::api_token::ApiScope::parse_list(&[]).unwrap();
    let reader_token = runtime_policy::auth::api_token::create_api_token(
        &state.db,
        &TokenName::parse("acl-reader").unwrap(),
        &owner,
        &read_only,
        None,
    )
    .await
    .unwrap();
    let before = snapshot(&state).await;

    let registered = server_fn_paths();
    assert!(registered.len() >= 3, "{registered:?}");
    for (path, method) in &registered {
        let case = SERVER_FN_CASES.iter().find(|c| c.path == *path).unwrap_or_else(|| {
            panic!(
                "server function {path} has no row in SERVER_FN_CASES (tests/it/auth.rs): add one with a body \
                 that would change state, and the status for anonymous, member and superuser callers"
            )
        });
        // State changes only through POST; a GET must not reach any server function.
        assert_eq!(*method, Method::POST, "{path} must be POST");
        for (i, who) in [Who::Anonymous, Who::Member, Who::Superuser].into_iter().enumerate() {
            let expected = [case.anonymous, case.member, case.superuser][i];
            let mut c = caller_as(&app, who, [10, 0, 1, i as u8]).await;
            let r = c.post(path, case.body).await;
            assert_eq!(r.status.as_u16(), expected, "{path} as {who:?}: {}", r.body);
            // A GET never reaches a server function: 405, or 401 first when nobody is signed in
            // and the function is not public.
            let r = c.get(path).await;
            let refused_first =
                matches!(who, Who::Anonymous) && expected == 401 && r.status == StatusCode::UNAUTHORIZED;
            assert!(r.status == StatusCode::METHOD_NOT_ALLOWED || refused_first, "GET {path} as {who:?}: {}", r.status);
            assert_eq!(snapshot(&state).await, before, "{path} as {who:?} changed something");
        }
    }

    let routes: Vec<_> = api_routes().into_iter().map(|(p, m, _)| (p, m)).collect();
    for (path, method) in &routes {
        let &(_, a, m, s) = API_CASES
            .iter()
            .find(|c| c.0 == *path)
            .unwrap_or_else(|| panic!("API route {method} {path} has no row in API_CASES (tests/auth.rs)"));
        for (i, who) in [Who::Anonymous, Who::Member, Who::Superuser].into_iter().enumerate() {
            let mut c = caller_as(&app, who, [10, 0, 2, i as u8]).await;
            let r = c.send(method.clone(), path, "", &[]).await;
            assert_eq!(r.status.as_u16(), [a, m, s][i], "{method} {path} as {who:?}");
            assert_eq!(snapshot(&state).await, before, "{path} as {who:?} changed something");
        }
        let &(_, _, w, r) = TOKEN_API_CASES
            .iter()
            .find(|c| c.0 == *path && c.1.as_ref().is_none_or(|m| m == method))
            .unwrap_or_else(|| panic!("API route {method} {path} has no row in TOKEN_API_CASES (tests/auth.rs)"));
        for (who, token, expected) in [("worker token", &worker_token, w), ("read-only API token", &reader_token, r)] {
            let mut c = Caller::new(&app, [10, 0, 4, 1]);
            let bearer = format!("Bearer {token}");
            let res = c.send(method.clone(), path, "", &[("authorization", &bearer)]).await;
            assert_eq!(res.status.as_u16(), expected, "{method} {path} with a {who}: {}", res.body);
            assert_eq!(snapshot(&state).await, before, "{path} with a {who} changed something");
        }
    }

    for &(path, a, m, s) in PAGE_CASES {
        for (i, who) in [Who::Anonymous, Who::Member, Who::Superuser].into_iter().enumerate() {
            let mut c = caller_as(&app, who, [10, 0, 3, i as u8]).await;
            let r = c.get(path).await;
            assert_eq!(r.status.as_u16(), [a, m, s][i], "GET {path} as {who:?}");
            match who {
                Who::Anonymous if a == 303 => {
                    assert_eq!(r.location.as_deref(), Some(login_href(path).as_str()));
                }
                Who::Member if m == 403 && path.starts_with("/app/") => {
                    assert!(r.body.contains("data-testid=\"forbidden\""), "{}", r.body)
                }
                Who::Superuser if path.starts_with("/app/settings/superuser") => {
                    for label in ["Models", "Worker execution", "Optimization", "Upload", "Audit log"] {
                        assert!(r.body.contains(label), "nav lacks {label}");
                    }
                    assert!(!r.body.contains("data-testid=\"forbidden\""));
                }
                _ => {}
            }
        }
    }
    for (i, who) in [Who::Anonymous, Who::Member, Who::Superuser].into_iter().enumerate() {
        let mut c = caller_as(&app, who, [10, 0, 4, i as u8]).await;
        let r = c.get("/").await;
        assert_eq!(r.location.as_deref(), Some(ROOT_CASES[i]), "GET / as {who:?}");
    }
    assert_eq!(snapshot(&state).await, before);
    t.finish().await;
});

on_both_backends!(session_ids_are_stored_only_as_a_hash, |t| {
    let (state, app) = setup(&t).await;
    let mut c = Caller::new(&app, [10, 1, 9, 1]);
    assert_eq!(c.login(MEMBER.0, MEMBER.1).await.status, StatusCode::OK);
    let id = c.cookie.clone().unwrap().trim_start_matches("rp_session=").to_string();
    let table = match state.db.backend {
        runtime_policy::config::Backend::Sqlite => "tower_sessions",
        runtime_policy::config::Backend::Postgres => "tower_sessions.session",
    };
    let ids: Vec<String> = sqlx::query(&format!("SELECT id FROM {table}"))
        .fetch_all(&state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("id"))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], id, "the cookie's id is in the table");
    // The session works all the same.
    assert!(c.post("/api/current_user", "").await.body.contains(MEMBER.0));
    t.finish().await;
});

on_both_backends!(sign_in_rotates_the_session_and_sets_a_strict_cookie, |t| {
    let (_state, app) = setup(&t).await;
    let mut c = Caller::new(&app, [10, 1, 0, 1]);
    let r = c.login(MEMBER.0, MEMBER.1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A member asked for no page: their runs, not the settings they may not see.
    assert_eq!(r.body, "\"/app/runs\"");
    let cookie = r.set_cookie.iter().find(|c| c.starts_with("rp_session=")).expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(cookie.contains("Max-Age=1800"), "30-minute idle expiry: {cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let first = c.cookie.clone().unwrap();

    // Signing in again with that cookie (as someone else) gives a new session id, and the old
    // id is worth nothing any more.
    let r = c.login(SUPER.0, SUPER.1).await;
    assert_eq!(r.status, StatusCode::OK);
    let second = c.cookie.clone().unwrap();
    assert_ne!(first, second, "session id not rotated");
    let mut old = Caller::new(&app, [10, 1, 0, 2]);
    old.cookie = Some(first);
    assert_eq!(old.post("/api/current_user", "").await.body, "null");
    let me = c.post("/api/current_user", "").await.body;
    assert!(me.contains("\"root@example.com\"") && me.contains("\"superuser\""), "{me}");

    // A planted session id that the server never issued does not survive sign-in either.
    let mut planted = Caller::new(&app, [10, 1, 0, 3]);
    planted.cookie = Some("rp_session=AAAAAAAAAAAAAAAAAAAAAA".into());
    planted.login(MEMBER.0, MEMBER.1).await;
    assert_ne!(planted.cookie.as_deref(), Some("rp_session=AAAAAAAAAAAAAAAAAAAAAA"));

    // Sign-out flushes the session: the cookie is removed and the old value is dead.
    let before_logout = c.cookie.clone();
    let r = c.post("/api/logout", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(c.cookie.is_none(), "cookie not removed: {:?}", r.set_cookie);
    let mut replay = Caller::new(&app, [10, 1, 0, 4]);
    replay.cookie = before_logout;
    assert_eq!(replay.post("/api/current_user", "").await.body, "null");

    // Behind TLS the cookie is Secure, and named so browsers keep it to this host over HTTPS.
    let secure = router(t.state_with(true).await);
    let mut s = Caller::new(&secure, [10, 1, 0, 5]);
    let r = s.login(MEMBER.0, MEMBER.1).await;
    assert!(
        r.set_cookie
            .iter()
            .any(|c| c.starts_with("__Host-rp_session=") && c.contains("Secure") && c.contains("Path=/")),
        "{:?}",
        r.set_cookie
    );
    assert!(!r.set_cookie.iter().any(|c| c.contains("Domain=")), "{:?}", r.set_cookie);
    t.finish().await;
});

on_both_backends!(wrong_password_unknown_and_disabled_users_get_the_same_answer, |t| {
    let (state, app) = setup(&t).await;
    let mut c = Caller::new(&app, [10, 2, 0, 1]);
    let wrong = c.login(MEMBER.0, "not the password").await;
    let unknown = c.login("nobody@example.com", MEMBER.1).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.body.contains("Wrong email or password."), "{}", wrong.body);
    assert!(c.cookie.is_none());

    // Case does not matter in the address.
    let mut m = Caller::new(&app, [10, 2, 0, 2]);
    assert_eq!(m.login("Member@Example.COM", MEMBER.1).await.status, StatusCode::OK);
    assert_eq!(m.get("/app/settings/superuser").await.status, StatusCode::FORBIDDEN);

    // Disabling the member ends their live session at the next request, and they cannot sign in.
    disable_user(&state.db, &Email::parse(MEMBER.0).unwrap()).await.unwrap();
    assert_eq!(m.post("/api/current_user", "").await.body, "null");
    let r = m.get("/app/settings/superuser").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut again = Caller::new(&app, [10, 2, 0, 3]);
    let r = again.login(MEMBER.0, MEMBER.1).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, wrong.body);
    t.finish().await;
});

on_both_backends!(repeated_failures_are_throttled, |t| {
    let (_state, app) = setup(&t).await;
    // One client, one account: five failures are free, then that client waits, even with the
    // right password.
    let mut c = Caller::new(&app, [10, 3, 1, 1]);
    for i in 0..5 {
        let r = c.login(MEMBER.0, "wrong password!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = c.login(MEMBER.0, MEMBER.1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Too many failed sign-ins"), "{}", r.body);
    // The wait is in Retry-After and in the sentence, which is the whole message.
    let secs: u64 = r.retry_after.as_deref().expect("Retry-After").parse().unwrap();
    assert!(secs >= 1);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"], format!("Too many failed sign-ins; try again in {secs} seconds."));
    // The owner, at an address that has not failed, is not held back by them.
    assert_eq!(Caller::new(&app, [10, 3, 1, 9]).login(MEMBER.0, MEMBER.1).await.status, StatusCode::OK);
    // Another account is not affected either.
    let r = Caller::new(&app, [10, 3, 1, 10]).login(SUPER.0, SUPER.1).await;
    assert_eq!(r.status, StatusCode::OK);

    // Many addresses guessing one account: once it has five failures, an address that failed
    // for it waits; one that did not signs in.
    for i in 0..5u8 {
        let r = Caller::new(&app, [10, 3, 3, i]).login(SUPER.0, "wrong password!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = Caller::new(&app, [10, 3, 3, 0]).login(SUPER.0, "wrong again, sure").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(Caller::new(&app, [10, 3, 3, 200]).login(SUPER.0, SUPER.1).await.status, StatusCode::OK);

    // Per client address: five failures for five accounts, then that address waits.
    let mut c = Caller::new(&app, [10, 3, 2, 1]);
    for i in 0..5 {
        let r = c.login(&format!("guess{i}@example.com"), "wrong password!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    assert_eq!(c.login(SUPER.0, SUPER.1).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(Caller::new(&app, [10, 3, 2, 2]).login(SUPER.0, SUPER.1).await.status, StatusCode::OK);
    t.finish().await;
});

on_both_backends!(concurrent_failures_from_one_address_count_and_do_not_lock_out_the_owner, |t| {
    let (state, app) = setup(&t).await;
    let attempts: Vec<_> = (0..18)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { Caller::new(&app, [10, 4, 0, 1]).login(SUPER.0, "wrong password!").await })
        })
        .collect();
    let mut refused = 0i64;
    for a in attempts {
        let r = a.await.unwrap();
        match r.status {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => assert!(r.retry_after.is_some(), "429 without Retry-After"),
            other => panic!("{other}: {}", r.body),
        }
    }
    // Every attempt that reached the password check is on record, however many ran at once.
    let recorded: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sign_in_failures WHERE client = '10.4.0.1'")
        .fetch_one(&state.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(recorded, refused);
    assert!(refused >= 5, "{refused}");
    // The owner, from their own address, signs in.
    let r = Caller::new(&app, [10, 4, 0, 2]).login(SUPER.0, SUPER.1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.finish().await;
});

on_both_backends!(cross_site_state_changes_are_refused, |t| {
    let (state, app) = setup(&t).await;
    let mut su = caller_as(&app, Who::Superuser, [10, 4, 0, 1]).await;
    let before = snapshot(&state).await;
    for headers in [vec![("origin", "https://evil.example")], vec![("origin", "null")]] {
        for path in ["/api/logout", "/api/login", "/api/current_user"] {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(header::HOST, HOST)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, su.cookie.clone().unwrap());
            for (k, v) in &headers {
                req = req.header(*k, *v);
            }
            let res = app
                .clone()
                .oneshot(req.body(Body::from(form(&[("email", SUPER.0), ("password", SUPER.1)]))).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path} {headers:?}");
        }
    }
    // Without Origin, the browser's Sec-Fetch-Site decides.
    let r = su
        .send(Method::POST, "/api/logout", "", &[("origin", "http://rp.test"), ("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut su = caller_as(&app, Who::Superuser, [10, 4, 0, 2]).await;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/logout")
        .header(header::HOST, HOST)
        .header("sec-fetch-site", "cross-site")
        .header(header::COOKIE, su.cookie.clone().unwrap())
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 4, 0, 2], 1))));
    assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
    // The session survived the refused sign-out.
    assert!(su.post("/api/current_user", "").await.body.contains("root@example.com"));
    assert_eq!(snapshot(&state).await, before);
    t.finish().await;
});

on_both_backends!(sign_in_goes_back_only_to_paths_on_this_site, |t| {
    let (_state, app) = setup(&t).await;
    let r = Caller::new(&app, [10, 5, 0, 1]).get("/login?next=https://evil.example").await;
    assert_eq!(r.status, StatusCode::OK);
    for (next, expected) in [
        ("https://evil.example", "/app/settings/superuser"),
        ("//evil.example", "/app/settings/superuser"),
        ("/\\evil.example", "/app/settings/superuser"),
        ("/app/settings/superuser/worker", "/app/settings/superuser/worker"),
    ] {
        // With JavaScript: the target comes back as data.
        let mut c = Caller::new(&app, [10, 5, 1, 1]);
        let r = c.post("/api/login", &form(&[("email", SUPER.0), ("password", SUPER.1), ("next", next)])).await;
        assert_eq!(r.body, format!("\"{expected}\""), "{next}");
        // Without JavaScript: a plain form post is redirected there.
        let mut c = Caller::new(&app, [10, 5, 1, 2]);
        let r = c
            .send(
                Method::POST,
                "/api/login",
                &form(&[("email", SUPER.0), ("password", SUPER.1), ("next", next)]),
                &[("accept", "text/html"), ("referer", "http://rp.test/login")],
            )
            .await;
        assert!(r.status.is_redirection(), "{next}: {}", r.status);
        assert_eq!(r.location.as_deref(), Some(expected), "{next}");
        assert!(c.cookie.is_some());
    }
    // A failed plain form post goes back to the form, which shows the error.
    let mut c = Caller::new(&app, [10, 5, 2, 1]);
    let r = c
        .send(
            Method::POST,
            "/api/login",
            &form(&[("email", SUPER.0), ("password", "wrong password")]),
            &[("accept", "text/html"), ("referer", "http://rp.test/login?next=/x")],
        )
        .await;
    assert!(r.status.is_redirection(), "{}", r.status);
    let back = r.location.unwrap();
    assert!(back.starts_with("http://rp.test/login?"), "{back}");
    let page = c.get(back.trim_start_matches("http://rp.test")).await;
    assert!(page.body.contains("Wrong email or password."), "{}", page.body);
    t.finish().await;
});

on_both_backends!(a_full_hashing_queue_answers_429, |t| {
    let mut state = t.state().await;
    add_user(&state, MEMBER, Role::Member).await;
    // One slot, no queue: occupy the slot, and the next sign-in is refused at once.
    state.auth.hasher = tokio::task::spawn_blocking(|| Hasher::new(1, 0)).await.unwrap();
    let app = router(state.clone());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let hasher = state.auth.hasher.clone();
    let blocker = tokio::spawn(async move { hasher.run(move || rx.recv()).await });
    while state.auth.hasher.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    let r = Caller::new(&app, [10, 6, 0, 1]).login(MEMBER.0, MEMBER.1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("busy"), "{}", r.body);
    tx.send(()).unwrap();
    blocker.await.unwrap().unwrap().unwrap();
    let r = Caller::new(&app, [10, 6, 0, 2]).login(MEMBER.0, MEMBER.1).await;
    assert_eq!(r.status, StatusCode::OK);
    t.finish().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_queue_holds_two_running_plus_queue_then_refuses() {
    let hasher = tokio::task::spawn_blocking(|| Hasher::new(1, 1)).await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (h, rx) = (hasher.clone(), rx.clone());
        jobs.push(tokio::spawn(async move { h.run(move || rx.lock().unwrap().recv().is_ok()).await }));
    }
    while hasher.in_flight() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(hasher.run(|| true).await, Err(AppError::TooManyRequests { .. })));
    tx.send(()).unwrap();
    tx.send(()).unwrap();
    for j in jobs {
        assert_eq!(j.await.unwrap(), Ok(true));
    }
    assert_eq!(hasher.in_flight(), 0);
    assert_eq!(hasher.run(|| 7).await, Ok(7));
}

on_both_backends!(worker_tokens_are_hashed_and_revocable, |t| {
    let db = &t.db;
    let name = TokenName::parse("worker-1").unwrap();
    let token = create_token(db, &name, &Grant::all()).await.unwrap();
    assert!(token.starts_with("rpw_") && token.len() == 68, "{token}");
    let stored: String =
        sqlx::query("SELECT token_hash FROM worker_tokens").fetch_one(&db.pool).await.unwrap().get("token_hash");
    assert!(!stored.contains(&token[4..]), "the token itself must not be stored");
    assert!(
        matches!(create_token(db, &name, &Grant::all()).await, Err(AppError::Field { field, .. }) if field == "NAME")
    );

    let mut headers = axum::http::HeaderMap::new();
    assert_eq!(verify_worker_token(db, &headers).await, Err(AppError::Unauthenticated(TOKEN_REQUIRED.into())));
    headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    assert_eq!(verify_worker_token(db, &headers).await.unwrap().name, "worker-1");
    headers.insert(header::AUTHORIZATION, "Bearer rpw_nope".parse().unwrap());
    assert_eq!(verify_worker_token(db, &headers).await, Err(AppError::Unauthenticated(TOKEN_REQUIRED.into())));

    revoke_token(db, &name).await.unwrap();
    headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    assert_eq!(verify_worker_token(db, &headers).await, Err(AppError::Unauthenticated(TOKEN_REQUIRED.into())));
    assert!(revoke_token(db, &name).await.is_err());
    let list = list_tokens(db).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].revoked_at.is_some());
    t.finish().await;
});

on_both_backends!(concurrent_creations_of_one_name_give_the_field_error_never_500, |t| {
    let state = t.state().await;
    let hash = state.auth.hasher.hash(NewPassword::parse("a long enough password").unwrap()).await.unwrap();
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..8 {
        let (db, hash) = (t.db.clone(), hash.clone());
        users.push(tokio::spawn(async move {
            create_user(&db, &Email::parse("race@example.com").unwrap(), Role::Member, &hash).await
        }));
        let db = t.db.clone();
        tokens.push(tokio::spawn(async move {
            create_token(&db, &TokenName::parse("racer").unwrap(), &Grant::all()).await.map(|_| ())
        }));
    }
    for (what, field, results) in [
        ("user", "EMAIL", futures_results(users).await.into_iter().map(|r| r.map(|_| ())).collect::<Vec<_>>()),
        ("token", "NAME", futures_results(tokens).await),
    ] {
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{what}: {results:?}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(r, AppError::Field { field: f, .. } if f == field), "{what}: {r:?}");
            assert_eq!(r.status_code(), 422);
        }
    }
    t.finish().await;
});

async fn futures_results<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

on_both_backends!(unreadable_server_function_arguments_answer_400_and_write_nothing, |t| {
    let (state, app) = setup(&t).await;
    let before = snapshot(&state).await;
    let mut c = caller_as(&app, Who::Superuser, [10, 8, 0, 1]).await;
    for body in [
        "key=worker.max_retries&value=5",
        "key=worker.max_retries&value=5&expected_version=1e3",
        "key=worker.max_retries&value=5&expected_version=99999999999999999999999",
        "key=worker.max_retries&value=5&expected_version=0&expected_version=1",
    ] {
        let r = c.post("/api/save_policy", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        let json: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{body}: {}", r.body));
        let error = json["error"].as_str().unwrap();
        assert!(!error.is_empty() && !error.contains("server function"), "{body}: {error}");
    }
    assert_eq!(snapshot(&state).await, before);
    t.finish().await;
});

on_both_backends!(malformed_requests_get_a_4xx_naming_the_problem_and_write_nothing, |t| {
    let (state, app) = setup(&t).await;
    let token = create_token(&state.db, &TokenName::parse("malformed").unwrap(), &Grant::all()).await.unwrap();
    let before = snapshot(&state).await;
    let mut c = caller_as(&app, Who::Superuser, [10, 9, 0, 1]).await;
    let big = "x".repeat(runtime_policy::web::limits::FORM_BODY + 1);
    let huge_run = "x".repeat(runtime_policy::web::limits::RUN_BODY + 1);
    let form_cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "/api/save_policy",
            format!("key=worker.max_retries&value=5&expected_version=0&reason={big}").into_bytes(),
            413,
        ),
        ("/api/save_policy", b"key=worker.max_retries&value=5".to_vec(), 400),
        ("/api/save_policy", b"key=worker.max_retries&value=5&expected_version=0x10".to_vec(), 400),
        ("/api/save_policy", b"key=worker.max_retries&value=5&expected_version=1e3".to_vec(), 400),
        ("/api/save_policy", b"key=worker.max_retries&value=5&expected_version=18446744073709551616".to_vec(), 400),
        ("/api/save_policy", b"key=a&key=b&value=5&expected_version=0".to_vec(), 400),
        (
            "/api/save_policy",
            [b"key=worker.max_retries&value=".as_slice(), &[0xff, 0xfe], b"&expected_version=0"].concat(),
            400,
        ),
        ("/api/reset_policy", b"key=worker.max_retries".to_vec(), 400),
        ("/api/revert_policy", b"key=worker.max_retries&audit_id=x&expected_version=0".to_vec(), 400),
        ("/api/audit_log", b"before=-".to_vec(), 400),
        ("/api/settings_data", b"".to_vec(), 400),
        ("/api/get_run", b"id=99999999999999999999".to_vec(), 400),
        ("/api/create_run", b"text=%00".to_vec(), 422),
        ("/api/create_run", b"text=a&text=b".to_vec(), 400),
        ("/api/create_run", format!("text={huge_run}").into_bytes(), 413),
        ("/api/login", format!("email=a%40b.c&password={big}").into_bytes(), 413),
    ];
    for (path, body, want) in form_cases {
        let r = c.send_bytes(Method::POST, path, body, &[]).await;
        assert_eq!(r.status.as_u16(), want, "{path}: {}", r.body.chars().take(300).collect::<String>());
        let json: serde_json::Value =
            serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{path}: not JSON: {}", r.body));
        let error = json["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty() && !error.contains("server function"), "{path}: {error}");
    }

    assert_eq!(snapshot(&state).await, before);

    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let run = runtime_policy::runs::server::create_run(
        &state.policy,
        &runtime_policy::runs::server::Creator::cli(),
        &runtime_policy::runs::input::NewBlocks::parse("blocks", vec!["one".into()]).unwrap(),
    )
    .await
    .unwrap();
    let before_api = snapshot(&state).await;
    let claims = paths::api_run_claims(run.id);
    let complete = paths::api_block_complete(run.id, &format!("r{}-b0", run.id));
    let result_big = format!(
        "{{\"worker\":\"w\",\"attempt\":1,\"result\":\"{}\"}}",
        "x".repeat(runtime_policy::web::limits::RESULT_BODY)
    );
    let api_cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (paths::API_RUNS, vec![b'{', 0xff, b'}'], 400, Some("body")),
        (paths::API_RUNS, br#"{"blocks": ["a\u0000b"]}"#.to_vec(), 422, Some("blocks[0]")),
        (
            paths::API_RUNS,
            format!("{{\"blocks\": [\"{}\"]}}", "x".repeat(runtime_policy::web::limits::RUN_BODY)).into_bytes(),
            413,
            None,
        ),
        (&claims, br#"{"worker": "w\u0000"}"#.to_vec(), 422, Some("worker")),
        (&claims, br#"{"worker": "w", "lease_seconds": 1e30}"#.to_vec(), 422, Some("lease_seconds")),
        (&claims, br#"{"lease_seconds": 10}"#.to_vec(), 422, Some("worker")),
        (
            &complete,
            br#"{"worker": "w", "attempt": 18446744073709551616, "result": "r"}"#.to_vec(),
            422,
            Some("attempt"),
        ),
        (&complete, br#"{"worker": "w", "attempt": 1, "result": "a\u0000"}"#.to_vec(), 422, Some("result")),
        (&complete, result_big.into_bytes(), 413, None),
    ];
    for (path, body, want, field) in api_cases {
        let r = c.send_bytes(Method::POST, path, body, &auth).await;
        assert_eq!(r.status.as_u16(), want, "{path}: {}", r.body.chars().take(300).collect::<String>());
        let json: serde_json::Value =
            serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{path}: not JSON: {}", r.body));
        assert!(!json["error"].as_str().unwrap_or_default().is_empty(), "{path}: {json}");
        if let Some(f) = field {
            assert_eq!(json["field"], f, "{path}: {json}");
        }
    }
    assert_eq!(snapshot(&state).await, before_api);
    t.finish().await;
});

on_both_backends!(a_signed_in_page_sends_no_data_but_its_islands_props, |t| {
    let (state, app) = setup(&t).await;
    let mut su = Caller::new(&app, [10, 0, 0, 9]);
    assert!(su.login(SUPER.0, SUPER.1).await.status.is_redirection() || su.cookie.is_some());
    // A change, so the page's history has a row to show.
    let store = runtime_policy::policy::store::PolicyStore::new(state.db.clone(), std::collections::HashMap::new());
    let actor = runtime_policy::policy::store::Actor::user(1, SUPER.0);
    // (the id is the actor's as recorded; the page shows the email)
    store.update(&actor, "worker.max_retries", &serde_json::json!(6), 0, Some("once")).await.unwrap();
    let blocks = runtime_policy::runs::input::NewBlocks::from_paragraphs("text", "one\n\ntwo").unwrap();
    let root = list_users(&state.db).await.unwrap().into_iter().map(|r| r.user).find(|u| u.email == SUPER.0).unwrap();
    let run =
        runtime_policy::runs::server::create_run(&store, &runtime_policy::runs::server::Creator::user(&root), &blocks)
            .await
            .unwrap();
    // A page's data never travels to the browser: only islands hydrate, each with its own props
    // (it used to be sent once per page, beside the signed-in user, for the whole page to
    // hydrate).
    let pages = [
        "/app/settings/superuser",
        "/app/settings/superuser/worker",
        "/app/settings/superuser/no-such-section",
        "/app/settings/superuser/audit",
        "/app/settings/superuser/revisions",
        "/app/settings/superuser/requests",
        "/app/settings/superuser/integrations",
        "/app/runs",
        &*format!("/app/runs/{}", run.id),
    ];
    for path in pages {
        let res = su.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(res.body.matches("__RESOLVED_RESOURCES[").count(), 0, "{path}: {}", res.body);
    }
    let res = su.get("/app/runs").await;
    assert_eq!(res.body.matches(&format!("run-row-{}", run.id)).count(), 1, "{}", res.body);
    let res = su.get(&format!("/app/runs/{}", run.id)).await;
    assert!(res.body.contains(&format!("Run #{}", run.id)), "{}", res.body);
    let res = su.get("/app/runs/0").await;
    assert!(res.body.contains("No such run"), "{}", res.body);
    let res = su.get("/app/settings/superuser/worker").await;
    assert_eq!(res.body.matches("\\\"resolved\\\":").count(), 0, "{}", res.body);
    // The keys' controls are islands, each with its props.
    assert!(res.body.contains("<leptos-island data-component=\"KeyControl"), "{}", res.body);
    let res = su.get("/app/settings/superuser/worker").await;
    assert!(res.body.contains("effective=6 (source=admin)"), "{}", res.body);
    assert!(res.body.contains("class=\"history__reason\">Reason: ") && res.body.contains(">once<"), "{}", res.body);
    t.finish().await;
});

/// The nonce a page's CSP allows, and the body with it replaced by `N`.
fn without_nonce(res: &Res) -> (String, String) {
    let csp = res.csp.as_deref().expect("a page has a CSP");
    let start = csp.find("'nonce-").expect("a page's CSP has a nonce") + "'nonce-".len();
    let nonce = csp[start..start + csp[start..].find('\'').unwrap()].to_string();
    assert!(res.body.contains(&format!("nonce=\"{nonce}\"")), "the body's scripts carry the CSP's nonce: {}", res.body);
    (nonce.clone(), res.body.replace(&nonce, "N"))
}

on_both_backends!(kept_settings_pages_are_the_rendered_ones_and_follow_every_change, |t| {
    let (state, app) = setup(&t).await;
    let two = ("two@example.com", "second superuser pw");
    add_user(&state, two, Role::Superuser).await;
    let mut su = Caller::new(&app, [10, 0, 0, 9]);
    su.login(SUPER.0, SUPER.1).await;
    let mut other = Caller::new(&app, [10, 0, 0, 10]);
    other.login(two.0, two.1).await;
    let mut member = Caller::new(&app, [10, 0, 0, 11]);
    member.login(MEMBER.0, MEMBER.1).await;
    let page = "/app/settings/superuser/worker";

    // Rendered, then answered again: the same page, each time with its own nonce.
    let first = su.get(page).await;
    let again = su.get(page).await;
    assert_eq!((first.status, again.status), (StatusCode::OK, StatusCode::OK));
    let (n1, body1) = without_nonce(&first);
    let (n2, body2) = without_nonce(&again);
    assert_ne!(n1, n2, "every answer has a fresh nonce");
    assert_eq!(body1, body2);
    assert!(body1.contains("effective=3 (source=default)"), "{body1}");

    // Another superuser gets their own page, never the first one's.
    let theirs = other.get(page).await;
    assert!(theirs.body.contains(two.0) && !theirs.body.contains(SUPER.0), "{}", theirs.body);
    // A member is refused, even while a superuser's page is kept for that address.
    let refused = member.get(page).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!refused.body.contains("effective=3"), "{}", refused.body);

    // A change through another instance shows at the next request.
    let elsewhere = runtime_policy::policy::store::PolicyStore::new(state.db.clone(), std::collections::HashMap::new());
    let actor = runtime_policy::policy::store::Actor::user(1, SUPER.0);
    elsewhere.update(&actor, "worker.max_retries", &serde_json::json!(7), 0, Some("elsewhere")).await.unwrap();
    let after = su.get(page).await;
    assert!(after.body.contains("effective=7 (source=admin)"), "{}", after.body);
    // A query string is another page.
    let deep = su.get(&format!("{page}?key=worker.max_retries")).await;
    assert_eq!(deep.status, StatusCode::OK);
    assert_ne!(without_nonce(&deep).1, without_nonce(&after).1);

    // A disabled superuser is out at the next request, kept page or not.
    disable_user(&state.db, &Email::parse(SUPER.0).unwrap()).await.unwrap();
    let out = su.get(page).await;
    assert!(out.status.is_redirection(), "{}", out.status);
    t.finish().await;
});

on_both_backends!(a_settings_page_rendered_with_an_error_is_not_kept, |t| {
    let (state, app) = setup(&t).await;
    let mut su = Caller::new(&app, [10, 0, 0, 9]);
    su.login(SUPER.0, SUPER.1).await;
    let page = "/app/settings/superuser/worker";
    // The policy values cannot be read for a moment: the page says so.
    sqlx::query("ALTER TABLE admin_runtime_policy RENAME TO admin_runtime_policy_away")
        .execute(&state.db.pool)
        .await
        .unwrap();
    let failed = su.get(page).await;
    assert!(
        failed.body.contains(runtime_policy::ui::RENDER_ERROR_ATTR) && failed.body.contains("Internal error"),
        "{}",
        failed.body
    );
    // The same fault through the server function: 500, and the sentence names the request's id.
    let res = su.post("/api/settings_data", "category=worker").await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", res.body);
    let id = res.request_id.clone().expect("every answer has a request id");
    assert!(res.body.contains(&format!("request id {id}")), "{}", res.body);
    assert!(failed.body.contains(&format!("request id {}", failed.request_id.clone().unwrap())), "{}", failed.body);
    sqlx::query("ALTER TABLE admin_runtime_policy_away RENAME TO admin_runtime_policy")
        .execute(&state.db.pool)
        .await
        .unwrap();
    // At the same policy revision, the next request renders the page again instead of
    // answering the failed one.
    let fine = su.get(page).await;
    assert_eq!(fine.status, StatusCode::OK);
    assert!(!fine.body.contains(runtime_policy::ui::RENDER_ERROR_ATTR), "{}", fine.body);
    assert!(fine.body.contains("effective=3 (source=default)"), "{}", fine.body);
    t.finish().await;
});

on_both_backends!(first_run_setup_creates_one_superuser_once, |t| {
    let state = t.state().await;
    let app = router(state.clone());
    // A member made with the CLI, no superuser yet: the server issues a token at start.
    add_user(&state, MEMBER, Role::Member).await;
    let token = state.auth.setup.issue();
    let pw = "first superuser pw";
    let mut visitor = Caller::new(&app, [10, 0, 0, 20]);
    let login = visitor.get("/login").await;
    assert!(login.body.contains("first-run-hint"), "{}", login.body);

    let wrong = visitor.get("/setup?token=nope").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.body.contains("setup-refused"), "{}", wrong.body);
    let open = visitor.get(&format!("/setup?token={token}")).await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(open.body.contains("setup-email"), "{}", open.body);

    let send = |token: &str, email: &str, again: &str| {
        form(&[("token", token), ("email", email), ("password", pw), ("password_again", again)])
    };
    let before = snapshot(&state).await;
    let r = visitor.post("/api/first_superuser", &send("nope", "first@example.com", pw)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = visitor.post("/api/first_superuser", &send(&token, "first@example.com", "another password")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("password_again"), "{}", r.body);
    let r = visitor.post("/api/first_superuser", &send(&token, MEMBER.0, pw)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("EMAIL"), "{}", r.body);
    assert_eq!(snapshot(&state).await, before, "a refused setup writes nothing");

    // The same form sent twice at once: one superuser, one refusal.
    let mut other = Caller::new(&app, [10, 0, 0, 21]);
    let (first, second) = (send(&token, "first@example.com", pw), send(&token, "second@example.com", pw));
    let (a, b) =
        tokio::join!(visitor.post("/api/first_superuser", &first), other.post("/api/first_superuser", &second));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 403], "{} / {}", a.body, b.body);
    let supers: Vec<_> =
        list_users(&state.db).await.unwrap().into_iter().filter(|u| u.user.role == Role::Superuser).collect();
    assert_eq!(supers.len(), 1, "{supers:?}");
    // The winner is signed in and lands on the settings.
    let (winner, body) = if a.status == StatusCode::OK { (&mut visitor, a.body) } else { (&mut other, b.body) };
    assert!(body.contains(paths::SETTINGS), "{body}");
    assert_eq!(winner.get(paths::SETTINGS).await.status, StatusCode::OK);

    // Used up, and closed for good now that a superuser exists, even with a new token.
    let r = visitor.post("/api/first_superuser", &send(&token, "third@example.com", pw)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let fresh = state.auth.setup.issue();
    assert_eq!(visitor.get(&format!("/setup?token={fresh}")).await.status, StatusCode::FORBIDDEN);
    assert!(!Caller::new(&app, [10, 0, 0, 22]).get("/login").await.body.contains("first-run-hint"));
    t.finish().await;
});

/// `/metrics` as Prometheus reads it: the value of `name` with `labels` (0 when absent).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid text format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

on_both_backends!(metrics_count_saves_conflicts_refusals_and_sign_ins, |t| {
    let mut state = t.state().await;
    add_user(&state, SUPER, Role::Superuser).await;
    state.metrics_access.token_sha256 = Some(runtime_policy::db::sha256_hex("metrics-token-0123456789"));
    let app = router(state.clone());
    let mut su = Caller::new(&app, [10, 0, 0, 9]);
    assert_eq!(su.login(SUPER.0, "wrong password here").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(su.login(SUPER.0, SUPER.1).await.status, StatusCode::OK);
    let save = |value: &str, version: &str| {
        form(&[("key", "worker.claim_batch_size"), ("value", value), ("expected_version", version)])
    };
    assert!(su.post("/api/save_policy", &save("5", "0")).await.body.contains("Saved"));
    su.post("/api/save_policy", &save("6", "0")).await; // stale: a conflict
    su.post("/api/save_policy", &save("500", "1")).await; // out of bounds: refused
    su.post("/api/save_policy", &save("5", "1")).await; // already in force: a no-op

    let res = su.get(paths::METRICS).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let text = res.body;
    let key = [("key", "worker.claim_batch_size")];
    assert_eq!(metric(&text, "runtime_policy_policy_saves_total", &key), 1.0, "{text}");
    assert_eq!(metric(&text, "runtime_policy_policy_conflicts_total", &key), 1.0, "{text}");
    assert_eq!(metric(&text, "runtime_policy_policy_refusals_total", &key), 1.0, "{text}");
    assert_eq!(metric(&text, "runtime_policy_policy_noops_total", &key), 1.0, "{text}");
    assert_eq!(metric(&text, "runtime_policy_sign_ins_total", &[("outcome", "failure")]), 1.0, "{text}");
    assert_eq!(metric(&text, "runtime_policy_sign_ins_total", &[("outcome", "success")]), 1.0, "{text}");
    let saves = [("method", "POST"), ("route", "/api/save_policy"), ("status", "200")];
    assert_eq!(metric(&text, "runtime_policy_http_requests_total", &saves), 4.0, "{text}");
    assert!(metric(&text, "runtime_policy_db_pool_connections", &[]) >= 1.0, "{text}");
    assert!(
        text.contains("runtime_policy_http_request_duration_seconds_bucket{route=\"/api/save_policy\",le=\"+Inf\"} 4"),
        "{text}"
    );

    // Without a session: the token, or a loopback address; nobody else.
    let mut stranger = Caller::new(&app, [10, 0, 0, 50]);
    assert_eq!(stranger.get(paths::METRICS).await.status, StatusCode::FORBIDDEN);
    for (token, status) in
        [("Bearer metrics-token-0123456789", StatusCode::OK), ("Bearer wrong-token-0123456789", StatusCode::FORBIDDEN)]
    {
        assert_eq!(
            stranger.send(Method::GET, paths::METRICS, "", &[("authorization", token)]).await.status,
            status,
            "{token}"
        );
    }
    let mut local = Caller::new(&app, [127, 0, 0, 1]);
    assert_eq!(local.get(paths::METRICS).await.status, StatusCode::OK);
    t.finish().await;
});
