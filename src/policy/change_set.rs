//! Change sets: one or more key changes with one reason, applied in one transaction at one
//! policy revision (the store applies them: `store.rs`). Shared by the server, the CLI and the
//! page: the input, its JSON file form, and the diff a change set shows before and after.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::registry::Layer;
use super::value::canonical_json;

/// What a change does to one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A new admin value, as JSON.
    Value(Json),
    /// A new admin value, as a person typed it (the page's and the CLI's text form).
    Text(String),
    /// Remove the admin value: the key falls back to env or default.
    Reset,
    /// Set the admin value to the value in force now, even when it is inherited, so that a
    /// later env change cannot move it.
    Pin,
}

/// One key's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyChange {
    pub key: String,
    pub target: Target,
    /// The key's admin version the change was made against; `None` takes whatever is current.
    pub expected_version: Option<i64>,
}

/// What started a change set, as its audit records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSetKind {
    /// Changes a superuser made.
    Apply,
    /// The admin layer of an earlier policy revision restored.
    RestoreRevision(i64),
    /// The admin layer recorded in a run's snapshot restored.
    RestoreRun(i64),
}

impl ChangeSetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSetKind::Apply => "apply",
            ChangeSetKind::RestoreRevision(_) => "restore_revision",
            ChangeSetKind::RestoreRun(_) => "restore_run",
        }
    }

    /// `restore of revision 12`, `restore of run 4's snapshot`, or `change set`.
    pub fn describe(self) -> String {
        match self {
            ChangeSetKind::Apply => "change set".into(),
            ChangeSetKind::RestoreRevision(n) => format!("restore of revision {n}"),
            ChangeSetKind::RestoreRun(r) => format!("restore of run {r}'s snapshot"),
        }
    }
}

/// One or more changes with one reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub reason: Option<String>,
    pub changes: Vec<KeyChange>,
    /// Apply only while the policy is still at this revision (what the diff was made against);
    /// `None` applies to whatever is current, each key checked by its own expected version.
    #[serde(default)]
    pub expected_revision: Option<i64>,
}

/// The most changes one change set may hold (the registry has far fewer keys).
pub const MAX_CHANGES: usize = 200;

impl ChangeSet {
    /// A change set from its JSON file form:
    ///
    /// ```json
    /// {"reason": "…", "changes": [
    ///   {"key": "worker.max_retries", "value": 7, "expected_version": 3},
    ///   {"key": "models.temperature", "reset": true},
    ///   {"key": "upload.max_files_per_batch", "pin": true}
    /// ]}
    /// ```
    ///
    /// Each change has exactly one of `value`, `reset: true` or `pin: true`; `expected_version`
    /// is optional, and so is a top-level `expected_revision`. Whether the keys and values are valid is the store's to judge.
    pub fn from_json(doc: &Json) -> Result<ChangeSet, (String, String)> {
        let bad = |field: &str, why: &str| Err((field.to_string(), why.to_string()));
        let Some(obj) = doc.as_object() else {
            return bad("change set", "must be a JSON object with \"reason\" and \"changes\"");
        };
        if let Some(other) = obj.keys().find(|k| !["reason", "changes", "expected_revision"].contains(&k.as_str())) {
            return bad(other, "is not a change set field (expected reason, changes, expected_revision)");
        }
        let expected_revision = match obj.get("expected_revision") {
            None | Some(Json::Null) => None,
            Some(v) => match v.as_i64().filter(|n| *n >= 0) {
                Some(n) => Some(n),
                None => return bad("expected_revision", "must be a whole number, 0 or more"),
            },
        };
        let reason = match obj.get("reason") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => return bad("reason", "must be a string"),
        };
        let Some(list) = obj.get("changes").and_then(Json::as_array) else {
            return bad("changes", "must be a list of changes");
        };
        if list.is_empty() {
            return bad("changes", "must hold at least one change");
        }
        if list.len() > MAX_CHANGES {
            return bad("changes", &format!("may hold at most {MAX_CHANGES} changes, got {}", list.len()));
        }
        let mut changes = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let field = |name: &str| format!("changes[{i}].{name}");
            let Some(item) = item.as_object() else {
                return bad(&format!("changes[{i}]"), "must be an object with key and one of value, reset, pin");
            };
            if let Some(other) =
                item.keys().find(|k| !["key", "value", "reset", "pin", "expected_version"].contains(&k.as_str()))
            {
                return bad(&field(other), "is not a change field (expected key, value, reset, pin, expected_version)");
            }
            let Some(key) = item.get("key").and_then(Json::as_str) else {
                return bad(&field("key"), "must be a policy key (runtime-policy policy list)");
            };
            let flag = |name: &str| item.get(name).map(|v| v.as_bool());
            let target = match (item.get("value"), flag("reset"), flag("pin")) {
                (Some(v), None, None) => Target::Value(v.clone()),
                (None, Some(Some(true)), None) => Target::Reset,
                (None, None, Some(Some(true))) => Target::Pin,
                _ => return bad(&format!("changes[{i}]"), "must have exactly one of value, reset: true or pin: true"),
            };
            let expected_version = match item.get("expected_version") {
                None | Some(Json::Null) => None,
                Some(v) => match v.as_i64().filter(|n| *n >= 0) {
                    Some(n) => Some(n),
                    None => return bad(&field("expected_version"), "must be a whole number, 0 or more"),
                },
            };
            changes.push(KeyChange { key: key.to_string(), target, expected_version });
        }
        Ok(ChangeSet { reason, changes, expected_revision })
    }
}

