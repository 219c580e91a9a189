//! Per-key validation tests (min, max, just outside both, wrong type) and property tests.

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::registry::{spec, Kind, REGISTRY};
use super::value::{PolicyValue, Provider};

fn providers(n: usize) -> Json {
    Json::Array(
        (0..n)
            .map(|i| json!({"id": format!("p{i}"), "label": format!("P{i}"), "enabled": true, "models": ["m"]}))
            .collect(),
    )
}

fn exts(n: usize) -> Json {
    Json::Array((0..n).map(|i| Json::String(format!("e{i}"))).collect())
}

/// (key, min, max, just below min, just above max, wrong type)
type BoundsCase = (&'static str, Json, Json, Option<Json>, Option<Json>, Json);

fn cases() -> Vec<BoundsCase> {
    vec![
        (
            "models.provider_registry",
            providers(1),
            providers(32),
            Some(providers(0)),
            Some(providers(33)),
            json!("anthropic"),
        ),
        (
            "models.platform_default_model",
            json!("a/b"),
            json!("anthropic/claude-sonnet-4-5"),
            Some(json!("anthropic")),
            Some(json!("/m")),
            json!(12),
        ),
        (
            "models.platform_default_temperature",
            json!(0.0),
            json!(2.0),
            Some(json!(-0.05)),
            Some(json!(2.05)),
            json!("warm"),
        ),
        (
            "models.platform_default_max_tokens",
            json!(256),
            json!(128000),
            Some(json!(255)),
            Some(json!(128001)),
            json!(1024.5),
        ),
        ("worker.claim_batch_size", json!(1), json!(100), Some(json!(0)), Some(json!(101)), json!("ten")),
        (
            "worker.claim_ordering",
            json!("block_index_asc"),
            json!("block_index_desc"),
            Some(json!("")),
            Some(json!("block_index_text")),
            json!(1),
        ),
        (
            "worker.default_system_prompt",
            json!("x"),
            json!("x".repeat(20000)),
            Some(json!("")),
            Some(json!("x".repeat(20001))),
            json!(["x"]),
        ),
        (
            "worker.default_block_prompt",
            json!("{{block_text}}"),
            json!(format!("{}{{{{block_text}}}}", "x".repeat(20000 - 14))),
            Some(json!("")),
            Some(json!(format!("{}{{{{block_text}}}}", "x".repeat(20001 - 14)))),
            json!(true),
        ),
        ("worker.max_retries", json!(0), json!(10), Some(json!(-1)), Some(json!(11)), json!("3")),
        ("worker.prompt_caching.enabled", json!(false), json!(true), None, None, json!("yes")),
        (
            "worker.prompt_caching.mode",
            json!("auto"),
            json!("auto"),
            Some(json!("")),
            Some(json!("manual")),
            json!(false),
        ),
        ("worker.batching.enabled", json!(false), json!(true), None, None, json!(1)),
        ("worker.batching.safety_margin", json!(0.05), json!(0.5), Some(json!(0.04)), Some(json!(0.51)), json!("0.2x")),
        ("upload.max_files_per_batch", json!(1), json!(500), Some(json!(0)), Some(json!(501)), json!(null)),
        ("upload.allowed_extensions", exts(1), exts(50), Some(exts(0)), Some(exts(51)), json!("pdf")),
    ]
}

#[test]
fn every_key_has_a_validation_case_and_a_valid_default() {
    let cases = cases();
    for s in REGISTRY {
        assert!(cases.iter().any(|c| c.0 == s.key), "no validation case for {}", s.key);
        let d = s.default_value();
        assert_eq!(s.parse_json(&d.to_json()).as_ref(), Ok(&d), "default of {} is invalid", s.key);
    }
    assert_eq!(REGISTRY.len(), 15);
}

#[test]
fn each_key_accepts_its_bounds_and_rejects_just_outside_them_and_the_wrong_type() {
    for (key, min, max, below, above, wrong) in cases() {
        let s = spec(key).unwrap();
        assert!(s.parse_json(&min).is_ok(), "{key} rejects its minimum {min}: {:?}", s.parse_json(&min));
        assert!(s.parse_json(&max).is_ok(), "{key} rejects its maximum: {:?}", s.parse_json(&max).err());
        for bad in [below, above, Some(wrong)].into_iter().flatten() {
            let err = s.parse_json(&bad).expect_err(&format!("{key} accepted {bad}"));
            assert_eq!(err.key, key);
            assert!(err.to_string().starts_with(&format!("{key} must be")), "{err}");
        }
    }
}

#[test]
fn errors_name_the_key_what_is_allowed_and_what_was_given() {
    let e = spec("worker.claim_batch_size").unwrap().parse_text("0").unwrap_err();
    assert_eq!(e.to_string(), "worker.claim_batch_size must be an integer from 1 to 100, got 0");
    let e = spec("models.platform_default_temperature").unwrap().parse_text("0.33").unwrap_err();
    assert_eq!(
        e.to_string(),
        "models.platform_default_temperature must be a number from 0.00 to 2.00 in steps of 0.05, got 0.33"
    );
}

#[test]
fn rejects_nan_infinity_empty_and_off_step_input() {
    let t = spec("models.platform_default_temperature").unwrap();
    for raw in ["NaN", "nan", "inf", "-inf", "infinity", "", "   ", "0.31", "1e400"] {
        assert!(t.parse_text(raw).is_err(), "accepted {raw:?}");
    }
    assert_eq!(t.parse_text(" 0.35 ").unwrap(), PolicyValue::Hundredths(35));
    let n = spec("worker.claim_batch_size").unwrap();
    for raw in ["", "NaN", "5.5", "1e3", "ten"] {
        assert!(n.parse_text(raw).is_err(), "accepted {raw:?}");
    }
    let e = n.parse_text("").unwrap_err();
    assert!(e.to_string().ends_with("got an empty value"), "{e}");
}

#[test]
fn block_prompt_needs_its_placeholder() {
    let e = spec("worker.default_block_prompt").unwrap().parse_text("Summarise this.").unwrap_err();
    assert!(e.to_string().contains("{{block_text}} is missing"), "{e}");
}

#[test]
fn extensions_reject_dots_capitals_and_duplicates() {
    let s = spec("upload.allowed_extensions").unwrap();
    assert_eq!(s.parse_text("pdf, txt").unwrap(), PolicyValue::List(vec!["pdf".into(), "txt".into()]));
    assert!(s.parse_text(".pdf").unwrap_err().to_string().contains("\".pdf\""));
    assert!(s.parse_text("PDF").is_err());
    assert!(s.parse_text("pdf,pdf").unwrap_err().to_string().contains("appears twice"));
    assert!(s.parse_text("abcdefghijk").is_err(), "11 characters");
}

#[test]
fn provider_registry_rejects_duplicates_bad_ids_and_empty_enabled_providers() {
    let s = spec("models.provider_registry").unwrap();
    let dup = json!([
        {"id": "a", "label": "A", "enabled": true, "models": ["m"]},
        {"id": "a", "label": "A2", "enabled": true, "models": ["n"]}
    ]);
    assert!(s.parse_json(&dup).unwrap_err().to_string().contains("appears twice"));
    let bad_id = json!([{"id": "Open AI", "label": "A", "enabled": true, "models": ["m"]}]);
    assert!(s.parse_json(&bad_id).is_err());
    let empty = json!([{"id": "a", "label": "A", "enabled": true, "models": []}]);
    assert!(s.parse_json(&empty).unwrap_err().to_string().contains("has no models"));
    let none_enabled = json!([{"id": "a", "label": "A", "enabled": false, "models": ["m"]}]);
    assert!(s.parse_json(&none_enabled).unwrap_err().to_string().contains("no provider is enabled"));
    let dup_model = json!([{"id": "a", "label": "A", "enabled": true, "models": ["m", "m"]}]);
    assert!(s.parse_json(&dup_model).is_err());
    let extra_field = json!([{"id": "a", "label": "A", "enabled": true, "models": ["m"], "key": "secret"}]);
    assert!(s.parse_json(&extra_field).is_err());
}

#[test]
fn env_variable_names_follow_the_documented_rule() {
    assert_eq!(spec("worker.max_retries").unwrap().env_var(), "POLICY__WORKER__MAX_RETRIES");
    assert_eq!(spec("worker.prompt_caching.enabled").unwrap().env_var(), "POLICY__WORKER__PROMPT_CACHING__ENABLED");
}

#[test]
fn dependent_keys_point_at_boolean_keys() {
    for s in REGISTRY {
        if let Some(dep) = s.depends_on {
            let parent = spec(dep.key).expect("dependency exists");
            assert_eq!(parent.kind, Kind::Bool, "{} depends on a non-boolean key", s.key);
        }
    }
}

/// Any JSON-ish input for any key.
fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        (-1000i64..100_000).prop_map(Json::from),
        (0i64..=300).prop_map(|h| json!(h as f64 / 100.0)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)),
        "[a-z0-9./{}_-]{0,24}".prop_map(Json::String),
        ".{0,40}".prop_map(Json::String),
        Just(json!("{{block_text}}")),
    ];
    leaf.prop_recursive(2, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec("[a-z0-9]{1,11}", 0..6)
                .prop_map(|v| Json::Array(v.into_iter().map(Json::String).collect())),
        ]
    })
}

