//! Change sets, what was in force before and after, pins and revisions, on both backends:
//! a change set with one invalid key writes nothing and names it; two racing change sets on a
//! key, one wins and the other is refused with who/when/what; a restore gives exactly the
//! policy of that revision; the CLI's apply --dry-run writes nothing.

use std::collections::HashMap;

use runtime_policy::policy::audit::AuditFilter;
use runtime_policy::policy::change_set::{ChangeSet, ChangeSetKind, ChangeSetOutcome, KeyChange, Target};
use runtime_policy::policy::registry::Layer;
use runtime_policy::policy::store::{Actor, PolicyStore, WriteOutcome};
use serde_json::{json, Value};

use crate::helpers;

fn alice() -> Actor {
    Actor::user(1, "alice@example.com")
}

fn bob() -> Actor {
    Actor::user(2, "bob@example.com")
}

fn env_store(t: &helpers::TestDb, env: &[(&str, &str)]) -> PolicyStore {
    PolicyStore::new(t.db.clone(), env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn set(reason: &str, changes: Vec<(&str, Target, Option<i64>)>) -> ChangeSet {
    ChangeSet {
        reason: Some(reason.into()),
        changes: changes
            .into_iter()
            .map(|(key, target, expected_version)| KeyChange { key: key.into(), target, expected_version })
            .collect(),
        expected_revision: None,
    }
}

async fn counts(t: &helpers::TestDb) -> (i64, i64, i64) {
    let q = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&t.db.pool).await.unwrap() };
    (
        q("SELECT COUNT(*) FROM admin_runtime_policy_audit").await,
        q("SELECT COUNT(*) FROM policy_change_sets").await,
        q("SELECT revision FROM policy_revision").await,
    )
}

/// Every key's effective value and layer.
async fn policy(s: &PolicyStore) -> HashMap<String, (Value, Layer)> {
    s.resolve().await.unwrap().into_iter().map(|r| (r.key, (r.value, r.source))).collect()
}

on_both_backends!(audit_rows_record_what_was_in_force_before_and_after, |t| {
    let s = env_store(&t, &[("worker.max_retries", "5")]);
    // Default → admin.
    s.update(&alice(), "models.platform_default_temperature", &json!(0.55), 0, None).await.unwrap();
    // Env → admin, then a reset back to env.
    s.update(&alice(), "worker.max_retries", &json!(8), 0, None).await.unwrap();
    s.reset(&alice(), "worker.max_retries", 1, Some("back")).await.unwrap();
    let rows = s.history(&AuditFilter::default()).await.unwrap();
    let seen: Vec<(String, String, String)> =
        rows.iter().rev().map(|r| (r.key.clone(), r.before_text(), r.after_text())).collect();
    assert_eq!(
        seen,
        vec![
            ("models.platform_default_temperature".into(), "0.3 (default)".into(), "0.55 (admin)".into()),
            ("worker.max_retries".into(), "5 (env)".into(), "8 (admin)".into()),
            ("worker.max_retries".into(), "8 (admin)".into(), "5 (env)".into()),
        ]
    );
    assert!(rows.iter().all(|r| r.change_set_id.is_none()), "single-key changes are no change set");
    t.finish().await;
});

on_both_backends!(a_pin_holds_the_inherited_value_against_a_later_env_change, |t| {
    let s = env_store(&t, &[("worker.max_retries", "5")]);
    // Saving the inherited value is a no-op; pinning it is a change.
    assert_eq!(s.update(&alice(), "worker.max_retries", &json!(5), 0, None).await.unwrap(), WriteOutcome::Unchanged);
    let out = s.pin(&alice(), "worker.max_retries", 0, Some("hold it")).await.unwrap();
    assert!(matches!(out, WriteOutcome::Changed { version: 1, .. }), "{out:?}");
    let row = &s.history(&AuditFilter::default()).await.unwrap()[0];
    assert_eq!(
        (row.action_label(), row.before_text(), row.after_text()),
        ("pin", "5 (env)".into(), "5 (admin)".into())
    );
    // Pinning again is a no-op.
    assert_eq!(s.pin(&alice(), "worker.max_retries", 1, None).await.unwrap(), WriteOutcome::Unchanged);
    // Another instance with another env value: the pinned value holds.
    let other = env_store(&t, &[("worker.max_retries", "9")]);
    assert_eq!(other.resolve_key("worker.max_retries").await.unwrap().provenance(), "effective=5 (source=admin)");
    // A stale pin is a conflict.
    assert!(matches!(s.pin(&bob(), "upload.max_files_per_batch", 3, None).await.unwrap(), WriteOutcome::Conflict(_)));
    t.finish().await;
});

