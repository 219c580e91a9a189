//! `/api/v1/policy` on both backends, through a real server on 127.0.0.1 and personal API
//! tokens: scopes (a read-only token cannot write), revoked, expired and disabled-owner tokens
//! refused with 401, `ETag`/`If-None-Match`, `If-Match` 428/412, a reviewed key answering 202
//! with a change request, and no lost update with 16 concurrent writers.

use std::collections::HashMap;

use runtime_policy::auth::api_token::{create_api_token, revoke_api_token, ApiScope};
use runtime_policy::auth::password::NewPassword;
use runtime_policy::auth::token::TokenName;
use runtime_policy::auth::types::{AuthUser, Role};
use runtime_policy::auth::users::{create_user, disable_user, Email};
use runtime_policy::policy::audit::AuditFilter;
use runtime_policy::policy::store::PolicyStore;
use serde_json::{json, Value};

use crate::helpers::{self, spawn_app};

async fn user(t: &helpers::TestDb, email: &str, role: Role) -> AuthUser {
    let state = t.state().await;
    let hash = state.auth.hasher.hash(NewPassword::parse("a long enough password").unwrap()).await.unwrap();
    create_user(&t.db, &Email::parse(email).unwrap(), role, &hash).await.unwrap()
}

async fn token(t: &helpers::TestDb, name: &str, owner: &AuthUser, scopes: &[&str], days: Option<i64>) -> String {
    let scopes = ApiScope::parse_list(&scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    create_api_token(&t.db, &TokenName::parse(name).unwrap(), owner, &scopes, days).await.unwrap()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let etag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
        let text = res.text().await.unwrap();
        (status, etag, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

on_both_backends!(api_tokens_read_and_write_the_policy_with_versions, |t| {
    use reqwest::Method;
    let base = spawn_app(&t).await;
    let api = Api { http: reqwest::Client::new(), base };
    let root = user(&t, "root@example.com", Role::Superuser).await;
    let writer = token(&t, "ci", &root, &["policy:write"], None).await;
    let reader = token(&t, "dashboard", &root, &[], None).await;
    let key = "/api/v1/policy/worker.claim_batch_size";

    // Reads: the whole policy with the revision as ETag, 304 when unchanged; one key.
    let (status, etag, body) = api.call(Method::GET, "/api/v1/policy", &reader, &[], None).await;
    assert_eq!(status, 200, "{body}");
    let etag = etag.unwrap();
    assert_eq!(etag, "\"r0\"");
    assert_eq!(body["keys"].as_array().unwrap().len(), 15);
    let (status, _, _) = api.call(Method::GET, "/api/v1/policy", &reader, &[("if-none-match", &etag)], None).await;
    assert_eq!(status, 304);
    let (status, etag, body) = api.call(Method::GET, key, &reader, &[], None).await;
    assert_eq!(
        (status, etag.as_deref(), body["provenance"].as_str()),
        (200, Some("\"0\""), Some("effective=10 (source=default)"))
    );

    // A read-only token cannot write; a write needs If-Match.
    let put = Some(json!({ "value": 25, "reason": "from CI" }));
    let (status, _, body) = api.call(Method::PUT, key, &reader, &[("if-match", "\"0\"")], put.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = api.call(Method::PUT, key, &writer, &[], put.clone()).await;
    assert_eq!(status, 428, "{body}");
    let (status, etag, body) = api.call(Method::PUT, key, &writer, &[("if-match", "\"0\"")], put.clone()).await;
    assert_eq!((status, etag.as_deref()), (200, Some("\"1\"")), "{body}");
    assert_eq!(body["provenance"], "effective=25 (source=admin)");
    // Audited as the token, on behalf of its owner.
    let store = PolicyStore::new(t.db.clone(), HashMap::new());
    let row = &store.history(&AuditFilter::default()).await.unwrap()[0];
    assert_eq!((row.actor_email.as_str(), row.actor_id), ("token:ci (root@example.com)", Some(root.id)));
    assert_eq!(row.reason.as_deref(), Some("from CI"));
    // The old version again: 412 saying who changed it and to what; nothing written.
    let (status, _, body) =
        api.call(Method::PUT, key, &writer, &[("if-match", "\"0\"")], Some(json!({"value": 30}))).await;
    assert_eq!(status, 412, "{body}");
    assert!(body["error"].as_str().unwrap().contains("changed by token:ci (root@example.com)"), "{body}");
    // A bad value names the field; an unknown key is 404; a body that is not JSON is 400.
    let (status, _, body) =
        api.call(Method::PUT, key, &writer, &[("if-match", "1")], Some(json!({"value": 500}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("worker.claim_batch_size")), "{body}");
    let (status, _, _) = api.call(Method::GET, "/api/v1/policy/no.such.key", &reader, &[], None).await;
    assert_eq!(status, 404);
    let res = api
        .http
        .put(format!("{}{key}", api.base))
        .bearer_auth(&writer)
        .header("if-match", "1")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // A reset with DELETE.
    let (status, etag, body) = api.call(Method::DELETE, key, &writer, &[("if-match", "\"1\"")], None).await;
    assert_eq!((status, etag.as_deref(), body["source"].as_str()), (200, Some("\"2\""), Some("default")), "{body}");

    // A key that needs review: 202 with the change request; nothing applied.
    let (status, _, body) = api
        .call(
            Method::PUT,
            "/api/v1/policy/worker.max_retries",
            &writer,
            &[("if-match", "0")],
            Some(json!({"value": 6})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["change_request"], 1);
    assert_eq!(store.resolve_key("worker.max_retries").await.unwrap().value, json!(3));

    // Tokens stop at once: revoked, expired, or whose owner is disabled.
    revoke_api_token(&t.db, &TokenName::parse("dashboard").unwrap()).await.unwrap();
    let (status, _, _) = api.call(Method::GET, "/api/v1/policy", &reader, &[], None).await;
    assert_eq!(status, 401);
    sqlx::query("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE name = 'ci'")
        .execute(&t.db.pool)
        .await
        .unwrap();
    let (status, _, body) = api.call(Method::GET, "/api/v1/policy", &writer, &[], None).await;
    assert_eq!(status, 401, "{body}");
    let fresh = token(&t, "fresh", &root, &["policy:read"], Some(30)).await;
    assert_eq!(api.call(Method::GET, "/api/v1/policy", &fresh, &[], None).await.0, 200);
    disable_user(&t.db, &Email::parse("root@example.com").unwrap()).await.unwrap();
    let (status, _, body) = api.call(Method::GET, "/api/v1/policy", &fresh, &[], None).await;
    assert_eq!(status, 401, "{body}");
    // No token at all, or a worker token: 401.
    assert_eq!(api.call(Method::GET, "/api/v1/policy", "rpw_not_an_api_token", &[], None).await.0, 401);
    let res = api.http.get(format!("{}/api/v1/policy", api.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    t.finish().await;
});

on_both_backends!(sixteen_concurrent_api_writers_lose_no_update, |t| {
    use reqwest::Method;
    let base = spawn_app(&t).await;
    let root = user(&t, "root@example.com", Role::Superuser).await;
    let writer = token(&t, "ci", &root, &["policy:write"], None).await;
    let api = std::sync::Arc::new(Api { http: reqwest::Client::new(), base });
    let key = "/api/v1/policy/worker.claim_batch_size";
    // Each writer reads the version and writes against it until it succeeds: every write
    // either lands or is refused with 412, never overwrites another silently.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (api, writer) = (api.clone(), writer.clone());
            tokio::spawn(async move {
                let mut refused = 0;
                loop {
                    let (_, etag, _) = api.call(Method::GET, key, &writer, &[], None).await;
                    let etag = etag.unwrap();
                    let body = Some(json!({ "value": 20 + i, "reason": format!("writer {i}") }));
                    match api.call(Method::PUT, key, &writer, &[("if-match", &etag)], body).await.0 {
                        200 => return refused,
                        412 => refused += 1,
                        other => panic!("writer {i}: {other}"),
                    }
                }
            })
        })
        .collect();
    let mut refusals = 0;
    for task in tasks {
        refusals += task.await.unwrap();
    }
    let store = PolicyStore::new(t.db.clone(), HashMap::new());
    let rows = store
        .history(&AuditFilter { key: Some("worker.claim_batch_size".into()), limit: Some(100), ..Default::default() })
        .await
        .unwrap();
    // Sixteen changes, one per writer, each against the version the one before it left.
    assert_eq!(rows.len(), 16, "{refusals} refusals");
    let mut versions: Vec<i64> = rows.iter().map(|r| r.key_version).collect();
    versions.sort();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
    assert_eq!(store.resolve_key("worker.claim_batch_size").await.unwrap().admin_version, 16);
    t.finish().await;
});

on_both_backends!(export_then_import_into_a_fresh_database_reproduces_the_policy, |t| {
    use reqwest::Method;
    let base = spawn_app(&t).await;
    let api = Api { http: reqwest::Client::new(), base };
    let root = user(&t, "root@example.com", Role::Superuser).await;
    let reviewer = user(&t, "second@example.com", Role::Superuser).await;
    let writer = token(&t, "ci", &root, &["policy:write", "audit:read"], None).await;
    let approver = token(&t, "second", &reviewer, &["policy:write"], None).await;

    // A change set through the API: plain keys apply at one revision.
    let set = json!({"reason": "from the pipeline", "changes": [
        {"key": "worker.claim_batch_size", "value": 40},
        {"key": "upload.allowed_extensions", "value": ["pdf", "md"]},
        {"key": "models.platform_default_temperature", "value": 0.55}
    ]});
    let (status, _, body) =
        api.call(Method::POST, "/api/v1/policy/change-sets?dry_run=true", &writer, &[], Some(set.clone())).await;
    assert_eq!((status, body["dry_run"].as_bool()), (200, Some(true)), "{body}");
    let (status, _, body) = api.call(Method::POST, "/api/v1/policy/change-sets", &writer, &[], Some(set)).await;
    assert_eq!((status, body["changes"].as_array().map(Vec::len)), (200, Some(3)), "{body}");
    // A reviewed key through the API: a request its owner's token cannot approve; another can.
    let set = json!({"changes": [{"key": "worker.max_retries", "value": 5}]});
    let (status, _, body) = api.call(Method::POST, "/api/v1/policy/change-sets", &writer, &[], Some(set)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["change_request"].as_i64().unwrap();
    let path = format!("/api/v1/policy/change-requests/{id}/approve");
    assert_eq!(api.call(Method::POST, &path, &writer, &[], None).await.0, 403);
    let (status, _, body) = api.call(Method::POST, &path, &approver, &[], Some(json!({"comment": "ok"}))).await;
    assert_eq!((status, body["applied"].as_bool()), (200, Some(true)), "{body}");
    let (_, _, list) = api.call(Method::GET, "/api/v1/policy/change-requests", &writer, &[], None).await;
    assert_eq!(list[0]["status"], "applied", "{list}");
    // Revisions and the audit log.
    let (_, _, revs) = api.call(Method::GET, "/api/v1/policy/revisions", &writer, &[], None).await;
    assert_eq!(revs.as_array().unwrap().len(), 2, "{revs}");
    let (status, _, at) = api.call(Method::GET, "/api/v1/policy/revisions/1", &writer, &[], None).await;
    assert_eq!(status, 200);
    assert!(at["keys"].as_array().unwrap().iter().any(|k| k["key"] == "worker.max_retries" && k["effective"] == 3));
    let (status, _, rows) = api.call(Method::GET, "/api/v1/audit?key=worker.max_retries", &writer, &[], None).await;
    assert_eq!((status, rows.as_array().map(Vec::len)), (200, Some(1)), "{rows}");
    assert_eq!(api.call(Method::GET, "/api/v1/audit", &approver, &[], None).await.0, 403, "no audit:read");

    // Export, then import into a fresh database: the same policy, key by key.
    let (status, _, doc) = api.call(Method::GET, "/api/v1/policy/export", &writer, &[], None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["keys"].as_object().unwrap().len(), 4, "{doc}");
    let exported = PolicyStore::new(t.db.clone(), HashMap::new()).resolve().await.unwrap();

    let fresh = helpers::TestDb::new(t.url.backend).await;
    let fresh_base = spawn_app(&fresh).await;
    let fresh_api = Api { http: reqwest::Client::new(), base: fresh_base };
    let a = user(&fresh, "root@example.com", Role::Superuser).await;
    let b = user(&fresh, "second@example.com", Role::Superuser).await;
    let fa = token(&fresh, "ci", &a, &["policy:write"], None).await;
    let fb = token(&fresh, "second", &b, &["policy:write"], None).await;
    let (status, _, body) =
        fresh_api.call(Method::POST, "/api/v1/policy/import?dry_run=true", &fa, &[], Some(doc.clone())).await;
    assert_eq!((status, body["changes"].as_array().map(Vec::len)), (200, Some(4)), "{body}");
    // worker.max_retries needs review: the import waits for the second superuser.
    let (status, _, body) = fresh_api.call(Method::POST, "/api/v1/policy/import", &fa, &[], Some(doc.clone())).await;
    assert_eq!(status, 202, "{body}");
    let id = body["change_request"].as_i64().unwrap();
    let path = format!("/api/v1/policy/change-requests/{id}/approve");
    assert_eq!(fresh_api.call(Method::POST, &path, &fb, &[], None).await.0, 200);
    let imported = PolicyStore::new(fresh.db.clone(), HashMap::new()).resolve().await.unwrap();
    let view = |r: &[runtime_policy::policy::resolve::Resolved]| -> Vec<(String, Value, String)> {
        r.iter().map(|r| (r.key.clone(), r.value.clone(), r.source.to_string())).collect()
    };
    assert_eq!(view(&imported), view(&exported));
    // Importing it again changes nothing; a document of another format is refused.
    let (status, _, body) = fresh_api.call(Method::POST, "/api/v1/policy/import", &fa, &[], Some(doc)).await;
    assert_eq!((status, body["applied"].as_bool()), (200, Some(false)), "{body}");
    let (status, _, body) = fresh_api
        .call(Method::POST, "/api/v1/policy/import", &fa, &[], Some(json!({"format": "x", "revision": 1, "keys": {}})))
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("format")), "{body}");
    fresh.finish().await;
    t.finish().await;
});

on_both_backends!(a_worker_token_with_policy_read_reads_the_baseline_and_never_writes, |t| {
    use reqwest::Method;
    use runtime_policy::auth::token::{create_token, Grant};
    let base = spawn_app(&t).await;
    let api = Api { http: reqwest::Client::new(), base };
    let reader = Grant::parse(&["policy:read".into()], None).unwrap();
    let service = create_token(&t.db, &TokenName::parse("uploads").unwrap(), &reader).await.unwrap();
    let worker = create_token(&t.db, &TokenName::parse("worker").unwrap(), &Grant::all()).await.unwrap();
    let (status, _, body) =
        api.call(Method::GET, "/api/v1/policy/upload.max_files_per_batch", &service, &[], None).await;
    assert_eq!((status, body["effective"].as_i64()), (200, Some(20)), "{body}");
    assert_eq!(api.call(Method::GET, "/api/v1/policy", &service, &[], None).await.0, 200);
    // A worker token without the scope reads nothing; no worker token writes.
    assert_eq!(api.call(Method::GET, "/api/v1/policy", &worker, &[], None).await.0, 403);
    let put = Some(json!({"value": 30}));
    let (status, _, _) =
        api.call(Method::PUT, "/api/v1/policy/upload.max_files_per_batch", &service, &[("if-match", "0")], put).await;
    assert_eq!(status, 401);
    t.finish().await;
});
