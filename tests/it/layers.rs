//! The shape of `src/`: every module sits in a layer, and no module imports one from a higher
//! layer; no two top-level modules import each other. The table below is the layer order of
//! ARCHITECTURE.md; a new file fails this test until it has a row.
//!
//! A module's imports are the `crate::…`, `super::…` and (in a `mod.rs`) `self::…` paths in its
//! text before its `#[cfg(test)]` block, comments left out. A path names the longest module
//! of the table it starts with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYER_NAMES: [&str; 8] = [
    "foundation (paths, error, context, config, db)",
    "the policy model",
    "feature internals",
    "the app state",
    "server functions and HTTP handlers",
    "components",
    "the app",
    "the composition root",
];

/// Every module of `src/` and its layer (an index into [`LAYER_NAMES`]).
const LAYERS: &[(&str, usize)] = &[
    ("paths", 0),
    ("api_doc", 0),
    ("error", 0),
    ("context", 0),
    ("config", 0),
    ("request_id", 0),
    ("metrics", 0),
    ("db", 0),
    ("policy", 1),
    ("policy::audit", 1),
    ("policy::change_set", 1),
    ("policy::cache", 1),
    ("policy::cli", 1),
    ("policy::docs", 1),
    ("policy::instances", 1),
    ("policy::parse", 1),
    ("policy::registry", 1),
    ("policy::resolve", 1),
    ("policy::review", 1),
    ("policy::webhooks", 1),
    ("policy::store", 1),
    ("policy::tests", 1),
    ("policy::value", 1),
    ("auth::cli", 2),
    ("auth::guard", 2),
    ("auth::password", 2),
    ("auth::session", 2),
    ("auth::setup", 2),
    ("auth::signin", 2),
    ("auth::api_token", 2),
    ("auth::token", 2),
    ("auth::types", 2),
    ("auth::users", 2),
    ("runs::claims", 2),
    ("runs::cli", 2),
    ("runs::input", 2),
    ("runs::server", 2),
    ("runs::batching", 2),
    ("runs::events", 2),
    ("runs::provider", 2),
    ("runs::fleet", 2),
    ("runs::snapshot", 2),
    ("runs::upload", 2),
    ("runs::types", 2),
    ("runs::worker", 2),
    ("settings::types", 2),
    ("state", 3),
    ("auth::api", 4),
    ("runs::api", 4),
    ("runs::http", 4),
    ("settings::api", 4),
    ("settings::export", 4),
    ("settings::rest", 4),
    ("ui", 5),
    ("auth", 5),
    ("runs", 5),
    ("runs::fleet_view", 5),
    ("settings", 5),
    ("settings::audit_log", 5),
    ("settings::controls", 5),
    ("settings::editor", 5),
    ("settings::history", 5),
    ("settings::integrations", 5),
    ("settings::provider_table", 5),
    ("settings::requests", 5),
    ("settings::revisions", 5),
    ("settings::staging", 5),
    ("settings::store", 5),
    ("app", 6),
    ("web", 7),
    ("web::headers", 7),
    ("web::limits", 7),
    ("web::middleware", 7),
    ("web::page_cache", 7),
    ("web::request_log", 7),
    ("web::serve", 7),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, as (module path, file).
fn modules(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let join = |n: &str| if prefix.is_empty() { n.to_string() } else { format!("{prefix}::{n}") };
        if path.is_dir() {
            modules(&path, &join(&name), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match name.as_str() {
                "mod" => prefix.to_string(),
                "lib" | "main" if prefix.is_empty() => continue,
                _ => join(&name),
            };
            out.push((module, path));
        }
    }
}

/// The text that counts: before the unit tests, without comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The module paths after each `start::` in `text` (one level of `{a, b::c}` groups read).
fn paths_after(text: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{start}::");
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let mut segments = Vec::new();
        let mut s = rest;
        loop {
            if let Some(group) = s.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let mut p = segments.clone();
                    p.extend(item.trim().split("::").map(|x| ident_at(x.trim()).to_string()).filter(|x| !x.is_empty()));
                    out.push(p);
                }
                segments.clear();
                break;
            }
            let id = ident_at(s);
            if id.is_empty() {
                break;
            }
            segments.push(id.to_string());
            s = &s[id.len()..];
            match s.strip_prefix("::") {
                Some(next) => s = next,
                None => break,
            }
        }
        if !segments.is_empty() {
            out.push(segments);
        }
    }
    out
}