/// One key's line in a change set's diff: what was in force and what will be (or was made) so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffLine {
    pub key: String,
    pub from_effective: Json,
    pub from_source: Layer,
    pub to_effective: Json,
    pub to_source: Layer,
    /// The admin value before and after (`None`: none, the key inherits).
    pub from_admin: Option<Json>,
    pub to_admin: Option<Json>,
    /// The key's admin version after the change.
    pub version: i64,
}

impl DiffLine {
    /// `worker.max_retries: 3 (default) → 7 (admin)`.
    pub fn text(&self) -> String {
        let pinned = if self.from_admin.is_none() && self.to_admin.is_some() && self.from_effective == self.to_effective
        {
            " (pinned)"
        } else {
            ""
        };
        format!(
            "{}: {} ({}) → {} ({}){pinned}",
            self.key,
            canonical_json(&self.from_effective),
            self.from_source,
            canonical_json(&self.to_effective),
            self.to_source
        )
    }
}

/// What applying a change set did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChangeSetOutcome {
    /// Applied at `revision`: one audit row per changed key, each naming change set `id`.
    Applied { id: i64, revision: i64, lines: Vec<DiffLine> },
    /// A dry run: what would change; nothing written.
    Preview { lines: Vec<DiffLine> },
    /// Every change was already in force: nothing written.
    Unchanged,
}

impl ChangeSetOutcome {
    /// The outcome in words, one line per changed key.
    pub fn text(&self) -> String {
        let lines = |l: &[DiffLine]| l.iter().map(|d| format!("  {}\n", d.text())).collect::<String>();
        match self {
            ChangeSetOutcome::Applied { id, revision, lines: l } => {
                format!("applied change set {id} at policy revision {revision}:\n{}", lines(l))
            }
            ChangeSetOutcome::Preview { lines: l } => {
                format!("dry run, nothing written; would change {} key(s):\n{}", l.len(), lines(l))
            }
            ChangeSetOutcome::Unchanged => "nothing to change: every value is already in force\n".into(),
        }
    }
}

/// What a change set became: applied (or a dry run, or nothing to do), or a change request
/// because it touches a key that needs a second superuser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Proposal {
    Applied(ChangeSetOutcome),
    Requested { id: i64, keys: Vec<String> },
}

impl Proposal {
    pub fn text(&self) -> String {
        match self {
            Proposal::Applied(o) => o.text(),
            Proposal::Requested { id, keys } => format!(
                "opened change request {id}: {} need(s) another superuser's approval \
                 (runtime-policy policy approve {id}); nothing applied yet\n",
                keys.join(", ")
            ),
        }
    }
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Open,
    Rejected,
    Withdrawn,
    Applied,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Withdrawn => "withdrawn",
            RequestStatus::Applied => "applied",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        [RequestStatus::Open, RequestStatus::Rejected, RequestStatus::Withdrawn, RequestStatus::Applied]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One step of a change request: requested, edited, approved, rejected, withdrawn, applied or
/// stale (an approval refused because a key changed since the request was made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEvent {
    pub action: String,
    pub actor_email: String,
    pub at: String,
    pub comment: Option<String>,
}

