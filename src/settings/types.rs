//! What the settings page's server functions send, and the sections of the page.

use serde::{Deserialize, Serialize};

use crate::paths;
use crate::policy::audit::{AuditRow, Conflict};
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
    Saved { key: String, version: i64 },
    Unchanged { key: String },
    Invalid { key: String, field: String, message: String },
    Conflict(Conflict),
}

impl SaveOutcome {
    pub fn key(&self) -> &str {
        match self {
            SaveOutcome::Saved { key, .. } | SaveOutcome::Unchanged { key } | SaveOutcome::Invalid { key, .. } => key,
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

/// How many history rows each key shows beside its control.
pub const KEY_HISTORY_ROWS: i64 = 20;
/// Rows per page of the global audit log.
pub const AUDIT_PAGE_ROWS: i64 = 50;

/// A section of the settings page's side nav: the keys of one category, or the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Keys(Category),
    Audit,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Keys(Category::Models),
        Section::Keys(Category::Worker),
        Section::Keys(Category::Optimization),
        Section::Keys(Category::Upload),
        Section::Audit,
    ];

    /// The path segment used in deep links.
    pub fn slug(self) -> &'static str {
        match self {
            Section::Keys(c) => c.slug(),
            Section::Audit => "audit",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Section::Keys(c) => c.label(),
            Section::Audit => "Audit log",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Section::Keys(c) => c.summary(),
            Section::Audit => "Every change to the policy: who, when, from, to and why.",
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