on_both_backends!(a_change_set_applies_at_one_revision_with_one_audit_row_per_key, |t| {
    let s = env_store(&t, &[]);
    let before = counts(&t).await;
    let cs = set(
        "tune the fleet",
        vec![
            ("worker.max_retries", Target::Value(json!(6)), Some(0)),
            ("worker.claim_batch_size", Target::Text("25".into()), None),
            ("models.platform_default_temperature", Target::Value(json!(0.3)), None), // already in force
        ],
    );
    let out = s.apply_change_set(&alice(), &cs, ChangeSetKind::Apply, false).await.unwrap();
    let ChangeSetOutcome::Applied { id, revision, lines } = out else { panic!("{out:?}") };
    assert_eq!(revision, before.2 + 1);
    assert_eq!(
        lines.iter().map(|l| l.text()).collect::<Vec<_>>(),
        vec!["worker.max_retries: 3 (default) → 6 (admin)", "worker.claim_batch_size: 10 (default) → 25 (admin)"]
    );
    assert_eq!(counts(&t).await, (before.0 + 2, before.1 + 1, revision));
    let rows = s.history(&AuditFilter::default()).await.unwrap();
    assert!(rows.iter().all(|r| r.change_set_id == Some(id) && r.policy_revision == revision));
    assert!(rows.iter().all(|r| r.reason.as_deref() == Some("tune the fleet")));
    let revisions = s.revisions(None, 10).await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!((revisions[0].revision, revisions[0].kind), (revision, Some(ChangeSetKind::Apply)));
    assert_eq!(revisions[0].keys, vec!["worker.max_retries", "worker.claim_batch_size"]);

    // Everything already in force: nothing written.
    let mut cs = cs;
    cs.changes.iter_mut().for_each(|c| c.expected_version = None);
    let again = s.apply_change_set(&alice(), &cs, ChangeSetKind::Apply, false).await.unwrap();
    assert_eq!(again, ChangeSetOutcome::Unchanged);
    assert_eq!(counts(&t).await, (before.0 + 2, before.1 + 1, revision));
    t.finish().await;
});

on_both_backends!(a_change_set_with_invalid_keys_writes_nothing_and_names_every_one, |t| {
    let s = env_store(&t, &[]);
    let before = counts(&t).await;
    let cs = set(
        "bad",
        vec![
            ("worker.max_retries", Target::Value(json!(6)), None),
            ("worker.claim_batch_size", Target::Value(json!(0)), None),
            ("no.such.key", Target::Reset, None),
            ("models.platform_default_temperature", Target::Text("hot".into()), None),
            ("worker.max_retries", Target::Reset, None),
        ],
    );
    let e = s.apply_change_set(&alice(), &cs, ChangeSetKind::Apply, false).await.unwrap_err();
    assert_eq!(e.status_code(), 422);
    let text = e.to_string();
    for named in [
        "4 changes refused",
        "worker.claim_batch_size",
        "no.such.key",
        "models.platform_default_temperature",
        "more than once",
    ] {
        assert!(text.contains(named), "{named} missing from: {text}");
    }
    // The cross-key rule is judged on the whole result: a registry without the default model
    // is refused even beside a valid change…
    let providers = json!([{"id": "openai", "label": "OpenAI", "enabled": true, "models": ["gpt-4o"]}]);
    let cs = set(
        "cross",
        vec![
            ("worker.max_retries", Target::Value(json!(6)), None),
            ("models.provider_registry", Target::Value(providers.clone()), None),
        ],
    );
    let e = s.apply_change_set(&alice(), &cs, ChangeSetKind::Apply, false).await.unwrap_err();
    assert!(e.to_string().contains("models.platform_default_model"), "{e}");
    assert_eq!(counts(&t).await, before, "nothing written");
    // …and taken when the same change set moves the default model onto it.
    let cs = set(
        "cross",
        vec![
            ("models.provider_registry", Target::Value(providers), None),
            ("models.platform_default_model", Target::Value(json!("openai/gpt-4o")), None),
        ],
    );
    let out = s.apply_change_set(&alice(), &cs, ChangeSetKind::Apply, false).await.unwrap();
    assert!(matches!(out, ChangeSetOutcome::Applied { .. }), "{out:?}");
    t.finish().await;
});