fn any_providers() -> impl Strategy<Value = Json> {
    prop::collection::vec(
        ("[a-z0-9-]{1,8}", ".{0,10}", any::<bool>(), prop::collection::vec("[a-z0-9.-]{1,8}", 0..4)),
        0..4,
    )
    .prop_map(|ps| {
        serde_json::to_value(
            ps.into_iter()
                .map(|(id, label, enabled, models)| Provider { id, label, enabled, models })
                .collect::<Vec<_>>(),
        )
        .unwrap()
    })
}

proptest! {
    /// What the validator accepts survives the trip through storage (canonical JSON text and
    /// back) unchanged, and parses to the same canonical form again.
    #[test]
    fn accepted_values_round_trip_through_storage(idx in 0..REGISTRY.len(), input in any_json()) {
        let s = &REGISTRY[idx];
        if let Ok(v) = s.parse_json(&input) {
            let stored = v.canonical();
            let back: Json = serde_json::from_str(&stored).unwrap();
            let again = s.parse_json(&back).expect("stored value parses");
            prop_assert_eq!(&again, &v);
            prop_assert_eq!(again.canonical(), stored);
        }
    }

    #[test]
    fn accepted_provider_registries_round_trip(input in any_providers()) {
        let s = spec("models.provider_registry").unwrap();
        if let Ok(v) = s.parse_json(&input) {
            let back: Json = serde_json::from_str(&v.canonical()).unwrap();
            prop_assert_eq!(s.parse_json(&back).unwrap(), v);
        }
    }

    /// Text from the page or the CLI never panics the parser, and an accepted value round-trips.
    #[test]
    fn typed_text_never_panics(idx in 0..REGISTRY.len(), raw in ".{0,40}") {
        let s = &REGISTRY[idx];
        if let Ok(v) = s.parse_text(&raw) {
            let back: Json = serde_json::from_str(&v.canonical()).unwrap();
            prop_assert_eq!(s.parse_json(&back).unwrap(), v);
        }
    }
}

