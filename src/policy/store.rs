//! The policy store: admin baseline, append-only audit, and the revision counter. Every write is
//! one transaction that validates, checks the expected version, writes the value and its audit
//! row, and bumps the revision; if any step fails, nothing changes.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sqlx::{Any, Row, Transaction};

use super::audit::{AuditAction, AuditFilter, AuditRow, Conflict};
use super::change_set::{
    AdminExport, ChangeSet, ChangeSetKind, ChangeSetOutcome, DiffLine, KeyChange, Proposal, RevisionSummary, Target,
};
use super::parse::model_in_registry;
use super::registry::{keys, spec, unknown_key, KeySpec};
use super::resolve::{pick_by_precedence, resolve_all, AdminEntry, Layers, Resolved};
use super::value::{canonical_json, PolicyValue, ValidationError};
use crate::db::{format_ts, parse_stored, parse_ts, Db};
use crate::error::AppError;

pub const MAX_REASON_CHARS: usize = 500;

/// Who makes a change: a signed-in user (id and email) or a CLI operator (`cli:<os user>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: Option<i64>,
    pub email: String,
}

impl Actor {
    pub fn user(id: i64, email: impl Into<String>) -> Actor {
        Actor { id: Some(id), email: email.into() }
    }

    /// The actor of a CLI write: `cli:<os user>`, the name of the process's real user id (not
    /// `$USER`, which anyone can set), or `cli:uid:<n>` when it has no name.
    pub fn cli() -> Actor {
        Actor { id: None, email: format!("cli:{}", os_user()) }
    }
}

/// What a write did. Bad input, a missing audit row or a database failure are errors instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteOutcome {
    Changed {
        version: i64,
        revision: i64,
        audit_id: i64,
    },
    /// The value was already in force: nothing written, no audit row.
    Unchanged,
    /// Someone changed the key since the writer read it: nothing written.
    Conflict(Conflict),
}

/// One key's change, parsed and checked against the registry, ready for [`PolicyStore::commit`].
struct Plan {
    spec: &'static KeySpec,
    /// The new admin value (`None`: reset); ignored for a pin.
    value: Option<PolicyValue>,
    /// Set the admin value to the value in force, even when inherited.
    pin: bool,
    expected_version: Option<i64>,
    action: AuditAction,
    reverted_audit_id: Option<i64>,
}

impl Plan {
    fn set(spec: &'static KeySpec, value: PolicyValue, expected_version: i64) -> Plan {
        Plan {
            spec,
            value: Some(value),
            pin: false,
            expected_version: Some(expected_version),
            action: AuditAction::Update,
            reverted_audit_id: None,
        }
    }

    fn reset(spec: &'static KeySpec, expected_version: i64) -> Plan {
        Plan { value: None, action: AuditAction::Reset, ..Plan::set_nothing(spec, Some(expected_version)) }
    }

    fn set_nothing(spec: &'static KeySpec, expected_version: Option<i64>) -> Plan {
        Plan { spec, value: None, pin: false, expected_version, action: AuditAction::Update, reverted_audit_id: None }
    }
}

/// How [`PolicyStore::commit`] writes: as a change set of `set`'s kind (or a single change),
/// only while the policy is at `expected_revision`, not at all for a dry run, and marking an
/// approved change request applied.
#[derive(Default)]
struct CommitOptions {
    set: Option<ChangeSetKind>,
    expected_revision: Option<i64>,
    dry_run: bool,
    approval: Option<super::review::Approval>,
}

/// What [`PolicyStore::commit`] did.
enum Committed {
    Done { revision: i64, lines: Vec<DiffLine>, audit_ids: Vec<i64>, change_set_id: Option<i64> },
    Preview(Vec<DiffLine>),
    Unchanged,
    Conflicts(Vec<Conflict>),
}

/// The store: the database plus the env layer read at start.
#[derive(Clone, Debug)]
pub struct PolicyStore {
    pub db: Db,
    env: Arc<HashMap<String, String>>,
    /// Whether the live instances disagree on the env layer, as this instance's heartbeat
    /// last found (`policy/instances.rs`); shared by every clone of the store.
    pub env_warning: super::instances::EnvWarning,
    /// The resolved policy and recent history at the last revision read (`cache.rs`).
    cache: super::cache::RevisionCache,
}

/// The name of the process's real user id, from the password database.
fn os_user() -> String {
    // SAFETY: getuid cannot fail. getpwuid_r writes the entry into `pwd` with its strings in
    // `buf`, and `result` points at `pwd` on success; `pw_name` is read while `buf` lives.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            if let Ok(name) = std::ffi::CStr::from_ptr(pwd.pw_name).to_str() {
                if !name.is_empty() {
                    return name.to_string();
                }
            }
        }
        format!("uid:{uid}")
    }
}

