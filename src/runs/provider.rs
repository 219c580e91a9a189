//! The reference worker's built-in model provider. It calls no model: it renders the request a
//! provider would get under the run's snapshot (model, temperature, max tokens, the system
//! prompt, one user prompt per block) and answers each block with its rendered user prompt.
//!
//! When the snapshot enables `worker.prompt_caching.enabled`, the system prompt (the part every
//! request shares) is marked cacheable (`cache_control: {"type": "ephemeral"}`). A provider
//! reports whether it applied caching; this one can be told to ignore it, so the worker's
//! `caching_ignored` warning can be seen end to end.

use serde::Serialize;
use serde_json::Value;

use super::snapshot::{render_block_prompt, Snapshot};

/// The part of a request every call shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemPart {
    pub text: String,
    /// `{"type": "ephemeral"}` when the snapshot asks for prompt caching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

/// A model call as the built-in provider receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRequest {
    pub model: String,
    pub temperature: Value,
    pub max_tokens: i64,
    pub system: SystemPart,
    /// One user prompt per block, in the batch's order.
    pub messages: Vec<String>,
}

impl ModelRequest {
    /// The request for these blocks' texts under `snapshot`.
    pub fn render(snapshot: &Snapshot, texts: &[&str]) -> ModelRequest {
        let template = snapshot.block_prompt();
        ModelRequest {
            model: snapshot.model(),
            temperature: serde_json::from_str(&snapshot.temperature_text()).unwrap_or(Value::Null),
            max_tokens: snapshot.max_tokens(),
            system: SystemPart {
                text: snapshot.system_prompt(),
                cache_control: snapshot.prompt_caching().then(|| serde_json::json!({ "type": "ephemeral" })),
            },
            messages: texts.iter().map(|t| render_block_prompt(&template, t)).collect(),
        }
    }

    pub fn asks_for_caching(&self) -> bool {
        self.system.cache_control.is_some()
    }
}

/// A provider's answer: one output per message, and whether caching was applied (None when the
/// request asked for none).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReply {
    pub outputs: Vec<String>,
    pub cache_applied: Option<bool>,
}

/// The built-in provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuiltinProvider {
    /// Answer as a provider that does not support caching would.
    pub ignores_caching: bool,
}

impl BuiltinProvider {
    pub fn call(&self, request: &ModelRequest) -> ModelReply {
        ModelReply {
            outputs: request.messages.clone(),
            cache_applied: request.asks_for_caching().then_some(!self.ignores_caching),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::registry::{keys, Layer};
    use crate::policy::resolve::{resolve_all, Layers};
    use crate::runs::snapshot::Snapshot;

    fn snapshot(caching: bool) -> Snapshot {
        let mut snap = Snapshot::capture(&resolve_all(&Layers::default()), 1);
        for k in &mut snap.keys {
            if k.key == keys::PROMPT_CACHING {
                k.value = serde_json::json!(caching);
                k.captured_from = Layer::Admin;
            }
        }
        snap
    }

    #[test]
    fn the_system_prompt_is_marked_cacheable_only_when_the_snapshot_says_so() {
        let on = ModelRequest::render(&snapshot(true), &["a", "b"]);
        assert_eq!(on.system.cache_control, Some(serde_json::json!({ "type": "ephemeral" })));
        assert_eq!(on.messages.len(), 2);
        assert!(on.messages[0].contains('a'));
        let json = serde_json::to_value(&on).unwrap();
        assert_eq!(json["system"]["cache_control"]["type"], "ephemeral");
        let off = ModelRequest::render(&snapshot(false), &["a"]);
        assert_eq!(off.system.cache_control, None);
        assert!(serde_json::to_value(&off).unwrap()["system"].get("cache_control").is_none());
    }

    #[test]
    fn the_provider_reports_whether_it_applied_caching() {
        let req = ModelRequest::render(&snapshot(true), &["x"]);
        assert_eq!(BuiltinProvider::default().call(&req).cache_applied, Some(true));
        assert_eq!(BuiltinProvider { ignores_caching: true }.call(&req).cache_applied, Some(false));
        let plain = ModelRequest::render(&snapshot(false), &["x"]);
        assert_eq!(BuiltinProvider { ignores_caching: true }.call(&plain).cache_applied, None);
        assert_eq!(BuiltinProvider::default().call(&req).outputs, req.messages);
    }
}
