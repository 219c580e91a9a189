//! What a page reads of the policy, kept in memory per policy revision: the resolved keys and
//! the recent history of each category. Every write bumps the revision in the same transaction
//! as its value and audit row (`store.rs`), so a reader that reads the revision first and finds
//! it unchanged may use what it loaded at that revision; a change made through any instance
//! shows at this instance's next read, which costs one query (the revision and the time of the
//! newest audit row: [`Stamp`]) instead of three.
//!
//! Why reading the revision first is enough: data loaded after reading revision `r` is at
//! revision `r` or newer. It is kept under `r`; once a newer revision commits, every reader sees
//! that number, misses, and loads again. Nothing older than `r` is ever kept under `r`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::audit::AuditRow;
use super::resolve::Resolved;

/// One category's recent history: each key with its newest rows, newest first.
pub type KeyHistory = Vec<(String, Vec<AuditRow>)>;

/// What the kept data is keyed by, read in one statement: the policy revision and the time of
/// the newest audit row. The time tells apart a database restored from a backup and written
/// again up to the same revision number from the one the data was loaded from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub revision: i64,
    pub last_change: Option<String>,
    /// The newest change-request event: opening or deciding a request changes no policy value
    /// but changes what the settings pages show (the open-request count).
    pub last_request: Option<i64>,
}

#[derive(Default)]
struct AtRevision {
    stamp: Stamp,
    resolved: Option<Arc<Vec<Resolved>>>,
    /// By (keys, rows per key).
    history: HashMap<(Vec<&'static str>, i64), Arc<KeyHistory>>,
}

/// Shared by every clone of the store. Holds one revision's data at a time, so its size is
/// bounded by the registry (the keys, their categories, a few rows each).
#[derive(Clone, Default)]
pub struct RevisionCache(Arc<Mutex<AtRevision>>);

impl std::fmt::Debug for RevisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevisionCache")
    }
}

impl RevisionCache {
    fn with<T>(&self, stamp: &Stamp, f: impl FnOnce(&mut AtRevision) -> T) -> T {
        // A panic while the lock was held cannot leave the map half-written in a way that
        // matters: start over from empty.
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = AtRevision::default();
            g
        });
        if guard.stamp != *stamp {
            // Any other revision starts over, an older one included: a reader that read the
            // revision just before a write commits keeps data at that revision or newer, which
            // the next reader of the newer revision replaces; and a database restored from a
            // backup (a lower revision) is read again instead of trusting what was kept.
            *guard = AtRevision { stamp: stamp.clone(), ..Default::default() };
        }
        f(&mut guard)
    }

    pub fn resolved(&self, stamp: &Stamp) -> Option<Arc<Vec<Resolved>>> {
        self.with(stamp, |c| c.resolved.clone())
    }

    pub fn keep_resolved(&self, stamp: &Stamp, resolved: Arc<Vec<Resolved>>) {
        self.with(stamp, |c| c.resolved = Some(resolved));
    }

    pub fn history(&self, stamp: &Stamp, keys: &[&'static str], per_key: i64) -> Option<Arc<KeyHistory>> {
        self.with(stamp, |c| c.history.get(&(keys.to_vec(), per_key)).cloned())
    }

    pub fn keep_history(&self, stamp: &Stamp, keys: &[&'static str], per_key: i64, rows: Arc<KeyHistory>) {
        self.with(stamp, |c| {
            c.history.insert((keys.to_vec(), per_key), rows);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_revision_drops_what_was_kept() {
        let at =
            |revision: i64, last: &str| Stamp { revision, last_change: Some(last.to_string()), last_request: None };
        let cache = RevisionCache::default();
        cache.keep_resolved(&at(3, "t3"), Arc::new(Vec::new()));
        cache.keep_history(&at(3, "t3"), &["a"], 5, Arc::new(vec![("a".into(), Vec::new())]));
        assert!(cache.resolved(&at(3, "t3")).is_some());
        assert!(cache.history(&at(3, "t3"), &["a"], 5).is_some());
        assert!(cache.history(&at(3, "t3"), &["a"], 6).is_none(), "another row count is another entry");
        assert!(cache.resolved(&at(4, "t4")).is_none(), "revision 4 must load again");
        assert!(cache.history(&at(3, "t3"), &["a"], 5).is_none(), "revision 3 is gone once 4 was seen");
        cache.keep_resolved(&at(4, "t4"), Arc::new(Vec::new()));
        assert!(cache.resolved(&at(4, "t4")).is_some());
        // A database restored from a backup and written again up to revision 4: its newest
        // change is another one, so nothing kept is trusted.
        assert!(cache.resolved(&at(4, "t4 after a restore")).is_none());
        // A lower revision starts over too.
        cache.keep_resolved(&at(4, "t4"), Arc::new(Vec::new()));
        assert!(cache.resolved(&at(3, "t3")).is_none());
        assert!(cache.resolved(&at(4, "t4")).is_none());
    }
}
