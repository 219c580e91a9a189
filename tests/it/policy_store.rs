//! The policy store on both backends: audited writes, conflicts, no-ops, reset, revert,
//! the cross-key rule, an append-only audit table and no lost updates under concurrency.

use std::collections::HashMap;

use runtime_policy::config::Backend;
use runtime_policy::error::AppError;
use runtime_policy::policy::audit::AuditFilter;
use runtime_policy::policy::registry::Layer;
use runtime_policy::policy::store::{Actor, PolicyStore, WriteOutcome};
use serde_json::json;

use crate::helpers;

fn store(t: &helpers::TestDb) -> PolicyStore {
    PolicyStore::new(t.db.clone(), HashMap::new())
}

fn alice() -> Actor {
    Actor::user(1, "alice@example.com")
}

fn bob() -> Actor {
    Actor::user(2, "bob@example.com")
}

async fn audit_count(t: &helpers::TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM admin_runtime_policy_audit").fetch_one(&t.db.pool).await.unwrap()
}

async fn admin_count(t: &helpers::TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM admin_runtime_policy").fetch_one(&t.db.pool).await.unwrap()
}

on_both_backends!(an_update_writes_the_value_its_audit_row_and_bumps_the_revision, |t| {
    let s = store(&t);
    let out = s.update(&alice(), "worker.max_retries", &json!(7), 0, Some("more retries")).await.unwrap();
    let WriteOutcome::Changed { version, revision, audit_id } = out else { panic!("{out:?}") };
    assert_eq!((version, revision), (1, 1));
    let r = s.resolve_key("worker.max_retries").await.unwrap();
    assert_eq!(r.provenance(), "effective=7 (source=admin)");
    assert_eq!(r.admin_version, 1);
    assert_eq!(r.updated_by.as_deref(), Some("alice@example.com"));
    assert_eq!(r.layer(Layer::Default).unwrap().value, Some(json!(3)));

    let rows = s.history(&AuditFilter { key: Some("worker.max_retries".into()), ..Default::default() }).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id, audit_id);
    assert_eq!((row.actor_id, row.actor_email.as_str()), (Some(1), "alice@example.com"));
    assert_eq!((row.from_value.clone(), row.to_value.clone()), (None, Some(json!(7))));
    assert_eq!(row.reason.as_deref(), Some("more retries"));
    assert_eq!((row.policy_revision, row.key_version, row.action.as_str()), (1, 1, "update"));
    assert!(runtime_policy::db::parse_ts(&row.at).is_some());
    assert_eq!(s.revision().await.unwrap(), 1);
    t.finish().await;
});

on_both_backends!(invalid_input_writes_nothing, |t| {
    let s = store(&t);
    let e = s.update_text(&alice(), "worker.claim_batch_size", "0", 0, None).await.unwrap_err();
    assert_eq!(e.to_string(), "worker.claim_batch_size must be an integer from 1 to 100, got 0");
    for (key, raw) in [
        ("models.platform_default_temperature", "NaN"),
        ("models.platform_default_temperature", "0.33"),
        ("worker.default_block_prompt", "no placeholder"),
        ("upload.allowed_extensions", "pdf,.txt"),
        ("worker.max_retries", ""),
    ] {
        assert!(matches!(s.update_text(&alice(), key, raw, 0, None).await, Err(AppError::Field { .. })), "{key}={raw}");
    }
    assert!(matches!(s.update(&alice(), "no.such.key", &json!(1), 0, None).await, Err(AppError::Field { .. })));
    let long = "x".repeat(501);
    let e = s.update(&alice(), "worker.max_retries", &json!(4), 0, Some(&long)).await.unwrap_err();
    assert!(e.to_string().starts_with("reason must be at most 500 characters"), "{e}");
    assert_eq!((audit_count(&t).await, admin_count(&t).await, s.revision().await.unwrap()), (0, 0, 0));
    t.finish().await;
});

