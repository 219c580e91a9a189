//! What the settings page's server functions send, and the sections of the page.

use serde::{Deserialize, Serialize};

use crate::paths;
use crate::policy::audit::{AuditRow, Conflict};
use crate::policy::change_set::{ChangeRequest, DiffLine, RevisionSummary};
use crate::policy::registry::Category;
use crate::policy::resolve::Resolved;

/// Everything the settings page shows: every key resolved (the nav marks keys not at their
/// default), and the recent history of the keys in the open category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyPage {
    pub resolved: Vec<Resolved>,
    pub history: Vec<(String, Vec<AuditRow>)>,
    pub revision: i64,
    /// Set when the server instances sharing the database run with different env layers.
    pub env_warning: Option<String>,
    /// Change requests waiting for a decision (the nav shows the count).
    pub open_requests: i64,
}

impl PolicyPage {
    pub fn resolved(&self, key: &str) -> Option<&Resolved> {
        self.resolved.iter().find(|r| r.key == key)
    }

    pub fn history(&self, key: &str) -> &[AuditRow] {
        self.history.iter().find(|(k, _)| k == key).map(|(_, rows)| rows.as_slice()).unwrap_or(&[])
    }
}

/// What a save, reset or revert did. Expected failures (a value not allowed, a conflict) are
/// outcomes shown beside the field, not errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SaveOutcome {
    Saved {
        key: String,
        version: i64,
    },
    Unchanged {
        key: String,
    },
    Invalid {
        key: String,
        field: String,
        message: String,
    },
    Conflict(Conflict),
    /// The key needs a second superuser: change request `id` was opened instead.
    Requested {
        key: String,
        id: i64,
    },
}

impl SaveOutcome {
    pub fn key(&self) -> &str {
        match self {
            SaveOutcome::Saved { key, .. }
            | SaveOutcome::Unchanged { key }
            | SaveOutcome::Invalid { key, .. }
            | SaveOutcome::Requested { key, .. } => key,
            SaveOutcome::Conflict(c) => &c.key,
        }
    }
}

/// One page of the audit log, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    /// The id to pass as `before` for the next (older) page, when there is one.
    pub older: Option<i64>,
    /// Why the filters were refused, when they were.
    pub error: Option<String>,
}

/// One side of a comparison of two whole policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicySide {
    Revision(i64),
    /// The policy a run was created under (its snapshot).
    Run(i64),
    Today,
}

impl PolicySide {
    pub fn label(self) -> String {
        match self {
            PolicySide::Revision(n) => format!("revision {n}"),
            PolicySide::Run(r) => format!("run {r}'s snapshot"),
            PolicySide::Today => "today".into(),
        }
    }
}

/// One key in a comparison: its provenance on each side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareLine {
    pub key: String,
    pub left: String,
    pub right: String,
    /// The effective values differ.
    pub differs: bool,
}

/// Two whole policies key by key and, when the right side is today's, what restoring the left
/// side would change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub left: PolicySide,
    pub right: PolicySide,
    pub lines: Vec<CompareLine>,
    /// The restore's diff (a dry run); empty when the left side is already in force.
    pub restore: Option<Result<Vec<DiffLine>, String>>,
}

/// The revisions section: the list (newest first, paged) and the comparison the address asks
/// for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevisionsPage {
    /// The policy's revision now: a restore is made against it.
    pub current: i64,
    pub revisions: Vec<RevisionSummary>,
    /// The revision to pass as `before` for the next (older) page.
    pub older: Option<i64>,
    pub comparison: Option<Comparison>,
    /// Why the address's revision or run could not be opened.
    pub error: Option<String>,
}

/// An edit staged on the settings page, to be applied with the others as one change set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StagedChange {
    pub key: String,
    /// The value as typed (the control's text form).
    pub text: String,
    /// The key's admin version when it was staged.
    pub expected_version: i64,
    /// What was in force when it was staged (`effective=… (source=…)`), for the list.
    #[serde(default)]
    pub from: String,
}

/// What applying the staged edits did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Applied {
        revision: i64,
        keys: usize,
    },
    /// A staged key needs review: change request `id` holds them all.
    Requested {
        id: i64,
    },
    Unchanged,
    Refused(String),
}

impl ApplyOutcome {
    /// Whether it succeeded, and the sentence the page shows.
    pub fn sentence(&self) -> (bool, String) {
        match self {
            ApplyOutcome::Applied { revision, keys } => {
                (true, format!("Applied {keys} change(s) as one change set, now revision {revision}."))
            }
            ApplyOutcome::Requested { id } => (
                true,
                format!("Change request {id} opened: a staged key needs a second superuser, so all of them wait."),
            ),
            ApplyOutcome::Unchanged => (true, "Nothing to apply: every staged value is already in force.".into()),
            ApplyOutcome::Refused(m) => (false, m.clone()),
        }
    }
}

