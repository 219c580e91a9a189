//! `runtime-policy policy …`: the same validation and audited store as the page, from a shell.

use clap::Subcommand;

use super::audit::{AuditFilter, AuditRow};
use super::change_set::{AdminExport, ChangeRequest, ChangeSet, ChangeSetKind, KeyChange, Target};
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
    /// Pin a key at the admin layer to the value in force now, even when it is inherited, so a
    /// later env change cannot move it (audited).
    Pin {
        key: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        expect_version: Option<i64>,
    },
    /// Apply a change set from a JSON file (`-`: stdin) in one transaction, at one policy
    /// revision (a change request instead when a key needs review): {"reason": "…", "changes": [{"key": K, "value": V, "expected_version": N},
    /// {"key": K, "reset": true}, {"key": K, "pin": true}]}. Any failure writes nothing and names
    /// every key that failed.
    Apply {
        #[arg(value_name = "FILE")]
        file: String,
        /// Print the diff (key: from (layer) → to (layer)) and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Open a change request from a change-set file (as for apply), even when no key needs
    /// review; another superuser approves or rejects it.
    Request {
        #[arg(value_name = "FILE")]
        file: String,
        /// Replace the changes of your own open request ID instead (after it went stale, say).
        #[arg(long, value_name = "ID")]
        edit: Option<i64>,
    },
    /// The change requests: open ones first, then the latest decided.
    Requests {
        #[arg(long)]
        json: bool,
    },
    /// Approve change request ID and apply it as one change set (never by its author; refused
    /// as stale when a key changed since it was requested).
    Approve {
        id: i64,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject change request ID, saying why (never by its author).
    Reject {
        id: i64,
        #[arg(long)]
        comment: String,
    },
    /// Withdraw your own change request ID.
    Withdraw {
        id: i64,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Print the admin layer as a JSON document (config as code).
    Export,
    /// Make the admin layer exactly a document from `policy export` (keys not in it are reset),
    /// as one change set (a change request when a reviewed key changes).
    Import {
        #[arg(value_name = "FILE")]
        file: String,
        #[arg(long)]
        reason: Option<String>,
        /// Print the diff and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The policy revisions, newest first: who, when, why, which keys.
    Revisions {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// The whole policy as it stood at a revision (its admin layer then, under today's env
    /// layer and defaults).
    Revision {
        revision: i64,
        #[arg(long)]
        json: bool,
    },
    /// Restore the admin layer of a revision as one new change set (keys with no admin value
    /// then are reset); --dry-run prints the diff and writes nothing.
    Restore {
        revision: i64,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        dry_run: bool,
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

/// `runtime-policy webhook …`: endpoints told about changes, and their delivery log.
#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Register an endpoint. Its secret (16 characters or more) is read from a file, never from
    /// the command line; deliveries are signed with it (see the README).
    Add {
        url: String,
        #[arg(long, value_name = "FILE")]
        secret_file: std::path::PathBuf,
        /// policy.changed, change_request.opened, change_request.decided, run.created; repeat
        /// for several. Without any, all of them.
        #[arg(long = "event", value_name = "EVENT")]
        events: Vec<String>,
    },
    /// The endpoints (never their secrets).
    List,
    /// Stop sending to an endpoint.
    Disable { id: i64 },
    /// Queue a test delivery to an endpoint.
    Test { id: i64 },
    /// The newest deliveries: status, attempts, last answer or error.
    Deliveries {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send a delivery again.
    Redeliver { delivery: i64 },
}

pub async fn webhook(cmd: WebhookCommand, store: &PolicyStore) -> Result<String, AppError> {
    use super::webhooks::{add_webhook, deliveries, disable_webhook, list_webhooks, redeliver, send_test};
    let db = &store.db;
    match cmd {
        WebhookCommand::Add { url, secret_file, events } => {
            let secret = std::fs::read_to_string(&secret_file).map_err(|e| {
                AppError::invalid("--secret-file", format!("cannot read {}: {e}", secret_file.display()))
            })?;
            let id = add_webhook(db, &url, secret.trim(), &events, &Actor::cli().email).await?;
            Ok(format!("webhook {id} registered for {url}\n"))
        }
        WebhookCommand::List => Ok(list_webhooks(db)
            .await?
            .iter()
            .map(|w| {
                let state =
                    w.disabled_at.as_ref().map(|at| format!("disabled {at}")).unwrap_or_else(|| "active".into());
                format!("{}\t{}\t{}\t{}\t{state}\n", w.id, w.url, w.events, w.created_at)
            })
            .collect()),
        WebhookCommand::Disable { id } => disable_webhook(db, id).await.map(|()| format!("webhook {id} disabled\n")),
        WebhookCommand::Test { id } => {
            send_test(db, id).await.map(|()| format!("test delivery queued for webhook {id}\n"))
        }
        WebhookCommand::Deliveries { limit } => Ok(deliveries(db, limit)
            .await?
            .iter()
            .map(|d| {
                format!(
                    "{}\twebhook {}\t{}\t{}\tattempts {}\t{}\t{}\n",
                    d.id,
                    d.webhook_id,
                    d.event,
                    d.status,
                    d.attempts,
                    d.last_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    d.last_error.as_deref().map(escape_controls).unwrap_or_default()
                )
            })
            .collect()),
        WebhookCommand::Redeliver { delivery } => {
            redeliver(db, delivery).await.map(|()| format!("delivery {delivery} queued again\n"))
        }
    }
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
            if let Some(text) = reviewed(store, &key, Target::Text(value.clone()), version, &reason).await? {
                return Ok(text);
            }
            let out = store.update_text(&Actor::cli(), &key, &value, version, reason.as_deref()).await?;
            outcome(store, &key, out).await
        }
        PolicyCommand::Unset { key, reason, expect_version } => {
            known(&key)?;
            let version = match expect_version {
                Some(v) => v,
                None => store.resolve_key(&key).await?.admin_version,
            };
            if let Some(text) = reviewed(store, &key, Target::Reset, version, &reason).await? {
                return Ok(text);
            }
            let out = store.reset(&Actor::cli(), &key, version, reason.as_deref()).await?;
            outcome(store, &key, out).await
        }
        PolicyCommand::Pin { key, reason, expect_version } => {
            known(&key)?;
            let version = match expect_version {
                Some(v) => v,
                None => store.resolve_key(&key).await?.admin_version,
            };
            if let Some(text) = reviewed(store, &key, Target::Pin, version, &reason).await? {
                return Ok(text);
            }
            let out = store.pin(&Actor::cli(), &key, version, reason.as_deref()).await?;
            outcome(store, &key, out).await
        }
        PolicyCommand::Apply { file, dry_run } => {
            let set = read_change_set(&file)?;
            if dry_run {
                return Ok(store.apply_change_set(&Actor::cli(), &set, ChangeSetKind::Apply, true).await?.text());
            }
            Ok(store.propose(&Actor::cli(), &set, ChangeSetKind::Apply).await?.text())
        }
        PolicyCommand::Request { file, edit } => {
            let set = read_change_set(&file)?;
            if let Some(id) = edit {
                store.edit_request(&Actor::cli(), id, &set).await?;
                return Ok(format!("edited change request {id}; it waits for another superuser's approval\n"));
            }
            Ok(store.propose_with(&Actor::cli(), &set, ChangeSetKind::Apply, true).await?.text())
        }
        PolicyCommand::Requests { json } => {
            let list = store.requests(20).await?;
            if json {
                return json_out(&list);
            }
            if list.is_empty() {
                return Ok("no change requests\n".into());
            }
            Ok(list.iter().map(request_text).collect())
        }
        PolicyCommand::Approve { id, comment } => {
            let out = store.approve(&Actor::cli(), id, comment.as_deref()).await?;
            Ok(format!("approved change request {id}; {}", out.text()))
        }
        PolicyCommand::Reject { id, comment } => {
            store.reject(&Actor::cli(), id, Some(&comment)).await?;
            Ok(format!("rejected change request {id}\n"))
        }
        PolicyCommand::Withdraw { id, comment } => {
            store.withdraw(&Actor::cli(), id, comment.as_deref()).await?;
            Ok(format!("withdrew change request {id}\n"))
        }
        PolicyCommand::Export => json_out(&store.export_admin().await?).map(|t| t + "\n"),
        PolicyCommand::Import { file, reason, dry_run } => {
            let doc = read_json(&file)?;
            let export = AdminExport::from_json(&doc).map_err(|(field, why)| AppError::invalid(&field, why))?;
            Ok(store.import_admin(&Actor::cli(), &export, reason.as_deref(), dry_run).await?.text())
        }
        PolicyCommand::Revisions { limit, json } => {
            let list = store.revisions(None, limit).await?;
            if json {
                return json_out(&list);
            }
            if list.is_empty() {
                return Ok("no revisions yet: the policy has never been changed\n".into());
            }
            Ok(list
                .iter()
                .map(|r| {
                    format!(
                        "revision {} {} {} ({}): {}{}\n",
                        r.revision,
                        r.at,
                        escape_controls(&r.actor_email),
                        r.what(),
                        r.keys.join(", "),
                        r.reason.as_deref().map(|x| format!(" reason: {}", escape_controls(x))).unwrap_or_default()
                    )
                })
                .collect())
        }
        PolicyCommand::Revision { revision, json } => {
            let all = store.resolve_at(revision).await?;
            if json {
                return json_out(&all);
            }
            let width = all.iter().map(|r| r.key.len()).max().unwrap_or(0);
            let mut out = format!("policy at revision {revision}:\n");
            for r in &all {
                out.push_str(&format!("{:width$}  {}\n", r.key, r.provenance_short()));
            }
            Ok(out)
        }
        PolicyCommand::Restore { revision, reason, dry_run } => {
            Ok(store.restore_revision(&Actor::cli(), revision, reason.as_deref(), None, dry_run).await?.text())
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

/// A change set from a JSON file, or stdin for `-`.
fn read_change_set(file: &str) -> Result<ChangeSet, AppError> {
    let doc = read_json(file)?;
    ChangeSet::from_json(&doc).map_err(|(field, why)| AppError::invalid(&field, why))
}

/// A JSON document from a file, or stdin for `-`.
fn read_json(file: &str) -> Result<serde_json::Value, AppError> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| AppError::invalid("FILE", format!("cannot read stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| AppError::invalid("FILE", format!("cannot read {file}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| AppError::invalid("FILE", format!("{file} is not JSON: {e}")))
}

/// A change of a key that needs review, from `set`/`unset`/`pin`: a change request of one key
/// (the text to print), or `None` when the key needs no review.
async fn reviewed(
    store: &PolicyStore,
    key: &str,
    target: Target,
    version: i64,
    reason: &Option<String>,
) -> Result<Option<String>, AppError> {
    if !spec(key).is_some_and(|s| s.needs_review()) {
        return Ok(None);
    }
    let set = ChangeSet {
        reason: reason.clone(),
        changes: vec![KeyChange { key: key.to_string(), target, expected_version: Some(version) }],
        expected_revision: None,
    };
    Ok(Some(store.propose(&Actor::cli(), &set, ChangeSetKind::Apply).await?.text()))
}

fn request_text(r: &ChangeRequest) -> String {
    let mut out = format!(
        "request {} [{}] by {} at {}{}\n",
        r.id,
        r.status.as_str(),
        escape_controls(&r.author_email),
        r.created_at,
        r.reason.as_deref().map(|x| format!(" reason: {}", escape_controls(x))).unwrap_or_default()
    );
    match &r.preview {
        Some(Ok(lines)) if lines.is_empty() => out.push_str("  would change nothing now\n"),
        Some(Ok(lines)) => {
            for l in lines {
                out.push_str(&format!("  {}\n", truncate(&l.text(), 200)));
            }
        }
        Some(Err(why)) => out.push_str(&format!("  cannot be approved as it stands: {why}\n")),
        None => {
            for c in &r.changes {
                out.push_str(&format!("  {}\n", c.key));
            }
        }
    }
    if let (Some(by), Some(at)) = (&r.decided_by, &r.decided_at) {
        out.push_str(&format!(
            "  {} by {} at {at}{}\n",
            r.status.as_str(),
            escape_controls(by),
            r.decision_comment.as_deref().map(|c| format!(": {}", escape_controls(c))).unwrap_or_default()
        ));
    }
    out
}

fn history_line(row: &AuditRow) -> String {
    let mut line = format!(
        "#{} {} {} {} {}: {} -> {} (revision {})",
        row.id,
        row.at,
        escape_controls(&row.actor_email),
        row.action_label(),
        row.key,
        truncate(&row.before_text(), 80),
        truncate(&row.after_text(), 80),
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