on_both_backends!(a_stale_version_is_refused_with_who_when_and_what, |t| {
    let s = store(&t);
    s.update(&alice(), "worker.claim_batch_size", &json!(20), 0, None).await.unwrap();
    let e = s.update(&bob(), "worker.claim_batch_size", &json!(30), 0, None).await.unwrap();
    let WriteOutcome::Conflict(c) = &e else { panic!("{e:?}") };
    assert_eq!((c.expected_version, c.current_version), (0, 1));
    assert_eq!(c.changed_by, "alice@example.com");
    assert_eq!(c.current_value, Some(json!(20)));
    assert!(c.to_string().contains("changed by alice@example.com"), "{c}");
    assert_eq!(audit_count(&t).await, 1);
    assert_eq!(s.resolve_key("worker.claim_batch_size").await.unwrap().value, json!(20));
    t.finish().await;
});

on_both_backends!(writing_the_value_in_force_is_a_no_op, |t| {
    let s = store(&t);
    // Equal to the default while no admin value exists.
    assert_eq!(
        s.update(&alice(), "worker.claim_batch_size", &json!(10), 0, None).await.unwrap(),
        WriteOutcome::Unchanged
    );
    s.update(&alice(), "worker.claim_batch_size", &json!(12), 0, None).await.unwrap();
    assert_eq!(
        s.update(&alice(), "worker.claim_batch_size", &json!(12), 1, None).await.unwrap(),
        WriteOutcome::Unchanged
    );
    assert_eq!(
        s.update_text(&alice(), "models.platform_default_temperature", "0.30", 0, None).await.unwrap(),
        WriteOutcome::Unchanged
    );
    assert_eq!(audit_count(&t).await, 1);
    assert_eq!(s.revision().await.unwrap(), 1);
    t.finish().await;
});

on_both_backends!(reset_falls_back_and_revert_restores_an_earlier_value, |t| {
    let s = PolicyStore::new(t.db.clone(), HashMap::from([("worker.max_retries".to_string(), "5".to_string())]));
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().provenance(), "effective=5 (source=env)");
    assert_eq!(s.reset(&alice(), "worker.max_retries", 0, None).await.unwrap(), WriteOutcome::Unchanged);

    let WriteOutcome::Changed { audit_id: first, .. } =
        s.update(&alice(), "worker.max_retries", &json!(8), 0, None).await.unwrap()
    else {
        panic!()
    };
    s.update(&bob(), "worker.max_retries", &json!(9), 1, None).await.unwrap();
    s.reset(&alice(), "worker.max_retries", 2, Some("back to env")).await.unwrap();
    let r = s.resolve_key("worker.max_retries").await.unwrap();
    assert_eq!(r.provenance(), "effective=5 (source=env)");
    assert_eq!(r.admin_version, 3, "the version keeps counting after a reset");
    let rows = s.history(&AuditFilter { key: Some("worker.max_retries".into()), ..Default::default() }).await.unwrap();
    assert_eq!(rows[0].action.as_str(), "reset");
    assert_eq!((rows[0].from_value.clone(), rows[0].to_value.clone()), (Some(json!(9)), None));

    // An editor still holding version 0 cannot write after set -> reset.
    assert!(matches!(s.update(&bob(), "worker.max_retries", &json!(1), 0, None).await, Ok(WriteOutcome::Conflict(_))));

    s.revert(&bob(), "worker.max_retries", first, 3, Some("restore 8")).await.unwrap();
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().provenance(), "effective=8 (source=admin)");
    let rows = s.history(&AuditFilter { key: Some("worker.max_retries".into()), ..Default::default() }).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!((rows[0].action.as_str(), rows[0].reverted_audit_id), ("revert", Some(first)));
    assert!(matches!(s.revert(&bob(), "worker.claim_batch_size", first, 0, None).await, Err(AppError::NotFound(_))));
    t.finish().await;
});

on_both_backends!(the_cross_key_rule_names_both_keys, |t| {
    let s = store(&t);
    let without_anthropic = json!([
        {"id": "anthropic", "label": "Anthropic", "enabled": false, "models": ["claude-sonnet-4-5"]},
        {"id": "openai", "label": "OpenAI", "enabled": true, "models": ["gpt-4.1"]}
    ]);
    let e = s.update(&alice(), "models.provider_registry", &without_anthropic, 0, None).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("models.provider_registry") && msg.contains("models.platform_default_model"), "{msg}");
    let e = s.update(&alice(), "models.platform_default_model", &json!("openai/gpt-5"), 0, None).await.unwrap_err();
    assert!(e.to_string().contains("not a model of an enabled provider in models.provider_registry"), "{e}");

    // Move the default first, then the registry change is allowed.
    s.update(&alice(), "models.platform_default_model", &json!("openai/gpt-4.1"), 0, None).await.unwrap();
    s.update(&alice(), "models.provider_registry", &without_anthropic, 0, None).await.unwrap();
    // Resetting the default model would now point at a disabled provider.
    let e = s.reset(&alice(), "models.platform_default_model", 1, None).await.unwrap_err();
    assert!(matches!(e, AppError::Field { .. }), "{e:?}");
    assert_eq!(audit_count(&t).await, 2);
    t.finish().await;
});