on_both_backends!(two_racing_change_sets_on_one_key_one_wins_the_other_is_told_who_when_what, |t| {
    let s = env_store(&t, &[]);
    let a = set("a", vec![("worker.max_retries", Target::Value(json!(6)), Some(0))]);
    let b = set(
        "b",
        vec![
            ("worker.claim_batch_size", Target::Value(json!(30)), Some(0)),
            ("worker.max_retries", Target::Value(json!(9)), Some(0)),
        ],
    );
    let (alice, bob) = (alice(), bob());
    let (ra, rb) = tokio::join!(
        s.apply_change_set(&alice, &a, ChangeSetKind::Apply, false),
        s.apply_change_set(&bob, &b, ChangeSetKind::Apply, false)
    );
    let (won, lost, loser) = match (&ra, &rb) {
        (Ok(_), Err(e)) => (6, e, "bob"),
        (Err(e), Ok(_)) => (9, e, "alice"),
        other => panic!("exactly one should win: {other:?}"),
    };
    assert_eq!(lost.status_code(), 409, "{lost}");
    let winner = if loser == "bob" { "alice@example.com" } else { "bob@example.com" };
    assert!(lost.to_string().contains("worker.max_retries") && lost.to_string().contains(winner), "{lost}");
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().value, json!(won));
    // The loser wrote nothing, not even its other key.
    let batch = s.resolve_key("worker.claim_batch_size").await.unwrap();
    assert_eq!(batch.source == Layer::Admin, loser == "alice", "{batch:?}");
    t.finish().await;
});

on_both_backends!(a_dry_run_shows_the_diff_and_writes_nothing, |t| {
    let s = env_store(&t, &[]);
    let before = counts(&t).await;
    let cs = set("dry", vec![("worker.max_retries", Target::Value(json!(6)), None)]);
    let out = s.apply_change_set(&alice(), &cs, ChangeSetKind::Apply, true).await.unwrap();
    assert_eq!(
        out.text(),
        "dry run, nothing written; would change 1 key(s):\n  worker.max_retries: 3 (default) → 6 (admin)\n"
    );
    assert_eq!(counts(&t).await, before);
    t.finish().await;
});

on_both_backends!(restoring_a_revision_gives_exactly_its_policy, |t| {
    use runtime_policy::policy::change_set::Proposal;
    let s = env_store(&t, &[("upload.max_files_per_batch", "12")]);
    let temperature = "models.platform_default_temperature";
    s.update(&alice(), temperature, &json!(0.6), 0, None).await.unwrap();
    s.update(&alice(), "worker.claim_batch_size", &json!(40), 0, None).await.unwrap();
    let good = s.revision().await.unwrap();
    let good_policy = policy(&s).await;
    assert_eq!(
        s.resolve_at(good).await.unwrap().into_iter().map(|r| (r.key, (r.value, r.source))).collect::<HashMap<_, _>>(),
        good_policy
    );
    // Later: one key changed, one reset, one set for the first time.
    s.update(&bob(), temperature, &json!(0.9), 1, None).await.unwrap();
    s.reset(&bob(), "worker.claim_batch_size", 1, None).await.unwrap();
    s.update(&bob(), "upload.max_files_per_batch", &json!(30), 0, None).await.unwrap();
    assert_ne!(policy(&s).await, good_policy);

    // The dry run shows the three keys and writes nothing.
    let before = counts(&t).await;
    let preview = s.restore_revision(&alice(), good, Some("known good"), None, true).await.unwrap();
    let Proposal::Applied(ChangeSetOutcome::Preview { lines }) = &preview else { panic!("{preview:?}") };
    assert_eq!(lines.len(), 3, "{preview:?}");
    assert_eq!(counts(&t).await, before);

    // Restoring against the revision the diff was made at, after another change: refused.
    let shown = s.revision().await.unwrap();
    s.update(&bob(), "worker.default_block_prompt", &json!("P {{block_text}}"), 0, None).await.unwrap();
    let e = s.restore_revision(&alice(), good, None, Some(shown), false).await.unwrap_err();
    assert_eq!(e.status_code(), 409, "{e}");
    assert!(e.to_string().contains("changed since the diff was made"), "{e}");
    s.reset(&bob(), "worker.default_block_prompt", 1, None).await.unwrap();
    let shown = s.revision().await.unwrap();
    let out = s.restore_revision(&alice(), good, Some("known good"), Some(shown), false).await.unwrap();
    let Proposal::Applied(ChangeSetOutcome::Applied { revision, .. }) = out else { panic!("{out:?}") };
    assert_eq!(policy(&s).await, good_policy);
    let r = s.resolve_key("upload.max_files_per_batch").await.unwrap();
    assert_eq!(r.provenance(), "effective=12 (source=env)", "a key with no admin value then is reset");
    let list = s.revisions(None, 1).await.unwrap();
    assert_eq!((list[0].revision, list[0].kind), (revision, Some(ChangeSetKind::RestoreRevision(good))));
    assert_eq!(list[0].what(), format!("restore of revision {good}"));
    // A revision that does not exist.
    assert_eq!(s.restore_revision(&alice(), revision + 5, None, None, true).await.unwrap_err().status_code(), 404);
    assert_eq!(s.resolve_at(-1).await.unwrap_err().status_code(), 404);

    // A restore that touches a key needing review becomes a change request.
    s.update(&bob(), "worker.max_retries", &json!(9), 0, None).await.unwrap();
    let out = s.restore_revision(&alice(), revision, None, None, false).await.unwrap();
    assert!(
        matches!(&out, Proposal::Requested { keys, .. } if keys == &vec!["worker.max_retries".to_string()]),
        "{out:?}"
    );
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().value, json!(9));
    t.finish().await;
});

