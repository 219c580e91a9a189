//! The key reference, `docs/policy-keys.md`, written from the registry by
//! `runtime-policy policy docs`; a test fails when the committed file differs from what the
//! registry gives, so the document cannot drift from the code.

use super::registry::{keys_in, Category, Control, KeySpec, Layer};
use super::value::canonical_json;
use crate::error::AppError;

/// Where `policy docs` writes, relative to the working directory.
pub const DEFAULT_PATH: &str = "docs/policy-keys.md";

fn control_name(c: Control) -> &'static str {
    match c {
        Control::Toggle => "toggle",
        Control::Slider => "slider with an exact input",
        Control::Dropdown => "dropdown",
        Control::Numeric => "numeric input",
        Control::Textarea => "textarea",
        Control::TagList => "tag list",
        Control::TableEditor => "table editor",
    }
}

/// Markdown table cells may not hold a `|` or a line break.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn default_text(s: &KeySpec) -> String {
    let json = canonical_json(&s.default_value().to_json());
    if json.chars().count() > 80 {
        let cut: String = json.chars().take(77).collect();
        format!("`{cut}…` (shortened)")
    } else {
        format!("`{json}`")
    }
}

/// The whole document.
pub fn key_reference() -> String {
    let layers: Vec<&str> =
        [Layer::Default, Layer::Env, Layer::Admin, Layer::RunSnapshot].iter().map(|l| l.as_str()).collect();
    let mut out = String::new();
    out.push_str("# Policy keys\n\n");
    out.push_str("<!-- Written by `runtime-policy policy docs` from src/policy/registry.rs; edit the registry, not this file. -->\n\n");
    out.push_str(&format!(
        "Each key resolves through the layers {} (lowest first): the highest layer holding a valid \
         value wins, and an invalid value at a layer is skipped with a warning. Every change is \
         audited. The env variable sets the `env` layer.\n",
        layers.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(" < ")
    ));
    for category in Category::ALL {
        out.push_str(&format!("\n## {}\n\n{}\n\n", category.label(), category.summary()));
        out.push_str("| key | control | allowed values | default | env variable |\n|---|---|---|---|---|\n");
        for s in keys_in(category) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | `{}` |\n",
                s.key,
                control_name(s.control),
                cell(s.allowed().trim_start_matches("must be ")),
                cell(&default_text(s)),
                s.env_var()
            ));
        }
        for s in keys_in(category) {
            out.push_str(&format!("\n### `{}`: {}\n\n", s.key, s.label));
            out.push_str(&format!("- Scope: {}\n", s.scope));
            out.push_str(&format!("- Not in scope: {}\n", s.non_scope));
            out.push_str(&format!("- Snapshot: {}\n", s.snapshot));
            if s.needs_review() {
                out.push_str(
                    "- Review: a change needs a second superuser; it opens a change request that another \
                     superuser approves or rejects.\n",
                );
            }
            if let Some(d) = s.depends_on {
                out.push_str(&format!("- Depends on `{}`: {}\n", d.key, d.note));
            }
        }
    }
    out
}

/// Writes the document to `path` (its folder created when missing).
pub fn write(path: &str) -> Result<String, AppError> {
    let file = std::path::Path::new(path);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::invalid("out", format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(file, key_reference()).map_err(|e| AppError::invalid("out", format!("cannot write {path}: {e}")))?;
    Ok(format!("wrote {path}\n"))
}
