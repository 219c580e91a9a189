//! `runtime-policy run create` and `runtime-policy worker`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::input::{parse_lease, NewBlocks, WorkerName};
use super::server::{self, Creator};
use super::worker::{self, WorkerConfig};
use crate::error::AppError;
use crate::policy::store::PolicyStore;

#[derive(Subcommand, Debug)]
pub enum RunCommand {
    /// Create a run from a text file, one block per paragraph (blocks are separated by blank
    /// lines; `-` reads stdin). The policy is snapshotted in the same transaction.
    Create {
        #[arg(long, value_name = "FILE")]
        blocks: PathBuf,
    },
}

/// Run the reference worker on one run until every block is done or failed. It renders the
/// run's snapshot block prompt with each block's text and stores that as the result; it calls
/// no model.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The run to work on.
    #[arg(long, value_name = "ID")]
    pub run: i64,
    /// A worker token (`runtime-policy token create NAME`).
    #[arg(long, value_name = "T", env = "RUNTIME_POLICY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The server's address.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    pub server: String,
    /// The name claims are made under (default: worker-<process id>).
    #[arg(long)]
    pub name: Option<String>,
    /// How long each claim holds its blocks before another worker may take them (1-3600).
    #[arg(long)]
    pub lease_seconds: Option<i64>,
}

/// Reads the blocks file before the database is opened, so bad input writes nothing.
pub fn read_blocks(path: &PathBuf) -> Result<NewBlocks, AppError> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| AppError::invalid("--blocks", format!("cannot read stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| AppError::invalid("--blocks", format!("cannot read {}: {e}", path.display())))?
    };
    NewBlocks::from_paragraphs("--blocks", &text)
}

pub async fn run(blocks: NewBlocks, store: &PolicyStore) -> Result<String, AppError> {
    let created = server::create_run(store, &Creator::cli(), &blocks).await?;
    Ok(format!(
        "created run {} with {} blocks at policy revision {} (snapshot sha256 {})\n",
        created.id, created.block_count, created.policy_revision, created.snapshot_sha256
    ))
}

pub async fn worker(args: WorkerArgs) -> Result<String, AppError> {
    if args.run <= 0 {
        return Err(AppError::invalid("--run", format!("must be a positive run id, got {}", args.run)));
    }
    let name = args.name.unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let rename = |flag: &str, field: &str| {
        let (flag, field) = (flag.to_string(), format!("{field}: "));
        move |e: AppError| AppError::invalid(&flag, e.to_string().trim_start_matches(&field))
    };
    let name = WorkerName::parse(&name).map_err(rename("--name", "worker"))?;
    parse_lease(args.lease_seconds).map_err(rename("--lease-seconds", "lease_seconds"))?;
    let config = WorkerConfig {
        server: args.server,
        token: args.token,
        run_id: args.run,
        name: name.as_str().to_string(),
        lease_seconds: args.lease_seconds,
        idle_wait: Duration::from_millis(500),
    };
    // The address and token are checked before anything is sent.
    worker::ApiClient::new(&config.server, &config.token)?;
    let report = worker::run(&config).await?;
    Ok(format!(
        "run {}: {} blocks in {} batches by {} (snapshot sha256 {})\n",
        config.run_id,
        report.completed.len(),
        report.batches.len(),
        config.name,
        report.snapshot_sha256
    ))
}
