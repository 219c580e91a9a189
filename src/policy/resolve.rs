//! Resolution: the effective value of every key from its layers, with provenance. Resolution
//! never fails: an invalid value at a layer is skipped with a warning naming the layer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::parse::{check_model_ref, model_choices};
use super::registry::{KeySpec, Kind, Layer, REGISTRY};
use super::value::{canonical_json, truncate, PolicyValue, Provider};

/// A key's admin baseline as stored: `value` is `None` after a reset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminEntry {
    pub value: Option<Json>,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
}

/// The raw inputs of resolution below the run snapshot.
#[derive(Clone, Debug, Default)]
pub struct Layers {
    /// `POLICY__…` variables by key, as raw text.
    pub env: HashMap<String, String>,
    pub admin: HashMap<String, AdminEntry>,
}

/// One layer's value of a key, as the page and the API show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerValue {
    pub layer: Layer,
    /// The value present at this layer (`None`: the layer holds nothing for this key).
    pub value: Option<Json>,
    /// Why the value was skipped, when it was.
    pub error: Option<String>,
}

/// A key's effective value with its provenance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    pub key: String,
    pub value: Json,
    pub source: Layer,
    pub layers: Vec<LayerValue>,
    pub warnings: Vec<String>,
    /// The key's admin version (0 when no superuser ever set it): the expected version of the
    /// next write.
    pub admin_version: i64,
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
}

impl Resolved {
    /// Exactly `effective=<value> (source=<layer>)`, with the whole canonical JSON value.
    pub fn provenance(&self) -> String {
        provenance(&self.value, self.source)
    }

    /// The provenance line for the page: long values cut to 60 characters with `…`.
    pub fn provenance_short(&self) -> String {
        format!("effective={} (source={})", truncate(&canonical_json(&self.value), 60), self.source)
    }

    pub fn layer(&self, layer: Layer) -> Option<&LayerValue> {
        self.layers.iter().find(|l| l.layer == layer)
    }
}

pub fn provenance(value: &Json, source: Layer) -> String {
    format!("effective={} (source={})", canonical_json(value), source)
}

/// The `POLICY__` variables of this process that name no key (they are ignored). Variables
/// whose name is not UTF-8 (anyone's) are skipped, never an error.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("POLICY__") && !REGISTRY.iter().any(|s| s.env_var() == *name))
        .collect()
}

/// Reads the `POLICY__…` variables of the registry's keys through `get`.
pub fn env_layer(get: impl Fn(&str) -> Option<String>) -> HashMap<String, String> {
    REGISTRY.iter().filter_map(|s| get(&s.env_var()).map(|v| (s.key.to_string(), v))).collect()
}

/// Resolves every key, in registry order.
pub fn resolve_all(layers: &Layers) -> Vec<Resolved> {
    let mut out: Vec<Resolved> = Vec::with_capacity(REGISTRY.len());
    let mut providers: Vec<Provider> = Vec::new();
    for spec in REGISTRY {
        let r = resolve_key(spec, layers, &providers);
        if let Some(p) = spec.parse_json(&r.value).ok().and_then(|v| v.as_providers().map(|p| p.to_vec())) {
            providers = p;
        }
        out.push(r);
    }
    out
}

/// One layer's value of a key, parsed with the key's rules (and `check`), lowest layer first.
struct Candidate {
    layer: Layer,
    /// What the layer holds, as shown (raw text for an env value that does not parse).
    shown: Json,
    parsed: Result<PolicyValue, String>,
}

fn candidates(
    spec: &KeySpec,
    layers: &Layers,
    check: impl Fn(PolicyValue) -> Result<PolicyValue, String>,
) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(3);
    let default = spec.default_value();
    out.push(Candidate { layer: Layer::Default, shown: default.to_json(), parsed: check(default) });
    if let Some(raw) = layers.env.get(spec.key) {
        let parsed = spec.parse_text(raw).map_err(|e| e.to_string()).and_then(&check);
        let shown = parsed.as_ref().map(PolicyValue::to_json).unwrap_or_else(|_| Json::String(raw.clone()));
        out.push(Candidate { layer: Layer::Env, shown, parsed });
    }
    if let Some(json) = layers.admin.get(spec.key).and_then(|a| a.value.as_ref()) {
        let parsed = spec.parse_json(json).map_err(|e| e.to_string()).and_then(&check);
        out.push(Candidate { layer: Layer::Admin, shown: json.clone(), parsed });
    }
    out
}

/// The precedence rule, in one place: the highest layer whose value is valid wins.
fn winner(candidates: &[Candidate]) -> Option<(Layer, &PolicyValue)> {
    candidates.iter().rev().find_map(|c| c.parsed.as_ref().ok().map(|v| (c.layer, v)))
}

/// The value the precedence rule picks for `spec` from its own rules alone, before any
/// cross-key rule (the store judges a change of the default model by this).
pub fn pick_by_precedence(spec: &KeySpec, layers: &Layers) -> Option<PolicyValue> {
    let all = candidates(spec, layers, Ok);
    winner(&all).map(|(_, v)| v.clone())
}