#[test]
fn text_keys_store_line_breaks_as_lf_and_refuse_nul() {
    let s = spec("worker.default_block_prompt").unwrap();
    let posted = "Extract.\r\n\r\n{{block_text}}";
    assert_eq!(s.parse_text(posted).unwrap(), PolicyValue::Text("Extract.\n\n{{block_text}}".into()));
    assert!(s.parse_text("a\0{{block_text}}").is_err());
}

#[test]
fn control_characters_are_refused_in_every_string_of_every_value() {
    let cases = [
        ("models.provider_registry", json!([{"id": "a", "label": "A\u{0}", "enabled": true, "models": ["m"]}])),
        ("models.platform_default_model", json!("anthropic/claude\u{7}")),
        ("worker.claim_ordering", json!("block_index_asc\u{0}")),
        ("worker.default_system_prompt", json!("line\u{0}")),
        ("worker.default_system_prompt", json!("bell\u{7}")),
        ("worker.default_block_prompt", json!("{{block_text}}\r")),
        ("upload.allowed_extensions", json!(["pdf", "t\u{1b}xt"])),
    ];
    for (key, v) in cases {
        let e = spec(key).unwrap().parse_json(&v).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{key} must not contain control characters")), "{key}: {e}");
    }
    // Line breaks and tabs stay allowed in text.
    assert!(spec("worker.default_system_prompt").unwrap().parse_json(&json!("a\n\tb")).is_ok());
}

#[test]
fn a_value_with_a_control_character_is_skipped_at_any_layer() {
    use super::resolve::{resolve_all, Layers};
    let mut layers = Layers::default();
    layers.env.insert(
        "models.provider_registry".into(),
        r#"[{"id": "a", "label": "A\u0000", "enabled": true, "models": ["m"]}]"#.into(),
    );
    let all = resolve_all(&layers);
    let r = all.iter().find(|r| r.key == "models.provider_registry").unwrap();
    assert_eq!(r.source, super::registry::Layer::Default);
    assert!(
        r.warnings.iter().any(|w| w.starts_with("env value skipped") && w.contains("control characters")),
        "{:?}",
        r.warnings
    );
}