on_both_backends!(a_failing_audit_insert_leaves_nothing_changed, |t| {
    let s = store(&t);
    s.update(&alice(), "worker.max_retries", &json!(4), 0, None).await.unwrap();
    match t.db.backend {
        Backend::Sqlite => {
            sqlx::query("CREATE TRIGGER test_fail_audit BEFORE INSERT ON admin_runtime_policy_audit BEGIN SELECT RAISE(ABORT, 'audit insert failed'); END;")
                .execute(&t.db.pool).await.unwrap();
        }
        Backend::Postgres => {
            sqlx::query("CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit insert failed'; END; $$")
                .execute(&t.db.pool).await.unwrap();
            sqlx::query("CREATE TRIGGER test_fail_audit BEFORE INSERT ON admin_runtime_policy_audit FOR EACH ROW EXECUTE FUNCTION test_fail_audit()")
                .execute(&t.db.pool).await.unwrap();
        }
    }
    let e = s.update(&bob(), "worker.max_retries", &json!(6), 1, None).await.unwrap_err();
    assert!(matches!(e, AppError::Internal(_)), "{e:?}");
    let e = s.update(&bob(), "worker.claim_batch_size", &json!(6), 0, None).await.unwrap_err();
    assert!(matches!(e, AppError::Internal(_)), "{e:?}");
    let r = s.resolve_key("worker.max_retries").await.unwrap();
    assert_eq!((r.value, r.admin_version), (json!(4), 1));
    assert_eq!(s.resolve_key("worker.claim_batch_size").await.unwrap().source, Layer::Default);
    assert_eq!((admin_count(&t).await, audit_count(&t).await, s.revision().await.unwrap()), (1, 1, 1));
    t.finish().await;
});

on_both_backends!(the_database_refuses_to_change_the_audit_log, |t| {
    let s = store(&t);
    s.update(&alice(), "worker.max_retries", &json!(4), 0, None).await.unwrap();
    let update = sqlx::query("UPDATE admin_runtime_policy_audit SET reason = 'forged'").execute(&t.db.pool).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM admin_runtime_policy_audit").execute(&t.db.pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    if t.db.backend == Backend::Sqlite {
        // Re-inserting an id (delete + insert) cannot rewrite a row either.
        let mut conn = t.db.pool.acquire().await.unwrap();
        sqlx::query("CREATE TEMP TABLE forged AS SELECT * FROM admin_runtime_policy_audit")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("UPDATE forged SET reason = 'forged'").execute(&mut *conn).await.unwrap();
        let e = sqlx::query("INSERT OR REPLACE INTO admin_runtime_policy_audit SELECT * FROM forged")
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }
    if t.db.backend == Backend::Postgres {
        let truncate = sqlx::query("TRUNCATE admin_runtime_policy_audit").execute(&t.db.pool).await;
        assert!(truncate.unwrap_err().to_string().contains("append-only"));
    }
    assert_eq!(audit_count(&t).await, 1);
    t.finish().await;
});

on_both_backends!(sixteen_concurrent_editors_lose_no_update, |t| {
    let s = store(&t);
    let key = "worker.claim_batch_size";
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            // Each editor loads the key, then saves its own value against the version it saw.
            let seen = s.resolve_key(key).await.unwrap().admin_version;
            s.update(&Actor::user(100 + i, format!("editor{i}@example.com")), key, &json!(20 + i), seen, None).await
        }));
    }
    let mut successes = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(WriteOutcome::Changed { .. }) => successes += 1,
            Ok(WriteOutcome::Conflict(_)) => conflicts += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert!(successes >= 1);
    assert_eq!(successes + conflicts, 16);
    assert_eq!(audit_count(&t).await, successes);
    let r = s.resolve_key(key).await.unwrap();
    assert_eq!(r.admin_version, successes);
    assert_eq!(s.revision().await.unwrap(), successes);
    // Every audit row follows the one before it: each `from` is the previous `to`.
    let rows = s.history(&AuditFilter { key: Some(key.into()), ..Default::default() }).await.unwrap();
    for pair in rows.windows(2) {
        assert_eq!(pair[0].from_value, pair[1].to_value);
        assert_eq!(pair[0].key_version, pair[1].key_version + 1);
    }
    assert_eq!(rows[0].to_value, Some(r.value));
    t.finish().await;
});