fn check_reason(reason: Option<&str>) -> Result<Option<String>, AppError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reason {
        if let Some(c) = r.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(ValidationError::new(
                "reason",
                format!("must not contain control characters, got U+{:04X}", c as u32),
            )
            .into());
        }
        let n = r.chars().count();
        if n > MAX_REASON_CHARS {
            return Err(ValidationError::new(
                "reason",
                format!("must be at most {MAX_REASON_CHARS} characters, got {n}"),
            )
            .into());
        }
    }
    Ok(reason.map(str::to_string))
}

fn parse_json_text(s: Option<String>) -> Option<Json> {
    s.and_then(|t| serde_json::from_str(&t).ok())
}

fn audit_from_row(r: &sqlx::any::AnyRow) -> Result<AuditRow, AppError> {
    let action =
        parse_stored("admin_runtime_policy_audit.action", &r.try_get::<String, _>("action")?, AuditAction::parse)?;
    Ok(AuditRow {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        action,
        actor_id: r.try_get("actor_id")?,
        actor_email: r.try_get("actor_email")?,
        at: r.try_get("at")?,
        from_value: parse_json_text(r.try_get("from_value")?),
        to_value: parse_json_text(r.try_get("to_value")?),
        reason: r.try_get("reason")?,
        policy_revision: r.try_get("policy_revision")?,
        key_version: r.try_get("key_version")?,
        reverted_audit_id: r.try_get("reverted_audit_id")?,
        from_effective: parse_json_text(r.try_get("from_effective")?),
        from_source: r.try_get("from_source")?,
        to_effective: parse_json_text(r.try_get("to_effective")?),
        to_source: r.try_get("to_source")?,
        change_set_id: r.try_get("change_set_id")?,
    })
}

const AUDIT_COLUMNS: &str = "id, key, action, actor_id, actor_email, at, from_value, to_value, reason, policy_revision, key_version, reverted_audit_id, from_effective, from_source, to_effective, to_source, change_set_id";

async fn load_admin<'e, E>(exec: E) -> Result<HashMap<String, AdminEntry>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows = sqlx::query("SELECT key, value, version, updated_by, updated_at FROM admin_runtime_policy")
        .fetch_all(exec)
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let value: Option<String> = r.try_get("value")?;
        out.insert(
            r.try_get::<String, _>("key")?,
            AdminEntry {
                // A stored value that is not JSON is kept as text, so resolution reports it.
                value: value.map(|t| serde_json::from_str(&t).unwrap_or(Json::String(t))),
                version: r.try_get("version")?,
                updated_by: r.try_get("updated_by")?,
                updated_at: r.try_get("updated_at")?,
            },
        );
    }
    Ok(out)
}

impl PolicyStore {
    pub fn new(db: Db, env: HashMap<String, String>) -> PolicyStore {
        PolicyStore { db, env: Arc::new(env), env_warning: Default::default(), cache: Default::default() }
    }

    /// A store whose env layer comes from this process's `POLICY__…` variables.
    pub fn from_process_env(db: Db) -> PolicyStore {
        PolicyStore::new(db, super::resolve::env_layer(|k| std::env::var(k).ok()))
    }