#[test]
fn the_cli_applies_a_change_set_file_and_a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/cli.db", dir.path().display());
    let file = dir.path().join("changes.json");
    std::fs::write(
        &file,
        json!({"reason": "from a file", "changes": [
            {"key": "models.platform_default_temperature", "value": 0.6},
            {"key": "worker.claim_batch_size", "value": 25, "expected_version": 0}
        ]})
        .to_string(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runtime-policy"))
            .env("DATABASE_URL", &db)
            .args(args)
            .output()
            .unwrap()
    };
    let path = file.to_str().unwrap();
    let out = run(&["policy", "apply", path, "--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dry run, nothing written")
            && text.contains("models.platform_default_temperature: 0.3 (default) → 0.6 (admin)"),
        "{text}"
    );
    let out = run(&["policy", "revisions"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no revisions yet"));

    let out = run(&["policy", "apply", path]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("applied change set 1 at policy revision 1:"));
    let out = run(&["policy", "revisions"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("revision 1 ")
            && text.contains("(change set): models.platform_default_temperature, worker.claim_batch_size"),
        "{text}"
    );
    assert!(text.contains("reason: from a file"), "{text}");

    // Applying it again: the expected version is stale now; nothing written, exit 1.
    let out = run(&["policy", "apply", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.claim_batch_size was changed by cli:"));
    // A bad file names the field; exit 2.
    std::fs::write(&file, r#"{"changes": [{"key": "worker.claim_batch_size"}]}"#).unwrap();
    let out = run(&["policy", "apply", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("changes[0]"));
    let out = run(&["policy", "restore", "1", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("nothing to change"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["policy", "restore", "0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("models.platform_default_temperature: 0.6 (admin) → 0.3 (default)"), "{text}");
}

on_both_backends!(restoring_a_runs_policy_gives_exactly_the_policy_it_was_created_under, |t| {
    use runtime_policy::policy::change_set::Proposal;
    use runtime_policy::runs::input::NewBlocks;
    use runtime_policy::runs::server::{create_run, restore_run_policy, Creator};
    let s = env_store(&t, &[]);
    s.update(&alice(), "worker.claim_batch_size", &json!(6), 0, None).await.unwrap();
    let blocks = NewBlocks::parse("blocks", vec!["one".to_string()]).unwrap();
    let run = create_run(&s, &Creator::cli(), &blocks).await.unwrap();
    let at_run = policy(&s).await;
    s.update(&bob(), "worker.claim_batch_size", &json!(9), 1, None).await.unwrap();
    s.update(&bob(), "models.platform_default_temperature", &json!(0.9), 0, None).await.unwrap();

    let preview = restore_run_policy(&s, &alice(), run.id, None, None, true).await.unwrap();
    let Proposal::Applied(ChangeSetOutcome::Preview { lines }) = &preview else { panic!("{preview:?}") };
    assert_eq!(
        lines.iter().map(|l| l.text()).collect::<Vec<_>>(),
        vec![
            "models.platform_default_temperature: 0.9 (admin) → 0.3 (default)",
            "worker.claim_batch_size: 9 (admin) → 6 (admin)"
        ]
    );
    let out = restore_run_policy(&s, &alice(), run.id, Some("as run 1"), None, false).await.unwrap();
    assert!(matches!(out, Proposal::Applied(ChangeSetOutcome::Applied { .. })), "{out:?}");
    assert_eq!(policy(&s).await, at_run);
    let list = s.revisions(None, 1).await.unwrap();
    assert_eq!(list[0].what(), format!("restore of run {}'s snapshot", run.id));
    assert_eq!(restore_run_policy(&s, &alice(), 999, None, None, true).await.unwrap_err().status_code(), 404);
    t.finish().await;
});

fn carol() -> Actor {
    Actor::user(3, "carol@example.com")
}

fn one(key: &str, target: Target, expected_version: Option<i64>) -> ChangeSet {
    set("needs review", vec![(key, target, expected_version)])
}

/// Alice asks for `key` = `value`; the request's id.
async fn request(s: &PolicyStore, key: &str, value: Value) -> i64 {
    match s.propose(&alice(), &one(key, Target::Value(value), None), ChangeSetKind::Apply).await.unwrap() {
        runtime_policy::policy::change_set::Proposal::Requested { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

async fn events(t: &helpers::TestDb, id: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM policy_change_request_events WHERE request_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&t.db.pool)
        .await
        .unwrap()
}

on_both_backends!(a_reviewed_key_becomes_a_request_that_only_another_superuser_applies, |t| {
    use runtime_policy::policy::change_set::{Proposal, RequestStatus};
    let s = env_store(&t, &[]);
    let stamp = s.stamp().await.unwrap();
    // A change set with a reviewed key and a plain one: all of it waits.
    let cs = set(
        "ship it",
        vec![
            ("worker.max_retries", Target::Value(json!(7)), Some(0)),
            ("worker.claim_batch_size", Target::Value(json!(25)), None),
        ],
    );
    let p = s.propose(&alice(), &cs, ChangeSetKind::Apply).await.unwrap();
    let Proposal::Requested { id, keys } = p else { panic!("{p:?}") };
    assert_eq!(keys, vec!["worker.max_retries"]);
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().source, Layer::Default, "nothing applied yet");
    assert_eq!(s.resolve_key("worker.claim_batch_size").await.unwrap().source, Layer::Default);
    assert_eq!(s.open_request_count().await.unwrap(), 1);
    assert_ne!(s.stamp().await.unwrap(), stamp, "pages showing the count are not kept across a request");

    // Its author can neither approve nor reject it.
    assert_eq!(s.approve(&alice(), id, None).await.unwrap_err().status_code(), 403);
    assert_eq!(s.reject(&alice(), id, Some("no")).await.unwrap_err().status_code(), 403);
    // Another superuser cannot withdraw it; rejecting needs a comment.
    assert_eq!(s.withdraw(&bob(), id, None).await.unwrap_err().status_code(), 403);
    assert_eq!(s.reject(&bob(), id, None).await.unwrap_err().status_code(), 422);

    let out = s.approve(&bob(), id, Some("looks right")).await.unwrap();
    let ChangeSetOutcome::Applied { id: set_id, .. } = out else { panic!("{out:?}") };
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().provenance(), "effective=7 (source=admin)");
    assert_eq!(s.resolve_key("worker.claim_batch_size").await.unwrap().provenance(), "effective=25 (source=admin)");
    let rows = s.history(&AuditFilter::default()).await.unwrap();
    assert!(rows.iter().all(|r| r.change_set_id == Some(set_id) && r.actor_email == "bob@example.com"));
    assert!(rows.iter().all(|r| r.reason.as_deref() == Some("ship it (change request 1)")), "{rows:?}");
    let r = s.request(id).await.unwrap();
    assert_eq!((r.status, r.decided_by.as_deref()), (RequestStatus::Applied, Some("bob@example.com")));
    assert_eq!(events(&t, id).await, vec!["requested", "approved", "applied"]);
    assert_eq!(s.open_request_count().await.unwrap(), 0);
    // Decided: nobody decides it again.
    assert_eq!(s.approve(&carol(), id, None).await.unwrap_err().status_code(), 409);
    assert_eq!(s.withdraw(&alice(), id, None).await.unwrap_err().status_code(), 409);
    t.finish().await;
});

on_both_backends!(a_stale_request_is_refused_and_says_what_changed, |t| {
    let s = env_store(&t, &[]);
    let id = request(&s, "worker.max_retries", json!(7)).await;
    // The key moves on (through a path that needs no review here: the store itself).
    s.update(&bob(), "worker.max_retries", &json!(4), 0, None).await.unwrap();
    let listed = s.requests(5).await.unwrap();
    assert!(matches!(&listed[0].preview, Some(Err(why)) if why.contains("bob@example.com")), "{listed:?}");
    let e = s.approve(&carol(), id, None).await.unwrap_err();
    assert_eq!(e.status_code(), 409);
    assert!(e.to_string().contains("stale") && e.to_string().contains("worker.max_retries was changed by bob"), "{e}");
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().value, json!(4));
    assert_eq!(events(&t, id).await, vec!["requested", "stale"]);
    // Only its author edits it; edited against today's version, it applies.
    let again = one("worker.max_retries", Target::Value(json!(6)), Some(1));
    assert_eq!(s.edit_request(&bob(), id, &again).await.unwrap_err().status_code(), 403);
    s.edit_request(&alice(), id, &again).await.unwrap();
    assert!(matches!(&s.requests(5).await.unwrap()[0].preview, Some(Ok(lines)) if lines.len() == 1));
    assert!(matches!(s.approve(&carol(), id, None).await.unwrap(), ChangeSetOutcome::Applied { .. }));
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().value, json!(6));
    assert_eq!(events(&t, id).await, vec!["requested", "stale", "edited", "approved", "applied"]);
    // A stale request can also be withdrawn by its author.
    let id = request(&s, "worker.max_retries", json!(2)).await;
    s.update(&bob(), "worker.max_retries", &json!(5), 2, None).await.unwrap();
    s.withdraw(&alice(), id, Some("superseded")).await.unwrap();
    assert_eq!(events(&t, id).await, vec!["requested", "withdrawn"]);
    // A request must be valid when made: a bad value opens nothing.
    let bad = one("worker.max_retries", Target::Value(json!(99)), None);
    assert_eq!(s.propose(&alice(), &bad, ChangeSetKind::Apply).await.unwrap_err().status_code(), 422);
    assert_eq!(s.open_request_count().await.unwrap(), 0);
    t.finish().await;
});

on_both_backends!(two_approvals_racing_apply_a_request_once, |t| {
    let s = env_store(&t, &[]);
    let id = request(&s, "models.platform_default_model", json!("openai/gpt-4.1")).await;
    let (bob, carol) = (bob(), carol());
    let (a, b) = tokio::join!(s.approve(&bob, id, None), s.approve(&carol, id, None));
    assert!(a.is_ok() != b.is_ok(), "exactly one approval applies: {a:?} {b:?}");
    let lost = a.err().or(b.err()).unwrap();
    assert_eq!(lost.status_code(), 409, "{lost}");
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM admin_runtime_policy_audit WHERE key = 'models.platform_default_model'",
    )
    .fetch_one(&t.db.pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(events(&t, id).await, vec!["requested", "approved", "applied"]);
    t.finish().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_opens_and_approves_requests_never_its_own() {
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let url = t.url.as_str().to_string();
    let cli = move |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_runtime-policy"))
                .env("DATABASE_URL", url)
                .args(args)
                .output()
                .unwrap()
        })
    };
    // `policy set` of a reviewed key opens a request; the same operator cannot approve it.
    let out = cli(vec!["policy", "set", "worker.max_retries", "6", "--reason", "cli"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("opened change request 1: worker.max_retries"));
    let out = cli(vec!["policy", "approve", "1"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another superuser must approve it"));
    let out = cli(vec!["policy", "requests"]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("request 1 [open]") && text.contains("worker.max_retries: 3 (default) → 6 (admin)"),
        "{text}"
    );
    // A superuser's request, approved from the host.
    let s = env_store(&t, &[]);
    assert_eq!(request(&s, "worker.max_retries", json!(8)).await, 2);
    let out = cli(vec!["policy", "approve", "2", "--comment", "ok"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.resolve_key("worker.max_retries").await.unwrap().value, json!(8));
    // Request 1 is stale now; its author withdraws it.
    let out = cli(vec!["policy", "withdraw", "1"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(vec!["policy", "reject", "2", "--comment", "late"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "a decided request is not decided again");
    t.finish().await;
}