fn resolve_key(spec: &KeySpec, layers: &Layers, providers: &[Provider]) -> Resolved {
    let check = |v: PolicyValue| -> Result<PolicyValue, String> {
        if matches!(spec.kind, Kind::ModelRef) {
            check_model_ref(&v, providers).map_err(|e| e.to_string())?;
        }
        Ok(v)
    };
    let all = candidates(spec, layers, check);
    let chosen = winner(&all).map(|(layer, v)| (layer, v.clone()));
    let mut warnings: Vec<String> = all
        .iter()
        .rev()
        .filter_map(|c| c.parsed.as_ref().err().map(|reason| format!("{} value skipped: {reason}", c.layer)))
        .collect();
    let (source, value) = chosen.unwrap_or_else(|| {
        // Even the default fails (a default model outside the effective registry): fall back to
        // the first model that is available, so resolution still yields a usable value.
        let fallback =
            model_choices(providers).into_iter().next().map(PolicyValue::Enum).unwrap_or_else(|| spec.default_value());
        warnings.push(format!("no layer holds a valid value; using {}", fallback.canonical()));
        (Layer::Default, fallback)
    });
    let admin = layers.admin.get(spec.key);
    Resolved {
        key: spec.key.to_string(),
        value: value.to_json(),
        source,
        layers: all
            .into_iter()
            .map(|c| LayerValue { layer: c.layer, value: Some(c.shown), error: c.parsed.err() })
            .collect(),
        warnings,
        admin_version: admin.map(|a| a.version).unwrap_or(0),
        updated_by: admin.map(|a| a.updated_by.clone()),
        updated_at: admin.map(|a| a.updated_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admin(value: Json) -> AdminEntry {
        AdminEntry { value: Some(value), version: 1, updated_by: "a@example.com".into(), updated_at: "t".into() }
    }

    fn find<'a>(all: &'a [Resolved], key: &str) -> &'a Resolved {
        all.iter().find(|r| r.key == key).unwrap()
    }

    #[test]
    fn a_fresh_policy_resolves_every_key_to_its_default() {
        let all = resolve_all(&Layers::default());
        assert_eq!(all.len(), REGISTRY.len());
        for r in &all {
            assert_eq!(r.source, Layer::Default, "{}", r.key);
            assert!(r.warnings.is_empty(), "{}: {:?}", r.key, r.warnings);
            assert_eq!(r.admin_version, 0);
        }
    }

    #[test]
    fn provenance_has_the_exact_format() {
        let all = resolve_all(&Layers::default());
        assert_eq!(find(&all, "models.platform_default_temperature").provenance(), "effective=0.3 (source=default)");
        assert_eq!(find(&all, "worker.prompt_caching.enabled").provenance(), "effective=false (source=default)");
        assert_eq!(find(&all, "worker.prompt_caching.mode").provenance(), "effective=\"auto\" (source=default)");
        assert_eq!(
            find(&all, "upload.allowed_extensions").provenance(),
            "effective=[\"pdf\",\"docx\",\"txt\",\"md\",\"html\",\"csv\"] (source=default)"
        );
        let prompt = find(&all, "worker.default_system_prompt");
        assert!(prompt.provenance().len() > 100, "the API form is whole");
        let short = prompt.provenance_short();
        assert!(short.starts_with("effective=\"You are") && short.ends_with("… (source=default)"), "{short}");
        assert_eq!(provenance(&json!(7), Layer::RunSnapshot), "effective=7 (source=run_snapshot)");
    }

    #[test]
    fn higher_layers_win_and_invalid_layers_are_skipped_with_a_warning() {
        let mut layers = Layers::default();
        layers.env.insert("worker.max_retries".into(), "5".into());
        let all = resolve_all(&layers);
        assert_eq!(find(&all, "worker.max_retries").provenance(), "effective=5 (source=env)");

        layers.admin.insert("worker.max_retries".into(), admin(json!(7)));
        let all = resolve_all(&layers);
        let r = find(&all, "worker.max_retries");
        assert_eq!(r.provenance(), "effective=7 (source=admin)");
        assert_eq!(r.layers.len(), 3);
        assert_eq!(r.admin_version, 1);

        // An admin value a new release no longer allows, and a bad env value.
        layers.admin.insert("worker.max_retries".into(), admin(json!(50)));
        layers.env.insert("worker.max_retries".into(), "lots".into());
        let all = resolve_all(&layers);
        let r = find(&all, "worker.max_retries");
        assert_eq!(r.provenance(), "effective=3 (source=default)");
        assert_eq!(r.warnings.len(), 2);
        assert!(
            r.warnings[0]
                .starts_with("admin value skipped: worker.max_retries must be an integer from 0 to 10, got 50"),
            "{:?}",
            r.warnings
        );
        assert!(r.warnings[1].starts_with("env value skipped:"), "{:?}", r.warnings);
    }

    #[test]
    fn the_default_model_is_checked_against_the_effective_registry() {
        let mut layers = Layers::default();
        layers.admin.insert(
            "models.provider_registry".into(),
            admin(json!([{"id": "openai", "label": "OpenAI", "enabled": true, "models": ["gpt-4.1"]}])),
        );
        let all = resolve_all(&layers);
        let r = find(&all, "models.platform_default_model");
        assert_eq!(r.value, json!("openai/gpt-4.1"));
        assert!(r.warnings.iter().any(|w| w.contains("default value skipped")), "{:?}", r.warnings);

        layers.env.insert("models.platform_default_model".into(), "openai/gpt-4.1".into());
        let all = resolve_all(&layers);
        let r = find(&all, "models.platform_default_model");
        assert_eq!(r.provenance(), "effective=\"openai/gpt-4.1\" (source=env)");
    }

    #[test]
    fn env_layer_reads_the_documented_variable_names() {
        let env = env_layer(|name| (name == "POLICY__WORKER__PROMPT_CACHING__ENABLED").then(|| "true".to_string()));
        assert_eq!(env.get("worker.prompt_caching.enabled").map(String::as_str), Some("true"));
        assert_eq!(env.len(), 1);
    }
}