on_both_backends!(history_filters_by_key_actor_and_time_and_pages, |t| {
    let s = store(&t);
    for i in 0..5 {
        s.update(&alice(), "worker.claim_batch_size", &json!(30 + i), i, None).await.unwrap();
    }
    s.update(&bob(), "worker.max_retries", &json!(1), 0, None).await.unwrap();
    let all = s.history(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let bobs = s.history(&AuditFilter { actor: Some("bob@example.com".into()), ..Default::default() }).await.unwrap();
    assert_eq!(bobs.len(), 1);
    let page1 = s.history(&AuditFilter { limit: Some(2), ..Default::default() }).await.unwrap();
    let page2 =
        s.history(&AuditFilter { limit: Some(2), before_id: Some(page1[1].id), ..Default::default() }).await.unwrap();
    assert_eq!(page2.len(), 2);
    assert!(page2[0].id < page1[1].id);
    let future = s.history(&AuditFilter { from: Some("2999-01-01".into()), ..Default::default() }).await.unwrap();
    assert!(future.is_empty());
    let past = s
        .history(&AuditFilter {
            to: Some("2999-01-01".into()),
            from: Some("2000-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(past.len(), 6);
    assert!(matches!(
        s.history(&AuditFilter { from: Some("yesterday".into()), ..Default::default() }).await,
        Err(AppError::Field { .. })
    ));
    t.finish().await;
});

on_both_backends!(a_registry_change_is_judged_by_the_default_model_in_force, |t| {
    // The env layer holds a registry without anthropic and a default model that exists there;
    // an admin default model that the env registry lacks is skipped at resolution.
    let env = HashMap::from([
        (
            "models.provider_registry".to_string(),
            r#"[{"id":"openai","label":"OpenAI","enabled":true,"models":["gpt-4.1"]}]"#.to_string(),
        ),
        ("models.platform_default_model".to_string(), "openai/gpt-4.1".to_string()),
    ]);
    let s = PolicyStore::new(t.db.clone(), env);
    sqlx::query("INSERT INTO admin_runtime_policy (key, value, version, updated_by, updated_at) VALUES ('models.platform_default_model', '\"anthropic/claude-sonnet-4-5\"', 1, 'old@example.com', '2026-01-01T00:00:00.000000Z')")
        .execute(&t.db.pool)
        .await
        .unwrap();
    let r = s.resolve_key("models.platform_default_model").await.unwrap();
    assert_eq!(r.provenance(), "effective=\"openai/gpt-4.1\" (source=env)");
    // Adding a model to the registry keeps the model in force available: allowed.
    let wider = serde_json::json!([{"id": "openai", "label": "OpenAI", "enabled": true, "models": ["gpt-4.1", "o3"]}]);
    s.update(&alice(), "models.provider_registry", &wider, 0, None).await.unwrap();
    // Dropping the model in force is refused.
    let narrower = serde_json::json!([{"id": "openai", "label": "OpenAI", "enabled": true, "models": ["o3"]}]);
    let e = s.update(&alice(), "models.provider_registry", &narrower, 1, None).await.unwrap_err();
    assert!(e.to_string().contains("openai/gpt-4.1"), "{e}");
    t.finish().await;
});

on_both_backends!(instances_with_different_env_layers_are_told_apart, |t| {
    use runtime_policy::policy::instances::{env_disagreement, Instance};
    let a = PolicyStore::new(t.db.clone(), HashMap::from([("worker.max_retries".to_string(), "5".to_string())]));
    let same = PolicyStore::new(t.db.clone(), HashMap::from([("worker.max_retries".to_string(), "5".to_string())]));
    let other = PolicyStore::new(t.db.clone(), HashMap::new());
    let first = Instance::register(&a).await.unwrap();
    Instance::register(&same).await.unwrap();
    assert_eq!(env_disagreement(&a).await.unwrap(), None, "two instances with one env layer agree");
    let third = Instance::register(&other).await.unwrap();
    let warning = env_disagreement(&a).await.unwrap().expect("a warning");
    assert!(warning.contains("different POLICY__ variables") && warning.contains("2 env layers"), "{warning}");
    third.leave(&other).await.unwrap();
    assert_eq!(env_disagreement(&a).await.unwrap(), None, "the odd one stopped");
    first.refresh(&a).await.unwrap();
    t.finish().await;
});

on_both_backends!(the_database_clock_is_read_in_the_stored_form, |t| {
    let db_now = t.db.now().await.unwrap();
    let skew = (chrono::Utc::now() - db_now).num_seconds().abs();
    assert!(skew < 60, "{db_now} vs the host clock");
    t.finish().await;
});

on_both_backends!(a_category_history_in_one_query_matches_each_key_alone, |t| {
    let s = store(&t);
    let keys = ["worker.claim_batch_size", "worker.max_retries", "worker.claim_ordering"];
    let mut versions = [0i64; 2];
    for i in 0..25i64 {
        let k = (i % 2) as usize;
        let value = if k == 0 { json!(11 + i) } else { json!(i % 9) };
        if let WriteOutcome::Changed { version, .. } =
            s.update(&alice(), keys[k], &value, versions[k], None).await.unwrap()
        {
            versions[k] = version;
        }
    }
    let together = s.recent_history(&keys, 5).await.unwrap();
    assert_eq!(together.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), keys);
    for (key, rows) in &together {
        let alone =
            s.history(&AuditFilter { key: Some(key.clone()), limit: Some(5), ..Default::default() }).await.unwrap();
        assert_eq!(rows, &alone, "{key}");
    }
    assert_eq!(together[0].1.len(), 5);
    assert!(together[2].1.is_empty());
    t.finish().await;
});

on_both_backends!(a_change_through_another_instance_shows_at_the_next_read, |t| {
    // Two instances: each with its own pool and its own memory, one database.
    let here = store(&t);
    let there = PolicyStore::new(runtime_policy::db::Db::connect(&t.url).await.unwrap(), HashMap::new());
    let keys = ["worker.max_retries", "worker.claim_batch_size"];
    let value_of =
        |all: &[runtime_policy::policy::Resolved], key: &str| all.iter().find(|r| r.key == key).unwrap().value.clone();

    let (rev0, first) = here.current().await.unwrap();
    assert_eq!(value_of(&first, "worker.max_retries"), json!(3));
    let history = here.recent_history_at(&rev0, &keys, 5).await.unwrap();
    assert!(history.iter().all(|(_, rows)| rows.is_empty()), "{history:?}");
    // While the revision stays the same, what was loaded is reused.
    let (rev, again) = here.current().await.unwrap();
    assert_eq!(rev, rev0);
    assert!(std::sync::Arc::ptr_eq(&first, &again), "the resolved policy was loaded twice at one revision");
    assert!(std::sync::Arc::ptr_eq(&history, &here.recent_history_at(&rev0, &keys, 5).await.unwrap()));

    there.update(&bob(), "worker.max_retries", &json!(9), 0, Some("from another instance")).await.unwrap();

    let (rev1, now) = here.current().await.unwrap();
    assert_eq!(rev1.revision, rev0.revision + 1);
    assert_eq!(value_of(&now, "worker.max_retries"), json!(9));
    assert_eq!(here.resolve_key("worker.max_retries").await.unwrap().provenance(), "effective=9 (source=admin)");
    let history = here.recent_history_at(&rev1, &keys, 5).await.unwrap();
    assert_eq!(history[0].0, "worker.max_retries");
    assert_eq!(history[0].1.len(), 1);
    assert_eq!(history[0].1[0].actor_email, "bob@example.com");
    assert!(history[1].1.is_empty());

    // And back: a write here shows there.
    let (_, seen_there) = there.current().await.unwrap();
    assert_eq!(value_of(&seen_there, "worker.max_retries"), json!(9));
    here.update(&alice(), "worker.max_retries", &json!(4), 1, None).await.unwrap();
    assert_eq!(value_of(&there.current().await.unwrap().1, "worker.max_retries"), json!(4));
    t.finish().await;
});
