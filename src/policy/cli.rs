//! `runtime-policy policy …`: the same validation and audited store as the page, from a shell.

use clap::Subcommand;

use super::audit::{AuditFilter, AuditRow};
use super::registry::{spec, unknown_key, Layer};
use super::resolve::Resolved;
use super::store::{Actor, PolicyStore, WriteOutcome};
use super::value::{canonical_json, escape_controls, truncate};
use crate::error::AppError;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Every key with its effective value and provenance.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One key: its effective value and the value at every layer.
    Get {
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a key's admin value (audited as cli:<os user>).
    Set {
        key: String,
        value: String,
        #[arg(long)]
        reason: Option<String>,
        /// Refuse the change unless the key is still at this version (default: the current one).
        #[arg(long)]
        expect_version: Option<i64>,
    },
    /// Remove a key's admin value, so it falls back to env or default (audited).
    Unset {
        key: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        expect_version: Option<i64>,
    },
    /// Write the key reference (Markdown) from the registry; needs no database.
    Docs {
        /// Where to write it.
        #[arg(long, default_value = super::docs::DEFAULT_PATH)]
        out: String,
    },
    /// The audit log, newest first, for one key or all.
    History {
        key: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

fn json_out<T: serde::Serialize>(v: &T) -> Result<String, AppError> {
    serde_json::to_string_pretty(v).map_err(|e| AppError::Internal(format!("cannot write JSON: {e}")))
}

fn known(key: &str) -> Result<(), AppError> {
    spec(key).map(|_| ()).ok_or_else(|| unknown_key(key).into())
}

pub async fn run(cmd: PolicyCommand, store: &PolicyStore) -> Result<String, AppError> {
    match cmd {
        PolicyCommand::Docs { out } => super::docs::write(&out),
        PolicyCommand::List { json } => {
            let all = store.resolve().await?;
            if json {
                return json_out(&all);
            }
            let width = all.iter().map(|r| r.key.len()).max().unwrap_or(0);
            let mut out = String::new();
            for r in &all {
                out.push_str(&format!("{:width$}  {}\n", r.key, r.provenance_short()));
                for w in &r.warnings {
                    out.push_str(&format!("{:width$}  warning: {w}\n", ""));
                }
            }
            Ok(out)
        }
        PolicyCommand::Get { key, json } => {
            known(&key)?;
            let r = store.resolve_key(&key).await?;
            if json {
                return json_out(&r);
            }
            Ok(describe(&r))
        }
        PolicyCommand::Set { key, value, reason, expect_version } => {
            known(&key)?;
            let version = match expect_version {
                Some(v) => v,
                None => store.resolve_key(&key).await?.admin_version,
            };
            let out = store.update_text(&Actor::cli(), &key, &value, version, reason.as_deref()).await?;
            outcome(store, &key, out).await
        }
        PolicyCommand::Unset { key, reason, expect_version } => {
            known(&key)?;
            let version = match expect_version {
                Some(v) => v,
                None => store.resolve_key(&key).await?.admin_version,
            };
            let out = store.reset(&Actor::cli(), &key, version, reason.as_deref()).await?;
            outcome(store, &key, out).await
        }
        PolicyCommand::History { key, json, limit } => {
            if let Some(k) = &key {
                known(k)?;
            }
            let rows = store.history(&AuditFilter { key, limit: Some(limit), ..Default::default() }).await?;
            if json {
                return json_out(&rows);
            }
            Ok(rows.iter().map(history_line).collect())
        }
    }
}

async fn outcome(store: &PolicyStore, key: &str, out: WriteOutcome) -> Result<String, AppError> {
    let r = store.resolve_key(key).await?;
    match out {
        WriteOutcome::Unchanged => Ok(format!("{key}: unchanged, {}\n", r.provenance_short())),
        WriteOutcome::Changed { version, revision, .. } => {
            Ok(format!("{key}: {} (version {version}, policy revision {revision})\n", r.provenance_short()))
        }
        WriteOutcome::Conflict(c) => Err(AppError::Conflict(c.to_string())),
    }
}

fn describe(r: &Resolved) -> String {
    let mut out = format!("{}\n  {}\n", r.key, r.provenance());
    let env_var = spec(&r.key).map(|s| s.env_var()).unwrap_or_default();
    for l in &r.layers {
        let value = l.value.as_ref().map(|v| truncate(&canonical_json(v), 120)).unwrap_or_else(|| "-".into());
        let name = match l.layer {
            Layer::Env => format!("env ({env_var})"),
            other => other.to_string(),
        };
        out.push_str(&format!("  {name}: {value}"));
        if l.layer == Layer::Admin {
            out.push_str(&format!(
                " (version {}, by {} at {})",
                r.admin_version,
                escape_controls(r.updated_by.as_deref().unwrap_or("-")),
                r.updated_at.as_deref().unwrap_or("-")
            ));
        }
        if let Some(e) = &l.error {
            out.push_str(&format!("  [skipped: {e}]"));
        }
        out.push('\n');
    }
    if !r.layers.iter().any(|l| l.layer == Layer::Env) {
        out.push_str(&format!("  env ({env_var}): -\n"));
    }
    for w in &r.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

fn history_line(row: &AuditRow) -> String {
    let show = |v: &Option<serde_json::Value>| {
        v.as_ref().map(|v| truncate(&canonical_json(v), 60)).unwrap_or_else(|| "(inherited)".into())
    };
    let mut line = format!(
        "#{} {} {} {} {}: {} -> {} (revision {})",
        row.id,
        row.at,
        escape_controls(&row.actor_email),
        row.action,
        row.key,
        show(&row.from_value),
        show(&row.to_value),
        row.policy_revision
    );
    if let Some(r) = &row.reason {
        line.push_str(&format!(" reason: {}", escape_controls(r)));
    }
    line.push('\n');
    line
}

/// The policy's env layer as this process sees it (no database: default < env only): each
/// `POLICY__` variable that names a key, with the value it gives and any warning, and the
/// variables that name no key. The second value counts the problems.
pub fn env_layer_report() -> (String, usize) {
    use super::registry::REGISTRY;
    use super::resolve::{env_layer, resolve_all, Layers};
    let env = env_layer(|k| std::env::var(k).ok());
    let resolved = resolve_all(&Layers { env: env.clone(), admin: Default::default() });
    let mut out = String::from("policy env layer:\n");
    let mut problems = 0;
    for r in &resolved {
        if let Some(raw) = env.get(&r.key) {
            let spec = REGISTRY.iter().find(|s| s.key == r.key);
            let var = spec.map(|s| s.env_var()).unwrap_or_default();
            out.push_str(&format!("  {var}={}  -> {}\n", escape_controls(&truncate(raw, 60)), r.provenance_short()));
        }
        for w in &r.warnings {
            problems += 1;
            out.push_str(&format!("  warning: {}: {}\n", r.key, escape_controls(w)));
        }
    }
    for name in super::resolve::unknown_env_vars() {
        problems += 1;
        out.push_str(&format!("  warning: {name} names no policy key; it is ignored\n"));
    }
    if env.is_empty() && problems == 0 {
        out.push_str("  (no POLICY__ variables set)\n");
    }
    (out, problems)
}
