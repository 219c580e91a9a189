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
    })
}

const AUDIT_COLUMNS: &str = "id, key, action, actor_id, actor_email, at, from_value, to_value, reason, policy_revision, key_version, reverted_audit_id";

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
            "SELECT revision, (SELECT at FROM admin_runtime_policy_audit ORDER BY id DESC LIMIT 1) AS last_change
             FROM policy_revision WHERE id = 1",
        )
        .fetch_one(&self.db.pool)
        .await?;
        Ok(super::cache::Stamp { revision: row.try_get("revision")?, last_change: row.try_get("last_change")? })
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
            (Ok(parsed), Ok(reason)) => {
                self.write(actor, s, Some(parsed), expected_version, reason, AuditAction::Update, None).await
            }
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
            Ok(reason) => self.write(actor, s, None, expected_version, reason, AuditAction::Reset, None).await,
            Err(e) => Err(e),
        };
        self.count(s.key, &outcome);
        outcome
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
        let row = sqlx::query("SELECT key, to_value FROM admin_runtime_policy_audit WHERE id = $1")
            .bind(audit_id)
            .fetch_optional(&self.db.pool)
            .await?;
        let row = match row {
            Some(r) if r.try_get::<String, _>("key")? == key => r,
            _ => return Err(AppError::NotFound(format!("audit row {audit_id} is not in the history of {key}"))),
        };
        let target = match parse_json_text(row.try_get("to_value")?) {
            Some(json) => Some(s.parse_json(&json)?),
            None => None,
        };
        let outcome = self.write(actor, s, target, expected_version, reason, AuditAction::Revert, Some(audit_id)).await;
        self.count(s.key, &outcome);
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        actor: &Actor,
        s: &KeySpec,
        new_value: Option<PolicyValue>,
        expected_version: i64,
        reason: Option<String>,
        action: AuditAction,
        reverted_audit_id: Option<i64>,
    ) -> Result<WriteOutcome, AppError> {
        let mut tx = self.db.begin_write().await?;
        // Bumping the revision first takes the write lock (SQLite) or the row lock (PostgreSQL)
        // before anything is read, so concurrent writers queue here and each sees the last
        // committed state. A no-op rolls the bump back.
        let revision: i64 =
            sqlx::query_scalar("UPDATE policy_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision")
                .fetch_one(&mut *tx)
                .await?;

        let mut admin = load_admin(&mut *tx).await?;
        let current = admin.get(s.key).cloned();
        let current_version = current.as_ref().map(|c| c.version).unwrap_or(0);
        if current_version != expected_version {
            let c = current.unwrap_or(AdminEntry {
                value: None,
                version: 0,
                updated_by: String::new(),
                updated_at: String::new(),
            });
            tx.rollback().await?;
            return Ok(WriteOutcome::Conflict(Conflict {
                key: s.key.to_string(),
                expected_version,
                current_version,
                changed_by: c.updated_by,
                changed_at: c.updated_at,
                current_value: c.value,
            }));
        }

        let before = resolve_all(&Layers { env: (*self.env).clone(), admin: admin.clone() });
        let new_json = new_value.as_ref().map(PolicyValue::to_json);
        let from_json = current.as_ref().and_then(|c| c.value.clone());
        let effective_before = before.iter().find(|r| r.key == s.key).map(|r| r.value.clone());
        let unchanged = match (&new_json, action) {
            // Setting the value already in force.
            (Some(v), _) => {
                from_json.as_ref() == Some(v) || (from_json.is_none() && effective_before.as_ref() == Some(v))
            }
            // Resetting a key that has no admin value.
            (None, _) => from_json.is_none(),
        };
        if unchanged {
            tx.rollback().await?;
            return Ok(WriteOutcome::Unchanged);
        }

        // The cross-key rule, checked on the state this write would leave.
        let new_version = current_version + 1;
        let now = format_ts(Utc::now());
        admin.insert(
            s.key.to_string(),
            AdminEntry {
                value: new_json.clone(),
                version: new_version,
                updated_by: actor.email.clone(),
                updated_at: now.clone(),
            },
        );
        let model_before =
            before.iter().find(|r| r.key == keys::DEFAULT_MODEL).and_then(|r| r.value.as_str().map(str::to_string));
        check_default_model(&Layers { env: (*self.env).clone(), admin }, s.key, model_before)?;

        let new_text = new_json.as_ref().map(canonical_json);
        sqlx::query(
            "INSERT INTO admin_runtime_policy (key, value, version, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(s.key)
        .bind(new_text.clone())
        .bind(new_version)
        .bind(&actor.email)
        .bind(&now)
        .execute(&mut *tx)
        .await?;

        let audit_id: i64 = sqlx::query_scalar(
            "INSERT INTO admin_runtime_policy_audit
                 (key, action, actor_id, actor_email, at, from_value, to_value, reason, policy_revision, key_version, reverted_audit_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(s.key)
        .bind(action.as_str())
        .bind(actor.id)
        .bind(&actor.email)
        .bind(&now)
        .bind(from_json.as_ref().map(canonical_json))
        .bind(new_text)
        .bind(reason)
        .bind(revision)
        .bind(new_version)
        .bind(reverted_audit_id)
        .fetch_one(&mut *tx)
        .await?;

        tx.commit().await?;
        tracing::info!(key = s.key, actor = %actor.email, version = new_version, revision, action = action.as_str(), "policy changed");
        Ok(WriteOutcome::Changed { version: new_version, revision, audit_id })
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