/// What a restore did, for the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RestoreOutcome {
    Restored {
        revision: i64,
        keys: usize,
    },
    Unchanged,
    /// The restore touches a key that needs review: change request `id` was opened instead.
    Requested {
        id: i64,
    },
    Refused(String),
}

/// The change-requests section: open requests (with what approving each would change now),
/// then the latest decided ones; and who is looking, since nobody decides their own request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestsPage {
    pub requests: Vec<ChangeRequest>,
    pub viewer_id: i64,
}

/// What a decision on a change request did, for the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DecisionOutcome {
    Done(String),
    Refused(String),
}

impl RestoreOutcome {
    /// Whether it succeeded, and the sentence the page shows.
    pub fn sentence(&self) -> (bool, String) {
        match self {
            RestoreOutcome::Restored { revision, keys } => {
                (true, format!("Restored: {keys} key(s) changed, now revision {revision}."))
            }
            RestoreOutcome::Unchanged => (true, "Nothing to restore: that policy is already in force.".into()),
            RestoreOutcome::Requested { id } => {
                (true, format!("Change request {id} opened: the restore touches keys that need a second superuser."))
            }
            RestoreOutcome::Refused(m) => (false, m.clone()),
        }
    }
}

/// A personal API token as the page lists it (never the token).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub name: String,
    pub owner: String,
    pub scopes: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A webhook as the page lists it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub events: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// One delivery in the page's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// The integrations section: API tokens, webhooks and the delivery log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationsPage {
    pub tokens: Vec<TokenView>,
    pub webhooks: Vec<WebhookView>,
    pub deliveries: Vec<DeliveryView>,
}

/// What an integrations form did; `secret` is a new token, shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationOutcome {
    pub ok: bool,
    pub message: String,
    pub secret: Option<String>,
}

/// Revisions per page of the revisions section.
pub const REVISIONS_PAGE_ROWS: i64 = 50;

/// How many history rows each key shows beside its control.
pub const KEY_HISTORY_ROWS: i64 = 20;
/// Rows per page of the global audit log.
pub const AUDIT_PAGE_ROWS: i64 = 50;

/// A section of the settings page's side nav: the keys of one category, or the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Keys(Category),
    Audit,
    Revisions,
    Requests,
    Integrations,
}

impl Section {
    pub const ALL: [Section; 8] = [
        Section::Keys(Category::Models),
        Section::Keys(Category::Worker),
        Section::Keys(Category::Optimization),
        Section::Keys(Category::Upload),
        Section::Audit,
        Section::Revisions,
        Section::Requests,
        Section::Integrations,
    ];

    /// The path segment used in deep links.
    pub fn slug(self) -> &'static str {
        match self {
            Section::Keys(c) => c.slug(),
            Section::Audit => "audit",
            Section::Revisions => "revisions",
            Section::Requests => "requests",
            Section::Integrations => "integrations",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Section::Keys(c) => c.label(),
            Section::Audit => "Audit log",
            Section::Revisions => "Revisions",
            Section::Requests => "Change requests",
            Section::Integrations => "API and webhooks",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Section::Keys(c) => c.summary(),
            Section::Audit => "Every change to the policy: who, when, from, to and why.",
            Section::Integrations => {
                "Personal API tokens for /api/v1/policy, and webhooks told about changes, with their delivery log."
            }
            Section::Requests => {
                "Changes to keys that need a second superuser wait here. Another superuser approves one (which \
                 applies it) or rejects it; its author can withdraw it."
            }
            Section::Revisions => {
                "Every version of the policy. Open one to see the whole policy as it stood then, compare it with \
                 today or another revision, and restore it."
            }
        }
    }

    pub fn from_slug(slug: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.slug() == slug)
    }

    pub fn href(self) -> String {
        paths::settings_section(self.slug())
    }
}

/// The deep link to a key on the settings page (a key no longer in the registry lands on the
/// first section).
pub fn key_href(key: &str) -> String {
    match crate::policy::registry::spec(key) {
        Some(s) => s.href(),
        None => paths::key_link(Category::Models.slug(), key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_round_trips_through_its_slug() {
        for s in Section::ALL {
            assert_eq!(Section::from_slug(s.slug()), Some(s));
            assert!(s.href().starts_with("/app/settings/superuser/"));
        }
        assert_eq!(Section::from_slug("nope"), None);
    }

    #[test]
    fn deep_links_name_the_category_and_the_key() {
        assert_eq!(
            key_href("worker.claim_batch_size"),
            "/app/settings/superuser/worker?key=worker.claim_batch_size#key-worker-claim_batch_size"
        );
    }
}