/// A change request: a change set waiting for a second superuser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub id: i64,
    pub author_id: Option<i64>,
    pub author_email: String,
    pub created_at: String,
    pub reason: Option<String>,
    pub kind: ChangeSetKind,
    /// Each with the key's admin version when it was requested.
    pub changes: Vec<KeyChange>,
    pub status: RequestStatus,
    pub version: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_comment: Option<String>,
    pub events: Vec<RequestEvent>,
    /// For an open request: what approving it would change now, or why it would be refused
    /// (stale: a key changed since it was requested).
    pub preview: Option<Result<Vec<DiffLine>, String>>,
}

/// The admin layer as a document, for config as code: every key a superuser has set, with its
/// value. Importing it makes the admin layer exactly this (keys not in it are reset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminExport {
    /// Always `runtime-policy/admin-layer/v1`.
    pub format: String,
    /// The policy revision it was exported at.
    pub revision: i64,
    pub keys: std::collections::BTreeMap<String, Json>,
}

pub const EXPORT_FORMAT: &str = "runtime-policy/admin-layer/v1";

impl AdminExport {
    /// A document from its JSON, refusing another format or a key that is not a policy key
    /// (values are judged by the store, like any change).
    pub fn from_json(doc: &Json) -> Result<AdminExport, (String, String)> {
        let export: AdminExport = serde_json::from_value(doc.clone())
            .map_err(|e| ("document".to_string(), format!("is not an admin-layer export: {e}")))?;
        if export.format != EXPORT_FORMAT {
            return Err(("format".into(), format!("must be {EXPORT_FORMAT}, got \"{}\"", export.format)));
        }
        if let Some(k) = export.keys.keys().find(|k| super::registry::spec(k).is_none()) {
            return Err((k.clone(), "is not a policy key; `runtime-policy policy list` shows them all".into()));
        }
        Ok(export)
    }
}

/// One policy revision in the list of revisions: who, when, why, which keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionSummary {
    pub revision: i64,
    pub actor_email: String,
    pub at: String,
    pub reason: Option<String>,
    /// The keys changed at this revision, in audit order.
    pub keys: Vec<String>,
    /// Set when the revision was a change set (`None`: a single-key change).
    pub change_set_id: Option<i64>,
    pub kind: Option<ChangeSetKind>,
}

impl RevisionSummary {
    /// `change set`, `restore of revision 3`, or the single change's action.
    pub fn what(&self) -> String {
        match self.kind {
            Some(k) => k.describe(),
            None => "single change".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_file_form_is_parsed_and_bad_files_name_the_field() {
        let set = ChangeSet::from_json(&json!({
            "reason": "tune",
            "changes": [
                {"key": "a", "value": 7, "expected_version": 3},
                {"key": "b", "reset": true},
                {"key": "c", "pin": true},
                {"key": "d", "value": null}
            ]
        }))
        .unwrap();
        assert_eq!(set.reason.as_deref(), Some("tune"));
        assert_eq!(
            set.changes.iter().map(|c| (c.key.as_str(), c.target.clone(), c.expected_version)).collect::<Vec<_>>(),
            vec![
                ("a", Target::Value(json!(7)), Some(3)),
                ("b", Target::Reset, None),
                ("c", Target::Pin, None),
                ("d", Target::Value(Json::Null), None)
            ]
        );
        for (doc, field) in [
            (json!([]), "change set"),
            (json!({"changes": []}), "changes"),
            (json!({"reason": 1, "changes": [{"key": "a", "value": 1}]}), "reason"),
            (json!({"changes": [{"key": "a"}]}), "changes[0]"),
            (json!({"changes": [{"key": "a", "value": 1, "reset": true}]}), "changes[0]"),
            (json!({"changes": [{"key": "a", "reset": false}]}), "changes[0]"),
            (json!({"changes": [{"value": 1}]}), "changes[0].key"),
            (json!({"changes": [{"key": "a", "value": 1, "expected_version": -1}]}), "changes[0].expected_version"),
            (json!({"changes": [{"key": "a", "value": 1, "extra": 1}]}), "changes[0].extra"),
            (json!({"changes": [{"key": "a", "value": 1}], "dry_run": true}), "dry_run"),
            (json!({"changes": [{"key": "a", "value": 1}], "expected_revision": "3"}), "expected_revision"),
        ] {
            assert_eq!(ChangeSet::from_json(&doc).unwrap_err().0, field, "{doc}");
        }
        let many: Vec<Json> = (0..=MAX_CHANGES).map(|i| json!({"key": format!("k{i}"), "reset": true})).collect();
        assert_eq!(ChangeSet::from_json(&json!({ "changes": many })).unwrap_err().0, "changes");
    }
}
