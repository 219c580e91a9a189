//! Audit rows and write conflicts, shared by the server and the page.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::value::canonical_json;

/// What a change did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A new admin value.
    Update,
    /// The admin value removed: the key falls back to env or default.
    Reset,
    /// The value of an earlier audit row restored.
    Revert,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Update => "update",
            AuditAction::Reset => "reset",
            AuditAction::Revert => "revert",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        [AuditAction::Update, AuditAction::Reset, AuditAction::Revert].into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A write refused because someone changed the key since the writer read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub key: String,
    pub expected_version: i64,
    pub current_version: i64,
    pub changed_by: String,
    pub changed_at: String,
    /// The admin value now stored (`None`: reset to the inherited value).
    pub current_value: Option<Json>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was changed by {} at {} to {} (version {}, you edited version {}); reload and try again",
            self.key,
            self.changed_by,
            self.changed_at,
            self.current_value.as_ref().map(canonical_json).unwrap_or_else(|| "the inherited value (reset)".into()),
            self.current_version,
            self.expected_version
        )
    }
}

/// One row of `admin_runtime_policy_audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub key: String,
    pub action: AuditAction,
    pub actor_id: Option<i64>,
    pub actor_email: String,
    pub at: String,
    pub from_value: Option<Json>,
    pub to_value: Option<Json>,
    pub reason: Option<String>,
    pub policy_revision: i64,
    pub key_version: i64,
    pub reverted_audit_id: Option<i64>,
    /// The effective value before the change and the layer it came from (`default`, `env`,
    /// `admin`): what was in force, where `from_value` is only the admin layer. `None` on rows
    /// written before this was recorded.
    #[serde(default)]
    pub from_effective: Option<Json>,
    #[serde(default)]
    pub from_source: Option<String>,
    /// The effective value after the change and its layer.
    #[serde(default)]
    pub to_effective: Option<Json>,
    #[serde(default)]
    pub to_source: Option<String>,
    /// The change set this row was applied in (`None`: a single-key change).
    #[serde(default)]
    pub change_set_id: Option<i64>,
}

impl AuditRow {
    /// A pin: an admin value set equal to the value that was inherited, so that a later env
    /// change cannot move it.
    pub fn is_pin(&self) -> bool {
        self.action == AuditAction::Update
            && self.from_value.is_none()
            && self.from_effective.is_some()
            && self.from_effective == self.to_effective
    }

    /// The action as the page and the exports name it (`pin` for a pin).
    pub fn action_label(&self) -> &'static str {
        if self.is_pin() {
            "pin"
        } else {
            self.action.as_str()
        }
    }

    /// What was in force before: `0.3 (default)`; for older rows the admin value, or
    /// `(inherited)`.
    pub fn before_text(&self) -> String {
        in_force(self.from_effective.as_ref(), self.from_source.as_deref(), self.from_value.as_ref())
    }

    /// What was in force after: `0.55 (admin)`, or `42 (env)` after a reset.
    pub fn after_text(&self) -> String {
        in_force(self.to_effective.as_ref(), self.to_source.as_deref(), self.to_value.as_ref())
    }
}

fn in_force(effective: Option<&Json>, source: Option<&str>, admin: Option<&Json>) -> String {
    match (effective, source, admin) {
        (Some(v), Some(s), _) => format!("{} ({s})", canonical_json(v)),
        (_, _, Some(v)) => canonical_json(v),
        _ => "(inherited)".to_string(),
    }
}

/// Filters for the audit log; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub key: Option<String>,
    pub actor: Option<String>,
    /// Inclusive lower bound, RFC 3339.
    pub from: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    pub to: Option<String>,
    /// Only rows with an id below this one (paging, newest first).
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

impl AuditFilter {
    /// A filter from query-string style fields; empty fields are no filter.
    pub fn from_fields(
        key: Option<String>,
        actor: Option<String>,
        from: Option<String>,
        to: Option<String>,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> AuditFilter {
        let some = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        AuditFilter { key: some(key), actor: some(actor), from: some(from), to: some(to), before_id: before, limit }
    }
}
