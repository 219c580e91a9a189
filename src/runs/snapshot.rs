//! The policy snapshot a run freezes when it is created: every key's value, the layer it came
//! from at capture time and its admin version, plus the policy revision. Workers read it through
//! the API; the run page compares it with today's baseline.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::policy::registry::{keys, spec, Layer, BLOCK_TEXT_PLACEHOLDER};
use crate::policy::resolve::Resolved;
use crate::policy::value::PolicyValue;

/// One key as captured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotKey {
    pub key: String,
    pub value: Json,
    /// The layer the value came from when the run was created: `default`, `env` or `admin`.
    pub captured_from: Layer,
    /// The key's admin version at capture (0: no superuser had set it).
    pub admin_version: i64,
}

/// The whole snapshot, as stored (its JSON text is what the SHA-256 covers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub policy_revision: i64,
    pub keys: Vec<SnapshotKey>,
}

impl Snapshot {
    /// Captures resolved keys (registry order) at `revision`.
    pub fn capture(resolved: &[Resolved], revision: i64) -> Snapshot {
        Snapshot {
            policy_revision: revision,
            keys: resolved
                .iter()
                .map(|r| SnapshotKey {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    captured_from: r.source,
                    admin_version: r.admin_version,
                })
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&SnapshotKey> {
        self.keys.iter().find(|k| k.key == key)
    }

    /// The typed value of `key`. A key the snapshot lacks (added to the registry after the run
    /// was created) or holds in a form this release no longer accepts gets the registry default,
    /// so a worker always has a usable value.
    pub fn value(&self, key: &str) -> Option<PolicyValue> {
        let spec = spec(key)?;
        Some(self.get(key).and_then(|k| spec.parse_json(&k.value).ok()).unwrap_or_else(|| spec.default_value()))
    }

    pub fn claim_batch_size(&self) -> i64 {
        self.value(keys::CLAIM_BATCH_SIZE).and_then(|v| v.as_int()).unwrap_or(10).max(1)
    }

    /// True when blocks are claimed from the highest `block_index` down.
    pub fn claim_descending(&self) -> bool {
        self.value(keys::CLAIM_ORDERING).and_then(|v| v.as_str().map(|s| s == "block_index_desc")).unwrap_or(false)
    }

    pub fn max_retries(&self) -> i64 {
        self.value(keys::MAX_RETRIES).and_then(|v| v.as_int()).unwrap_or(3).max(0)
    }

    pub fn block_prompt(&self) -> String {
        self.value(keys::BLOCK_PROMPT)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| BLOCK_TEXT_PLACEHOLDER.to_string())
    }

    /// The model a result is produced with.
    pub fn model(&self) -> String {
        self.value(keys::DEFAULT_MODEL).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// The temperature as its canonical JSON text (`0.3`).
    pub fn temperature_text(&self) -> String {
        self.value(keys::DEFAULT_TEMPERATURE)
            .map(|v| crate::policy::value::canonical_json(&v.to_json()))
            .unwrap_or_default()
    }

    pub fn max_tokens(&self) -> i64 {
        self.value(keys::DEFAULT_MAX_TOKENS).and_then(|v| v.as_int()).unwrap_or(4096).max(1)
    }

    pub fn batching(&self) -> bool {
        self.value(keys::BATCHING).and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// `worker.batching.safety_margin` in hundredths (20 for 0.2).
    pub fn batching_margin_hundredths(&self) -> i64 {
        match self.value(keys::BATCHING_SAFETY_MARGIN) {
            Some(PolicyValue::Hundredths(h)) => h.clamp(0, 99),
            _ => 20,
        }
    }

    pub fn prompt_caching(&self) -> bool {
        self.value(keys::PROMPT_CACHING).and_then(|v| v.as_bool()).unwrap_or(false)
    }

    pub fn system_prompt(&self) -> String {
        self.value(keys::SYSTEM_PROMPT).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// Every key by name with its value: the form a worker reads.
    pub fn values(&self) -> serde_json::Map<String, Json> {
        self.keys.iter().map(|k| (k.key.clone(), k.value.clone())).collect()
    }
}

/// The block prompt with the block's text in place of every `{{block_text}}`.
pub fn render_block_prompt(template: &str, block_text: &str) -> String {
    template.replace(BLOCK_TEXT_PLACEHOLDER, block_text)
}

/// Splits pasted text into blocks: one per paragraph (separated by blank lines), trimmed,
/// empty paragraphs dropped.
pub fn paragraphs(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n").trim().to_string());
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n").trim().to_string());
    }
    out.retain(|p| !p.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::resolve::{resolve_all, Layers};

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(paragraphs("a\nb\n\n  \nc\r\n\r\nd  "), vec!["a\nb", "c", "d"]);
        assert!(paragraphs(" \n\n ").is_empty());
    }

    #[test]
    fn a_fresh_snapshot_holds_every_key_with_its_defaults() {
        let snap = Snapshot::capture(&resolve_all(&Layers::default()), 4);
        assert_eq!(snap.keys.len(), crate::policy::registry::REGISTRY.len());
        assert!(snap.keys.iter().all(|k| k.captured_from == Layer::Default && k.admin_version == 0));
        assert_eq!(snap.claim_batch_size(), 10);
        assert!(!snap.claim_descending());
        assert_eq!(snap.max_retries(), 3);
        assert!(snap.block_prompt().contains(BLOCK_TEXT_PLACEHOLDER));
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains("\"captured_from\":\"default\""), "{json}");
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snap);
    }

    #[test]
    fn missing_or_invalid_keys_fall_back_to_the_registry_default() {
        let mut snap = Snapshot::capture(&resolve_all(&Layers::default()), 0);
        snap.keys.retain(|k| k.key != keys::CLAIM_BATCH_SIZE);
        assert_eq!(snap.claim_batch_size(), 10);
        for k in &mut snap.keys {
            if k.key == keys::MAX_RETRIES {
                k.value = serde_json::json!("many");
            }
        }
        assert_eq!(snap.max_retries(), 3);
    }

    #[test]
    fn prompts_render_every_placeholder() {
        assert_eq!(render_block_prompt("A {{block_text}} B {{block_text}}", "x"), "A x B x");
    }
}