/// The module a path names: the longest of `known` it starts with.
fn resolve(path: &[String], known: &BTreeSet<String>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains(m))
}

/// Every module each module imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    modules(&src_dir(), "", &mut files);
    let known: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut out = BTreeMap::new();
    for (module, file) in &files {
        let text = code(&std::fs::read_to_string(file).unwrap());
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let parent = if is_mod_rs {
            module.rsplit_once("::").map(|(p, _)| p).unwrap_or("")
        } else {
            module.rsplit_once("::").map(|(p, _)| p).unwrap_or("")
        };
        let own = if is_mod_rs { module.as_str() } else { parent };
        let mut targets = BTreeSet::new();
        let mut add = |base: &str, path: Vec<String>| {
            let mut full: Vec<String> = base.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
            full.extend(path);
            if let Some(t) = resolve(&full, &known) {
                if &t != module {
                    targets.insert(t);
                }
            }
        };
        for p in paths_after(&text, "crate") {
            add("", p);
        }
        for p in paths_after(&text, "super") {
            add(if is_mod_rs { parent } else { own }, p);
        }
        if is_mod_rs {
            for p in paths_after(&text, "self") {
                add(module, p);
            }
        }
        out.insert(module.clone(), targets);
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Everything wrong with `imports`: modules without a layer, imports up the layers, and pairs
/// of top-level modules that import each other.
fn violations(imports: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut tops: BTreeSet<(String, String)> = BTreeSet::new();
    for (module, targets) in imports {
        let Some(from) = layer_of(module) else {
            out.push(format!("{module} has no layer: give it a row in tests/it/layers.rs and ARCHITECTURE.md"));
            continue;
        };
        for t in targets {
            match layer_of(t) {
                Some(to) if to > from => out.push(format!(
                    "{module} ({}) imports {t} ({}), a higher layer",
                    LAYER_NAMES[from], LAYER_NAMES[to]
                )),
                _ => {}
            }
            if top(module) != top(t) {
                tops.insert((top(module).to_string(), top(t).to_string()));
            }
        }
    }
    for (a, b) in &tops {
        if a < b && tops.contains(&(b.clone(), a.clone())) {
            out.push(format!("{a} and {b} import each other"));
        }
    }
    out
}

#[test]
fn no_module_imports_a_higher_layer_and_no_two_folders_import_each_other() {
    let imports = imports();
    assert!(imports.len() >= LAYERS.len(), "{:?}", imports.keys());
    for (m, _) in LAYERS {
        assert!(imports.contains_key(*m), "{m} is in the layer table but not in src/");
    }
    let v = violations(&imports);
    assert!(v.is_empty(), "the layering is broken:\n{}", v.join("\n"));
}

#[test]
fn the_check_catches_an_import_up_the_layers_and_a_cycle() {
    let mut imports = imports();
    // The model reaching up into the page it is shown on.
    imports.get_mut("policy::registry").unwrap().insert("settings".to_string());
    let v = violations(&imports);
    assert!(
        v.iter().any(|e| e.starts_with("policy::registry (the policy model) imports settings (components)")),
        "{v:?}"
    );
    assert!(v.iter().any(|e| e == "policy and settings import each other"), "{v:?}");

    // The same, read from source text the way the real files are read.
    let text =
        code("use crate::settings::types::Section;\nfn f() { super::registry::spec(\"k\"); }\n// crate::web::serve\n");
    let paths = paths_after(&text, "crate");
    assert_eq!(paths, vec![vec!["settings".to_string(), "types".into(), "Section".into()]]);
    let known: BTreeSet<String> = LAYERS.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(resolve(&paths[0], &known).as_deref(), Some("settings::types"));
    let grouped = paths_after("use crate::{paths::RUNS, web};", "crate");
    assert_eq!(grouped, vec![vec!["paths".to_string(), "RUNS".into()], vec!["web".to_string()]]);
}
