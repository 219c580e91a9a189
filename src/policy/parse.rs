//! Parsing and validating a key's value: from JSON (database, API, run snapshot) and from
//! text typed by a person (page, CLI) or set in the environment, and the cross-key rule of the
//! default model. Every error names the key, what it allows and what was given.

use serde_json::Value as Json;

use super::registry::{keys, KeySpec, Kind, MAX_MODELS_PER_PROVIDER, MAX_PROVIDERS};
use super::value::{describe_input, format_hundredths, to_hundredths, PolicyValue, Provider, ValidationError};

/// The first control character in any string (or object key) of `v`; line breaks and tabs
/// count only when `text` is false.
fn first_control(v: &Json, text: bool) -> Option<char> {
    let bad = |s: &str| s.chars().find(|c| c.is_control() && !(text && matches!(c, '\n' | '\t')));
    match v {
        Json::String(s) => bad(s),
        Json::Array(items) => items.iter().find_map(|i| first_control(i, text)),
        Json::Object(fields) => fields.iter().find_map(|(k, v)| bad(k).or_else(|| first_control(v, text))),
        _ => None,
    }
}

fn is_extension(s: &str) -> bool {
    (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_provider_id(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_model_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

impl KeySpec {
    /// What the key allows, in words (used in every error about it).
    pub fn allowed(&self) -> String {
        match self.kind {
            Kind::Bool => "must be true or false".into(),
            Kind::Int { min, max } => format!("must be an integer from {min} to {max}"),
            Kind::Decimal { min, max, step } => format!(
                "must be a number from {} to {} in steps of {}",
                format_hundredths(min),
                format_hundredths(max),
                format_hundredths(step)
            ),
            Kind::Enum { options } => format!("must be one of {}", options.join(", ")),
            Kind::Text { min_chars, max_chars, must_contain } => {
                let mut s = format!("must be text of {min_chars} to {max_chars} characters");
                if let Some(p) = must_contain {
                    s.push_str(&format!(" containing {p}"));
                }
                s
            }
            Kind::Extensions { min_items, max_items } => format!(
                "must be a list of {min_items} to {max_items} unique extensions, each 1 to 10 lower-case letters or digits without a dot"
            ),
            Kind::Providers => "must be a list of providers {id, label, enabled, models}, ids matching [a-z0-9-]{1,32} and unique, with at least one enabled provider and at least one model in each enabled provider".into(),
            Kind::ModelRef => "must be provider/model naming a model of an enabled provider in models.provider_registry".into(),
        }
    }

    fn reject(&self, got: &Json) -> ValidationError {
        ValidationError::new(self.key, format!("{}, got {}", self.allowed(), describe_input(got)))
    }

    fn fail(&self, detail: impl std::fmt::Display) -> ValidationError {
        ValidationError::new(self.key, format!("{}: {detail}", self.allowed()))
    }

    /// Parses a JSON value (database, API, run snapshot). The cross-key rule of
    /// [`Kind::ModelRef`] is checked by [`check_model_ref`], which needs the registry.
    pub fn parse_json(&self, v: &Json) -> Result<PolicyValue, ValidationError> {
        self.check_controls(v)?;
        match self.kind {
            Kind::Bool => v.as_bool().map(PolicyValue::Bool).ok_or_else(|| self.reject(v)),
            Kind::Int { min, max } => match v.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(PolicyValue::Int(i)),
                _ => Err(self.reject(v)),
            },
            Kind::Decimal { min, max, step } => {
                let h = v.as_f64().and_then(to_hundredths).ok_or_else(|| self.reject(v))?;
                if !(min..=max).contains(&h) || (h - min) % step != 0 {
                    return Err(self.reject(v));
                }
                Ok(PolicyValue::Hundredths(h))
            }
            Kind::Enum { options } => match v.as_str() {
                Some(s) if options.contains(&s) => Ok(PolicyValue::Enum(s.to_string())),
                _ => Err(self.reject(v)),
            },
            Kind::Text { min_chars, max_chars, must_contain } => {
                let s = v.as_str().ok_or_else(|| self.reject(v))?;
                if s.contains('\0') {
                    return Err(self.fail("got a NUL character"));
                }
                let n = s.chars().count();
                if n < min_chars || n > max_chars {
                    return Err(self.fail(format!("got {n} characters")));
                }
                if let Some(p) = must_contain {
                    if !s.contains(p) {
                        return Err(self.fail(format!("{p} is missing")));
                    }
                }
                Ok(PolicyValue::Text(s.to_string()))
            }
            Kind::Extensions { min_items, max_items } => {
                let arr = v.as_array().ok_or_else(|| self.reject(v))?;
                if arr.len() < min_items || arr.len() > max_items {
                    return Err(self.fail(format!("got {} entries", arr.len())));
                }
                let mut out: Vec<String> = Vec::with_capacity(arr.len());
                for item in arr {
                    let s = item.as_str().ok_or_else(|| self.fail(format!("got {}", describe_input(item))))?;
                    if !is_extension(s) {
                        return Err(self.fail(format!("got {}", describe_input(item))));
                    }
                    if out.iter().any(|e| e == s) {
                        return Err(self.fail(format!("\"{s}\" appears twice")));
                    }
                    out.push(s.to_string());
                }
                Ok(PolicyValue::List(out))
            }
            Kind::Providers => {
                let providers: Vec<Provider> =
                    serde_json::from_value(v.clone()).map_err(|e| self.fail(format!("{e}")))?;
                self.check_providers(&providers)?;
                Ok(PolicyValue::Providers(providers))
            }
            Kind::ModelRef => {
                let s = v.as_str().ok_or_else(|| self.reject(v))?;
                match s.split_once('/') {
                    Some((p, m)) if is_provider_id(p) && is_model_name(m) => Ok(PolicyValue::Enum(s.to_string())),
                    _ => Err(self.reject(v)),
                }
            }
        }
    }

    /// One check for every string of every value: no control characters, except line breaks
    /// and tabs in text keys (a NUL cannot even be stored on PostgreSQL).
    fn check_controls(&self, v: &Json) -> Result<(), ValidationError> {
        let text = matches!(self.kind, Kind::Text { .. });
        match first_control(v, text) {
            Some(c) => Err(ValidationError::new(
                self.key,
                format!(
                    "must not contain control characters{}, got U+{:04X}",
                    if text { " other than line breaks and tabs" } else { "" },
                    c as u32
                ),
            )),
            None => Ok(()),
        }
    }

    fn check_providers(&self, providers: &[Provider]) -> Result<(), ValidationError> {
        if providers.is_empty() || providers.len() > MAX_PROVIDERS {
            return Err(self.fail(format!("got {} providers (1 to {MAX_PROVIDERS} allowed)", providers.len())));
        }
        for (i, p) in providers.iter().enumerate() {
            if !is_provider_id(&p.id) {
                return Err(self.fail(format!("provider id \"{}\" is not [a-z0-9-]{{1,32}}", p.id)));
            }
            if providers[..i].iter().any(|q| q.id == p.id) {
                return Err(self.fail(format!("provider id \"{}\" appears twice", p.id)));
            }
            let label_len = p.label.trim().chars().count();
            if label_len == 0 || p.label.chars().count() > 64 {
                return Err(self.fail(format!("provider \"{}\" needs a label of 1 to 64 characters", p.id)));
            }
            if p.models.len() > MAX_MODELS_PER_PROVIDER {
                return Err(self.fail(format!("provider \"{}\" has more than {MAX_MODELS_PER_PROVIDER} models", p.id)));
            }
            if p.enabled && p.models.is_empty() {
                return Err(self.fail(format!("enabled provider \"{}\" has no models", p.id)));
            }
            for (j, m) in p.models.iter().enumerate() {
                if !is_model_name(m) {
                    return Err(self.fail(format!(
                        "model \"{m}\" of provider \"{}\" must be 1 to 64 letters, digits, '.', '-', '_' or ':'",
                        p.id
                    )));
                }
                if p.models[..j].contains(m) {
                    return Err(self.fail(format!("model \"{m}\" appears twice in provider \"{}\"", p.id)));
                }
            }
        }
        if !providers.iter().any(|p| p.enabled) {
            return Err(self.fail("no provider is enabled"));
        }
        Ok(())
    }

    /// Parses text typed by a person (page, CLI) or set in the environment. Text keys take the
    /// input verbatim; lists accept JSON or comma-separated entries; the rest is read as JSON
    /// scalars with bare words allowed for enums.
    pub fn parse_text(&self, raw: &str) -> Result<PolicyValue, ValidationError> {
        let trimmed = raw.trim();
        match self.kind {
            // A browser posts a textarea's line breaks as CRLF; the value is stored with LF, so
            // re-saving an unchanged prompt is a no-op.
            Kind::Text { .. } => return self.parse_json(&Json::String(raw.replace("\r\n", "\n"))),
            _ if trimmed.is_empty() => return Err(self.reject(&Json::String(String::new()))),
            _ => {}
        }
        let as_json = match self.kind {
            Kind::Bool => match trimmed {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                other => Json::String(other.to_string()),
            },
            Kind::Int { .. } => match trimmed.parse::<i64>() {
                Ok(i) => Json::from(i),
                Err(_) => Json::String(trimmed.to_string()),
            },
            Kind::Decimal { .. } => match trimmed.parse::<f64>() {
                Ok(x) if x.is_finite() => serde_json::Number::from_f64(x)
                    .map(Json::Number)
                    .unwrap_or_else(|| Json::String(trimmed.to_string())),
                _ => Json::String(trimmed.to_string()),
            },
            Kind::Enum { .. } | Kind::ModelRef => match serde_json::from_str::<Json>(trimmed) {
                Ok(Json::String(s)) => Json::String(s),
                _ => Json::String(trimmed.to_string()),
            },
            Kind::Extensions { .. } => {
                if trimmed.starts_with('[') {
                    serde_json::from_str::<Json>(trimmed).map_err(|e| self.fail(format!("not a JSON list: {e}")))?
                } else {
                    Json::Array(
                        trimmed
                            .split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|s| !s.is_empty())
                            .map(|s| Json::String(s.to_string()))
                            .collect(),
                    )
                }
            }
            Kind::Providers => {
                serde_json::from_str::<Json>(trimmed).map_err(|e| self.fail(format!("not valid JSON: {e}")))?
            }
            Kind::Text { .. } => unreachable!("handled above"),
        };
        self.parse_json(&as_json)
    }
}

/// The cross-key rule: `models.platform_default_model` must name a model of an enabled provider.
pub fn model_in_registry(model_ref: &str, providers: &[Provider]) -> bool {
    match model_ref.split_once('/') {
        Some((pid, model)) => providers.iter().any(|p| p.enabled && p.id == pid && p.models.iter().any(|m| m == model)),
        None => false,
    }
}

/// Checks a default-model value against an effective provider registry.
pub fn check_model_ref(value: &PolicyValue, providers: &[Provider]) -> Result<(), ValidationError> {
    let s = value.as_str().unwrap_or_default();
    if model_in_registry(s, providers) {
        Ok(())
    } else {
        Err(ValidationError::new(
            keys::DEFAULT_MODEL,
            format!("\"{s}\" is not a model of an enabled provider in models.provider_registry"),
        ))
    }
}

/// Every model of every enabled provider, as `provider/model` (the default-model dropdown).
pub fn model_choices(providers: &[Provider]) -> Vec<String> {
    providers.iter().filter(|p| p.enabled).flat_map(|p| p.models.iter().map(move |m| format!("{}/{m}", p.id))).collect()
}
