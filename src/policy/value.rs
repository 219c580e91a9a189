//! Typed policy values and their parsing. A value is parsed once, at the edge (page, CLI, env,
//! database), into a [`PolicyValue`] that cannot hold anything its key does not allow.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One model provider in `models.provider_registry`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub id: String,
    pub label: String,
    pub enabled: bool,
    pub models: Vec<String>,
}

/// A validated value. Decimals are kept as an exact count of hundredths, so steps and bounds
/// compare without floating-point error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyValue {
    Bool(bool),
    Int(i64),
    Hundredths(i64),
    Enum(String),
    Text(String),
    List(Vec<String>),
    Providers(Vec<Provider>),
}

impl PolicyValue {
    pub fn to_json(&self) -> Json {
        match self {
            PolicyValue::Bool(b) => Json::Bool(*b),
            PolicyValue::Int(i) => Json::from(*i),
            PolicyValue::Hundredths(h) => {
                serde_json::Number::from_f64(*h as f64 / 100.0).map(Json::Number).unwrap_or(Json::Null)
            }
            PolicyValue::Enum(s) | PolicyValue::Text(s) => Json::String(s.clone()),
            PolicyValue::List(items) => Json::Array(items.iter().cloned().map(Json::String).collect()),
            PolicyValue::Providers(p) => serde_json::to_value(p).unwrap_or(Json::Null),
        }
    }

    /// Canonical JSON: compact, fields in declaration order (`0.3`, `true`, `"auto"`, `["pdf","txt"]`).
    pub fn canonical(&self) -> String {
        canonical_json(&self.to_json())
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PolicyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            PolicyValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PolicyValue::Enum(s) | PolicyValue::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_providers(&self) -> Option<&[Provider]> {
        match self {
            PolicyValue::Providers(p) => Some(p),
            _ => None,
        }
    }
}

/// Compact JSON text of a value, as stored and as shown in provenance lines.
pub fn canonical_json(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// A value that a key does not allow. `Display` gives the whole sentence, starting with the key:
/// `worker.claim_batch_size must be an integer from 1 to 100, got 0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    pub key: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        ValidationError { key: key.to_string(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.message)
    }
}

impl std::error::Error for ValidationError {}

impl From<ValidationError> for crate::error::AppError {
    fn from(e: ValidationError) -> Self {
        crate::error::AppError::field(&e.key, e.to_string())
    }
}

/// How an offending input is quoted in an error: its JSON, cut to 60 characters.
pub fn describe_input(v: &Json) -> String {
    match v {
        Json::String(s) if s.trim().is_empty() => "an empty value".to_string(),
        Json::Null => "nothing (null)".to_string(),
        other => truncate(&canonical_json(other), 60),
    }
}

/// `s` with every control character written as an escape (`\n`, `\u{1b}`), so stored text
/// printed on a terminal stays one line and cannot move the cursor.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Formats hundredths with two decimals: 30 → "0.30".
pub fn format_hundredths(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    let a = h.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Reads a finite number as an exact count of hundredths; `None` when it has more than two
/// decimals or is not finite.
pub fn to_hundredths(x: f64) -> Option<i64> {
    if !x.is_finite() || x.abs() > 1e12 {
        return None;
    }
    let scaled = x * 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return None;
    }
    Some(rounded as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundredths_print_as_short_json_numbers() {
        assert_eq!(PolicyValue::Hundredths(30).canonical(), "0.3");
        assert_eq!(PolicyValue::Hundredths(5).canonical(), "0.05");
        assert_eq!(PolicyValue::Hundredths(200).canonical(), "2.0");
        assert_eq!(format_hundredths(5), "0.05");
        assert_eq!(format_hundredths(200), "2.00");
    }

    #[test]
    fn to_hundredths_rejects_extra_decimals_and_non_finite() {
        assert_eq!(to_hundredths(0.35), Some(35));
        assert_eq!(to_hundredths(1.1), Some(110));
        assert_eq!(to_hundredths(0.333), None);
        assert_eq!(to_hundredths(f64::NAN), None);
        assert_eq!(to_hundredths(f64::INFINITY), None);
    }

    #[test]
    fn control_characters_print_as_escapes() {
        assert_eq!(escape_controls("a\nb\u{1b}[2Jc\t"), "a\\nb\\u{1b}[2Jc\\t");
        assert_eq!(escape_controls("plain é"), "plain é");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