    pub fn env(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// The current revision of the whole policy.
    pub async fn revision(&self) -> Result<i64, AppError> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT revision FROM policy_revision WHERE id = 1")
            .fetch_one(&self.db.pool)
            .await?)
    }

    /// Every key resolved with provenance (default < env < admin).
    pub async fn resolve(&self) -> Result<Vec<Resolved>, AppError> {
        Ok(self.current().await?.1.as_ref().clone())
    }

    /// The revision and the time of the newest audit row, in one statement (`cache.rs`).
    pub async fn stamp(&self) -> Result<super::cache::Stamp, AppError> {
        let row = sqlx::query(
            "SELECT revision, (SELECT at FROM admin_runtime_policy_audit ORDER BY id DESC LIMIT 1) AS last_change,
                    (SELECT MAX(id) FROM policy_change_request_events) AS last_request
             FROM policy_revision WHERE id = 1",
        )
        .fetch_one(&self.db.pool)
        .await?;
        Ok(super::cache::Stamp {
            revision: row.try_get("revision")?,
            last_change: row.try_get("last_change")?,
            last_request: row.try_get("last_request")?,
        })
    }

    /// The current stamp (revision) and every key resolved at it (or later: see `cache.rs`).
    /// While the stamp stays the same this costs one query.
    pub async fn current(&self) -> Result<(super::cache::Stamp, Arc<Vec<Resolved>>), AppError> {
        let stamp = self.stamp().await?;
        if let Some(resolved) = self.cache.resolved(&stamp) {
            return Ok((stamp, resolved));
        }
        let admin = load_admin(&self.db.pool).await?;
        let resolved = Arc::new(resolve_all(&Layers { env: (*self.env).clone(), admin }));
        self.cache.keep_resolved(&stamp, resolved.clone());
        Ok((stamp, resolved))
    }

    /// Resolves inside a transaction, so the result matches the revision read in it.
    pub async fn resolve_in(&self, tx: &mut Transaction<'static, Any>) -> Result<(Vec<Resolved>, i64), AppError> {
        let admin = load_admin(&mut **tx).await?;
        let revision = sqlx::query_scalar::<_, i64>("SELECT revision FROM policy_revision WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
        Ok((resolve_all(&Layers { env: (*self.env).clone(), admin }), revision))
    }

    pub async fn resolve_key(&self, key: &str) -> Result<Resolved, AppError> {
        spec(key).ok_or_else(|| unknown_key(key))?;
        let all = self.resolve().await?;
        all.into_iter().find(|r| r.key == key).ok_or_else(|| unknown_key(key).into())
    }

    /// Sets the admin value of `key` from JSON.
    pub async fn update(
        &self,
        actor: &Actor,
        key: &str,
        value: &Json,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        self.update_with(actor, key, |s| s.parse_json(value), expected_version, reason).await
    }

    /// Sets the admin value of `key` from text typed by a person (page form, CLI).
    pub async fn update_text(
        &self,
        actor: &Actor,
        key: &str,
        raw: &str,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        self.update_with(actor, key, |s| s.parse_text(raw), expected_version, reason).await
    }

    async fn update_with(
        &self,
        actor: &Actor,
        key: &str,
        parse: impl FnOnce(&KeySpec) -> Result<PolicyValue, ValidationError>,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        let s = spec(key).ok_or_else(|| unknown_key(key))?;
        let outcome = match (parse(s), check_reason(reason)) {
            (Ok(parsed), Ok(reason)) => self.write_one(actor, Plan::set(s, parsed, expected_version), reason).await,
            (Err(e), _) => Err(e.into()),
            (_, Err(e)) => Err(e),
        };
        self.count(s.key, &outcome);
        outcome
    }

    /// Counts a change's outcome for `/metrics`, by key.
    fn count(&self, key: &str, outcome: &Result<WriteOutcome, AppError>) {
        let name = match outcome {
            Ok(WriteOutcome::Changed { .. }) => "policy_saves_total",
            Ok(WriteOutcome::Conflict(_)) => "policy_conflicts_total",
            Ok(WriteOutcome::Unchanged) => "policy_noops_total",
            Err(e) if e.status_code() == 422 => "policy_refusals_total",
            Err(_) => return,
        };
        self.db.metrics.inc(name, &[("key", key)]);
    }

    /// Removes the admin value; the key falls back to env or default.
    pub async fn reset(
        &self,
        actor: &Actor,
        key: &str,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        let s = spec(key).ok_or_else(|| unknown_key(key))?;
        let outcome = match check_reason(reason) {
            Ok(reason) => self.write_one(actor, Plan::reset(s, expected_version), reason).await,
            Err(e) => Err(e),
        };
        self.count(s.key, &outcome);
        outcome
    }

    /// The admin value `key` had after audit row `audit_id` (`None`: none, it was reset).
    pub async fn value_after(&self, key: &str, audit_id: i64) -> Result<Option<Json>, AppError> {
        let row = sqlx::query("SELECT key, to_value FROM admin_runtime_policy_audit WHERE id = $1")
            .bind(audit_id)
            .fetch_optional(&self.db.pool)
            .await?;
        match row {
            Some(r) if r.try_get::<String, _>("key")? == key => Ok(parse_json_text(r.try_get("to_value")?)),
            _ => Err(AppError::NotFound(format!("audit row {audit_id} is not in the history of {key}"))),
        }
    }

    /// Restores the value a key had after audit row `audit_id` (its `to`); itself a new,
    /// audited change.
    pub async fn revert(
        &self,
        actor: &Actor,
        key: &str,
        audit_id: i64,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        let s = spec(key).ok_or_else(|| unknown_key(key))?;
        let reason = check_reason(reason)?;
        let target = match self.value_after(key, audit_id).await? {
            Some(json) => Some(s.parse_json(&json)?),
            None => None,
        };
        let plan = Plan {
            action: AuditAction::Revert,
            reverted_audit_id: Some(audit_id),
            ..match target {
                Some(v) => Plan::set(s, v, expected_version),
                None => Plan::reset(s, expected_version),
            }
        };
        let outcome = self.write_one(actor, plan, reason).await;
        self.count(s.key, &outcome);
        outcome
    }

    /// Applies the planned changes in one transaction: the revision bumped first (the write
    /// lock), every expected version checked, no-ops dropped, the cross-key rule judged on the
    /// result as a whole, then one admin row and one audit row (with what was in force before
    /// and after) per changed key, and the change set's row when there is one. A dry run stops
    /// before writing and rolls back.
    async fn commit(
        &self,
        actor: &Actor,
        plans: Vec<Plan>,
        reason: Option<String>,
        opts: CommitOptions,
    ) -> Result<Committed, AppError> {
        let CommitOptions { set, expected_revision, dry_run, approval } = opts;
        let mut tx = self.db.begin_write().await?;
        // Bumping the revision first takes the write lock (SQLite) or the row lock (PostgreSQL)
        // before anything is read, so concurrent writers queue here and each sees the last
        // committed state. A no-op rolls the bump back.
        let revision: i64 =
            sqlx::query_scalar("UPDATE policy_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision")
                .fetch_one(&mut *tx)
                .await?;
        if let Some(expected) = expected_revision.filter(|r| *r != revision - 1) {
            tx.rollback().await?;
            return Err(AppError::Conflict(format!(
                "the policy changed since the diff was made (revision {expected}, now {}); review it again",
                revision - 1
            )));
        }

        if let Some(a) = &approval {
            if let Err(e) = super::review::check_still_open(&mut tx, a).await {
                tx.rollback().await?;
                return Err(e);
            }
        }

        let mut admin = load_admin(&mut *tx).await?;
        let conflicts: Vec<Conflict> = plans
            .iter()
            .filter_map(|p| {
                let expected = p.expected_version?;
                let current = admin.get(p.spec.key);
                let current_version = current.map(|c| c.version).unwrap_or(0);
                (current_version != expected).then(|| Conflict {
                    key: p.spec.key.to_string(),
                    expected_version: expected,
                    current_version,
                    changed_by: current.map(|c| c.updated_by.clone()).unwrap_or_default(),
                    changed_at: current.map(|c| c.updated_at.clone()).unwrap_or_default(),
                    current_value: current.and_then(|c| c.value.clone()),
                })
            })
            .collect();
        if !conflicts.is_empty() {
            tx.rollback().await?;
            return Ok(Committed::Conflicts(conflicts));
        }

        let env = (*self.env).clone();
        let before = resolve_all(&Layers { env: env.clone(), admin: admin.clone() });
        let in_force = |key: &str| before.iter().find(|r| r.key == key);
        let now = format_ts(Utc::now());
        // (plan, admin value before, value after, version after)
        let mut changed = Vec::new();
        for plan in plans {
            let current = admin.get(plan.spec.key).cloned();
            let from_json = current.as_ref().and_then(|c| c.value.clone());
            let effective_before = in_force(plan.spec.key).map(|r| r.value.clone());
            let new_json = match (&plan.value, plan.pin) {
                (_, true) => effective_before.clone(),
                (Some(v), false) => Some(v.to_json()),
                (None, false) => None,
            };
            let unchanged = match (&new_json, plan.pin) {
                // A pin of a key that already has its admin value.
                (_, true) => from_json.is_some(),
                // Setting the value already in force.
                (Some(v), false) => {
                    from_json.as_ref() == Some(v) || (from_json.is_none() && effective_before.as_ref() == Some(v))
                }
                // Resetting a key that has no admin value.
                (None, false) => from_json.is_none(),
            };
            if unchanged {
                continue;
            }
            let version = current.as_ref().map(|c| c.version).unwrap_or(0) + 1;
            admin.insert(
                plan.spec.key.to_string(),
                AdminEntry {
                    value: new_json.clone(),
                    version,
                    updated_by: actor.email.clone(),
                    updated_at: now.clone(),
                },
            );
            changed.push((plan, from_json, new_json, version));
        }
        if changed.is_empty() {
            tx.rollback().await?;
            return Ok(Committed::Unchanged);
        }

        // The cross-key rule, judged on the state the whole change would leave.
        let model_before = in_force(keys::DEFAULT_MODEL).and_then(|r| r.value.as_str().map(str::to_string));
        let after_layers = Layers { env, admin };
        for touched in [keys::DEFAULT_MODEL, keys::PROVIDER_REGISTRY] {
            if changed.iter().any(|(p, ..)| p.spec.key == touched) {
                check_default_model(&after_layers, touched, model_before.clone())?;
                break;
            }
        }
        let after = resolve_all(&after_layers);
        let lines: Vec<DiffLine> = changed
            .iter()
            .filter_map(|(plan, from_admin, to_admin, version)| {
                let (b, a) = (in_force(plan.spec.key)?, after.iter().find(|r| r.key == plan.spec.key)?);
                Some(DiffLine {
                    key: plan.spec.key.to_string(),
                    from_effective: b.value.clone(),
                    from_source: b.source,
                    to_effective: a.value.clone(),
                    to_source: a.source,
                    from_admin: from_admin.clone(),
                    to_admin: to_admin.clone(),
                    version: *version,
                })
            })
            .collect();
        if dry_run {
            tx.rollback().await?;
            return Ok(Committed::Preview(lines));
        }

        let change_set_id = match set {
            Some(kind) => {
                let (restored_revision, restored_run) = match kind {
                    ChangeSetKind::Apply => (None, None),
                    ChangeSetKind::RestoreRevision(n) => (Some(n), None),
                    ChangeSetKind::RestoreRun(r) => (None, Some(r)),
                };
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO policy_change_sets
                         (kind, actor_id, actor_email, at, reason, policy_revision, restored_revision, restored_run, request_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(kind.as_str())
                .bind(actor.id)
                .bind(&actor.email)
                .bind(&now)
                .bind(reason.clone())
                .bind(revision)
                .bind(restored_revision)
                .bind(restored_run)
                .bind(approval.as_ref().map(|a| a.request_id))
                .fetch_one(&mut *tx)
                .await?;
                if let Some(a) = &approval {
                    super::review::record_approval(&mut tx, a, actor, &now, id).await?;
                }
                Some(id)
            }
            None => None,
        };

        let mut written = Vec::with_capacity(changed.len());
        for ((plan, from_json, new_json, version), line) in changed.iter().zip(&lines) {
            let new_text = new_json.as_ref().map(canonical_json);
            sqlx::query(
                "INSERT INTO admin_runtime_policy (key, value, version, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(plan.spec.key)
            .bind(new_text.clone())
            .bind(*version)
            .bind(&actor.email)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            let audit_id: i64 = sqlx::query_scalar(
                "INSERT INTO admin_runtime_policy_audit
                     (key, action, actor_id, actor_email, at, from_value, to_value, reason, policy_revision, key_version,
                      reverted_audit_id, from_effective, from_source, to_effective, to_source, change_set_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
            )
            .bind(plan.spec.key)
            .bind(plan.action.as_str())
            .bind(actor.id)
            .bind(&actor.email)
            .bind(&now)
            .bind(from_json.as_ref().map(canonical_json))
            .bind(new_text)
            .bind(reason.clone())
            .bind(revision)
            .bind(*version)
            .bind(plan.reverted_audit_id)
            .bind(canonical_json(&line.from_effective))
            .bind(line.from_source.as_str())
            .bind(canonical_json(&line.to_effective))
            .bind(line.to_source.as_str())
            .bind(change_set_id)
            .fetch_one(&mut *tx)
            .await?;
            written.push(audit_id);
        }

        // Told to webhooks by the outbox, in this same transaction.
        let payload = serde_json::json!({
            "revision": revision,
            "change_set": change_set_id,
            "actor": actor.email,
            "reason": reason,
            "changes": lines,
            "audit_ids": written,
        });
        super::webhooks::enqueue(&mut tx, "policy.changed", &payload).await?;
        tx.commit().await?;
        for ((plan, _, _, version), _) in changed.iter().zip(&written) {
            tracing::info!(
                key = plan.spec.key, actor = %actor.email, version, revision, action = plan.action.as_str(),
                change_set = change_set_id, "policy changed"
            );
        }
        Ok(Committed::Done { revision, lines, audit_ids: written, change_set_id })
    }

    /// A single-key change, as [`WriteOutcome`].
    async fn write_one(&self, actor: &Actor, plan: Plan, reason: Option<String>) -> Result<WriteOutcome, AppError> {
        Ok(match self.commit(actor, vec![plan], reason, CommitOptions::default()).await? {
            Committed::Done { revision, lines, audit_ids, .. } => WriteOutcome::Changed {
                version: lines.first().map(|l| l.version).unwrap_or_default(),
                revision,
                audit_id: audit_ids.first().copied().unwrap_or_default(),
            },
            Committed::Conflicts(mut c) if !c.is_empty() => WriteOutcome::Conflict(c.remove(0)),
            Committed::Conflicts(_) | Committed::Unchanged | Committed::Preview(_) => WriteOutcome::Unchanged,
        })
    }

    /// Sets the admin value of `key` to the value in force now, even when it is inherited (a
    /// pin): a later env change cannot move it. Audited as an update whose value did not change.
    pub async fn pin(
        &self,
        actor: &Actor,
        key: &str,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        let s = spec(key).ok_or_else(|| unknown_key(key))?;
        let outcome = match check_reason(reason) {
            Ok(reason) => {
                let plan = Plan { pin: true, ..Plan::set_nothing(s, Some(expected_version)) };
                self.write_one(actor, plan, reason).await
            }
            Err(e) => Err(e),
        };
        self.count(s.key, &outcome);
        outcome
    }

    /// Applies a change set without review (entry points for people call
    /// [`PolicyStore::propose`], which opens a change request for reviewed keys): every key parsed and validated, every expected version checked,
    /// the cross-key rule judged on the result as a whole, one policy revision, one audit row
    /// per changed key carrying the change set's id. Any failure writes nothing and names every
    /// key that failed. With `dry_run`, returns the diff and writes nothing.
    pub async fn apply_change_set(
        &self,
        actor: &Actor,
        set: &ChangeSet,
        kind: ChangeSetKind,
        dry_run: bool,
    ) -> Result<ChangeSetOutcome, AppError> {
        self.apply_change_set_with(actor, set, kind, dry_run, None).await
    }

    /// [`PolicyStore::apply_change_set`], applying an approved change request when `approval`
    /// says which: its row is marked applied in the same transaction, or nothing is written.
    pub(super) async fn apply_change_set_with(
        &self,
        actor: &Actor,
        set: &ChangeSet,
        kind: ChangeSetKind,
        dry_run: bool,
        approval: Option<super::review::Approval>,
    ) -> Result<ChangeSetOutcome, AppError> {
        let reason = check_reason(set.reason.as_deref())?;
        if set.changes.is_empty() {
            return Err(AppError::invalid("changes", "must hold at least one change"));
        }
        let mut plans = Vec::with_capacity(set.changes.len());
        // (key, the sentence that names it)
        let mut problems: Vec<(String, String)> = Vec::new();
        for change in &set.changes {
            let Some(s) = spec(&change.key) else {
                problems.push((change.key.clone(), unknown_key(&change.key).to_string()));
                continue;
            };
            if plans.iter().any(|p: &Plan| p.spec.key == s.key) {
                problems.push((s.key.to_string(), format!("{} appears more than once in the change set", s.key)));
                continue;
            }
            let value = match &change.target {
                Target::Value(v) => s.parse_json(v).map(Some),
                Target::Text(t) => s.parse_text(t).map(Some),
                Target::Reset | Target::Pin => Ok(None),
            };
            match value {
                Ok(value) => plans.push(Plan {
                    value,
                    pin: change.target == Target::Pin,
                    action: if change.target == Target::Reset { AuditAction::Reset } else { AuditAction::Update },
                    ..Plan::set_nothing(s, change.expected_version)
                }),
                Err(e) => problems.push((s.key.to_string(), e.to_string())),
            }
        }
        match problems.len() {
            0 => {}
            // One key: its own field error, as a single-key save gives.
            1 => {
                let (key, message) = problems.remove(0);
                return Err(AppError::field(&key, message));
            }
            n => {
                let text: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
                return Err(AppError::field(
                    "changes",
                    format!("{n} changes refused, nothing written: {}", text.join("; ")),
                ));
            }
        }
        let keys: Vec<&'static str> = plans.iter().map(|p| p.spec.key).collect();
        let count = |name: &'static str, keys: &mut dyn Iterator<Item = &str>| {
            for key in keys {
                self.db.metrics.inc(name, &[("key", key)]);
            }
        };
        let opts = CommitOptions { set: Some(kind), expected_revision: set.expected_revision, dry_run, approval };
        match self.commit(actor, plans, reason, opts).await {
            Ok(Committed::Done { revision, lines, change_set_id, .. }) => {
                count("policy_saves_total", &mut lines.iter().map(|l| l.key.as_str()));
                Ok(ChangeSetOutcome::Applied { id: change_set_id.unwrap_or_default(), revision, lines })
            }
            Ok(Committed::Preview(lines)) => Ok(ChangeSetOutcome::Preview { lines }),
            Ok(Committed::Unchanged) => {
                count("policy_noops_total", &mut keys.iter().copied());
                Ok(ChangeSetOutcome::Unchanged)
            }
            Ok(Committed::Conflicts(conflicts)) => {
                count("policy_conflicts_total", &mut conflicts.iter().map(|c| c.key.as_str()));
                let text: Vec<String> = conflicts.iter().map(Conflict::to_string).collect();
                Err(AppError::Conflict(format!(
                    "{} key(s) changed since you read them, nothing written: {}",
                    conflicts.len(),
                    text.join("; ")
                )))
            }
            Err(e) => {
                if e.status_code() == 422 {
                    count("policy_refusals_total", &mut keys.iter().copied());
                }
                Err(e)
            }
        }
    }

    /// The admin layer as it stood at `revision`, rebuilt from the audit log (each key's last
    /// row at or before it). A key whose last row is a reset has an entry with no value.
    pub async fn admin_layer_at(&self, revision: i64) -> Result<HashMap<String, AdminEntry>, AppError> {
        let current = self.revision().await?;
        if !(0..=current).contains(&revision) {
            return Err(AppError::NotFound(format!(
                "policy revision {revision} does not exist (the current revision is {current})"
            )));
        }
        let rows = sqlx::query(
            "SELECT key, to_value, key_version, actor_email, at FROM (
                 SELECT key, to_value, key_version, actor_email, at,
                        ROW_NUMBER() OVER (PARTITION BY key ORDER BY id DESC) AS rank_in_key
                 FROM admin_runtime_policy_audit WHERE policy_revision <= $1
             ) ranked WHERE rank_in_key = 1",
        )
        .bind(revision)
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(
                r.try_get::<String, _>("key")?,
                AdminEntry {
                    value: parse_json_text(r.try_get("to_value")?),
                    version: r.try_get("key_version")?,
                    updated_by: r.try_get("actor_email")?,
                    updated_at: r.try_get("at")?,
                },
            );
        }
        Ok(out)
    }

    /// Every key resolved as at `revision`: its admin layer then, under this instance's env
    /// layer and the registry's defaults.
    pub async fn resolve_at(&self, revision: i64) -> Result<Vec<Resolved>, AppError> {
        let admin = self.admin_layer_at(revision).await?;
        Ok(resolve_all(&Layers { env: (*self.env).clone(), admin }))
    }

    /// Makes the admin layer what `targets` says (key → admin value; `None` or absent: no
    /// admin value, so the key is reset) as one change set of `kind`. Only keys that differ
    /// are changed; with `dry_run` nothing is written and the diff comes back. Like every change
    /// set from a person, it becomes a change request when it touches a key that needs review.
    pub async fn restore(
        &self,
        actor: &Actor,
        targets: &HashMap<String, Option<Json>>,
        kind: ChangeSetKind,
        reason: Option<&str>,
        expected_revision: Option<i64>,
        dry_run: bool,
    ) -> Result<Proposal, AppError> {
        let changes = super::registry::REGISTRY
            .iter()
            .map(|s| KeyChange {
                key: s.key.to_string(),
                target: match targets.get(s.key).cloned().flatten() {
                    Some(v) => Target::Value(v),
                    None => Target::Reset,
                },
                expected_version: None,
            })
            .collect();
        let set = ChangeSet { reason: reason.map(str::to_string), changes, expected_revision };
        if dry_run {
            return Ok(Proposal::Applied(self.apply_change_set(actor, &set, kind, true).await?));
        }
        self.propose(actor, &set, kind).await
    }

    /// Restores the admin layer of policy revision `revision` as one new change set.
    pub async fn restore_revision(
        &self,
        actor: &Actor,
        revision: i64,
        reason: Option<&str>,
        expected_revision: Option<i64>,
        dry_run: bool,
    ) -> Result<Proposal, AppError> {
        let targets = self.admin_layer_at(revision).await?.into_iter().map(|(k, e)| (k, e.value)).collect();
        let kind = ChangeSetKind::RestoreRevision(revision);
        self.restore(actor, &targets, kind, reason, expected_revision, dry_run).await
    }

    /// The admin layer as a document ([`AdminExport`]), read at one revision.
    pub async fn export_admin(&self) -> Result<AdminExport, AppError> {
        let mut tx = self.db.pool.begin().await?;
        let revision = sqlx::query_scalar::<_, i64>("SELECT revision FROM policy_revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let admin = load_admin(&mut *tx).await?;
        tx.commit().await?;
        let keys = admin.into_iter().filter_map(|(k, e)| e.value.map(|v| (k, v))).collect();
        Ok(AdminExport { format: super::change_set::EXPORT_FORMAT.into(), revision, keys })
    }

    /// Makes the admin layer exactly `export`'s (keys not in it are reset) as one change set,
    /// or a change request when a reviewed key would change; `dry_run` gives the diff.
    pub async fn import_admin(
        &self,
        actor: &Actor,
        export: &AdminExport,
        reason: Option<&str>,
        dry_run: bool,
    ) -> Result<Proposal, AppError> {
        let targets = export.keys.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        self.restore(actor, &targets, ChangeSetKind::Apply, reason, None, dry_run).await
    }

    /// The newest policy revisions below `before` (all when `None`), newest first: who, when,
    /// why and which keys.
    pub async fn revisions(&self, before: Option<i64>, limit: i64) -> Result<Vec<RevisionSummary>, AppError> {
        let rows = sqlx::query(
            "SELECT a.policy_revision, a.key, a.actor_email, a.at, a.reason, a.change_set_id,
                    c.kind, c.restored_revision, c.restored_run
             FROM admin_runtime_policy_audit a LEFT JOIN policy_change_sets c ON c.id = a.change_set_id
             WHERE a.policy_revision IN (
                 SELECT DISTINCT policy_revision FROM admin_runtime_policy_audit
                 WHERE policy_revision < $1 ORDER BY policy_revision DESC LIMIT $2
             )
             ORDER BY a.policy_revision DESC, a.id",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.db.pool)
        .await?;
        let mut out: Vec<RevisionSummary> = Vec::new();
        for r in rows {
            let revision: i64 = r.try_get("policy_revision")?;
            let key: String = r.try_get("key")?;
            if let Some(last) = out.last_mut().filter(|l| l.revision == revision) {
                last.keys.push(key);
                continue;
            }
            let kind = match r.try_get::<Option<String>, _>("kind")?.as_deref() {
                Some("apply") => Some(ChangeSetKind::Apply),
                Some("restore_revision") => {
                    Some(ChangeSetKind::RestoreRevision(r.try_get::<Option<i64>, _>("restored_revision")?.unwrap_or(0)))
                }
                Some("restore_run") => {
                    Some(ChangeSetKind::RestoreRun(r.try_get::<Option<i64>, _>("restored_run")?.unwrap_or(0)))
                }
                _ => None,
            };
            out.push(RevisionSummary {
                revision,
                actor_email: r.try_get("actor_email")?,
                at: r.try_get("at")?,
                reason: r.try_get("reason")?,
                keys: vec![key],
                change_set_id: r.try_get("change_set_id")?,
                kind,
            });
        }
        Ok(out)
    }

    /// [`PolicyStore::recent_history`] at `stamp` (read before, as [`PolicyStore::current`]
    /// does), from memory while the stamp stays the same.
    pub async fn recent_history_at(
        &self,
        stamp: &super::cache::Stamp,
        keys: &[&'static str],
        per_key: i64,
    ) -> Result<Arc<super::cache::KeyHistory>, AppError> {
        if let Some(rows) = self.cache.history(stamp, keys, per_key) {
            return Ok(rows);
        }
        let rows = Arc::new(self.recent_history(keys, per_key).await?);
        self.cache.keep_history(stamp, keys, per_key, rows.clone());
        Ok(rows)
    }

    /// The newest `per_key` audit rows of each of `keys`, newest first, in the order of `keys`:
    /// one query for a whole category.
    pub async fn recent_history(&self, keys: &[&str], per_key: i64) -> Result<Vec<(String, Vec<AuditRow>)>, AppError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM (
                 SELECT {AUDIT_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY key ORDER BY id DESC) AS rank_in_key
                 FROM admin_runtime_policy_audit WHERE key IN ({})
             ) ranked
             WHERE rank_in_key <= ${} ORDER BY id DESC",
            placeholders.join(", "),
            keys.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for k in keys {
            q = q.bind(*k);
        }
        let rows = q.bind(per_key.clamp(1, 10_000)).fetch_all(&self.db.pool).await?;
        let mut out: Vec<(String, Vec<AuditRow>)> = keys.iter().map(|k| (k.to_string(), Vec::new())).collect();
        for row in &rows {
            let row = audit_from_row(row)?;
            if let Some((_, list)) = out.iter_mut().find(|(k, _)| *k == row.key) {
                list.push(row);
            }
        }
        Ok(out)
    }

    /// Audit rows, newest first.
    pub async fn history(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, AppError> {
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM admin_runtime_policy_audit WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.key.is_some() {
            sql.push_str(&format!(" AND key = {}", next()));
        }
        if filter.actor.is_some() {
            sql.push_str(&format!(" AND actor_email = {}", next()));
        }
        if filter.from.is_some() {
            sql.push_str(&format!(" AND at >= {}", next()));
        }
        if filter.to.is_some() {
            sql.push_str(&format!(" AND at < {}", next()));
        }
        if filter.before_id.is_some() {
            sql.push_str(&format!(" AND id < {}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", next()));
        let mut q = sqlx::query(&sql);
        if let Some(k) = &filter.key {
            q = q.bind(k.clone());
        }
        if let Some(a) = &filter.actor {
            q = q.bind(a.clone());
        }
        if let Some(f) = &filter.from {
            q = q.bind(normalise_bound("from", f)?);
        }
        if let Some(t) = &filter.to {
            q = q.bind(normalise_bound("to", t)?);
        }
        if let Some(b) = filter.before_id {
            q = q.bind(b);
        }
        q = q.bind(filter.limit.unwrap_or(100).clamp(1, 10_000));
        let rows = q.fetch_all(&self.db.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }
}

/// Time bounds are compared as stored text, so they are rewritten in the stored form.
fn normalise_bound(field: &str, raw: &str) -> Result<String, AppError> {
    let parsed = parse_ts(raw.trim()).or_else(|| {
        chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| dt.and_utc())
    });
    parsed.map(format_ts).ok_or_else(|| {
        ValidationError::new(field, format!("must be a date (YYYY-MM-DD) or an RFC 3339 time, got \"{raw}\"")).into()
    })
}

/// Refuses a change that would leave the default model pointing at a missing or disabled model.
/// For a registry change that is the default model in force before it (`model_before`); for a
/// change of the default model itself, the value the precedence chain now picks.
fn check_default_model(layers: &Layers, changed: &str, model_before: Option<String>) -> Result<(), AppError> {
    if changed != keys::PROVIDER_REGISTRY && changed != keys::DEFAULT_MODEL {
        return Ok(());
    }
    let all = resolve_all(layers);
    let providers = all
        .iter()
        .find(|r| r.key == keys::PROVIDER_REGISTRY)
        .and_then(|r| spec(&r.key).and_then(|s| s.parse_json(&r.value).ok()))
        .and_then(|v| v.as_providers().map(|p| p.to_vec()))
        .unwrap_or_default();
    let model = if changed == keys::PROVIDER_REGISTRY {
        model_before
    } else {
        spec(keys::DEFAULT_MODEL)
            .and_then(|s| pick_by_precedence(s, layers))
            .and_then(|m| m.as_str().map(str::to_string))
    };
    let Some(model) = model else { return Ok(()) };
    if model_in_registry(&model, &providers) {
        return Ok(());
    }
    let message = if changed == keys::PROVIDER_REGISTRY {
        format!(
            "would leave {} (\"{model}\") pointing at a missing or disabled model; change the default model first",
            keys::DEFAULT_MODEL
        )
    } else {
        format!("\"{model}\" is not a model of an enabled provider in {}", keys::PROVIDER_REGISTRY)
    };
    Err(ValidationError::new(changed, message).into())
}
