//! Audit rows and write conflicts, shared by the server and the page.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

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

/// One row of `admin_runtime_policy_audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub key: String,
    pub action: String,
    pub actor_id: Option<i64>,
    pub actor_email: String,
    pub at: String,
    pub from_value: Option<Json>,
    pub to_value: Option<Json>,
    pub reason: Option<String>,
    pub policy_revision: i64,
    pub key_version: i64,
    pub reverted_audit_id: Option<i64>,
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

