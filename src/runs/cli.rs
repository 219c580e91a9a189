//! `runtime-policy run create` and `runtime-policy worker`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::input::{parse_lease, NewBlocks, WorkerName};
use super::server::{self, Creator};
use super::worker::{self, ClientOptions, WorkerConfig};
use crate::error::AppError;
use crate::policy::store::PolicyStore;

#[derive(Subcommand, Debug)]
pub enum RunCommand {
    /// Create a run, from a text file with one block per paragraph (--blocks; blocks are
    /// separated by blank lines; `-` reads stdin), or from documents (--file, repeated; txt, md,
    /// csv, html, pdf, docx) admitted by the effective upload.max_files_per_batch and
    /// upload.allowed_extensions. The policy is snapshotted in the same transaction.
    Create {
        #[arg(long, value_name = "FILE", conflicts_with = "file", required_unless_present = "file")]
        blocks: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        file: Vec<PathBuf>,
    },
}

/// What a new run is made from.
pub enum RunSource {
    Blocks(NewBlocks),
    Files(Vec<super::upload::UploadedFile>),
}

/// Reads what `run create` was given before the database is opened, so bad input writes
/// nothing.
pub fn read_source(blocks: Option<PathBuf>, files: Vec<PathBuf>) -> Result<RunSource, AppError> {
    if let Some(path) = blocks {
        return read_blocks(&path).map(RunSource::Blocks);
    }
    let mut out = Vec::new();
    for path in files {
        let meta = std::fs::metadata(&path)
            .map_err(|e| AppError::invalid("--file", format!("cannot read {}: {e}", path.display())))?;
        if meta.len() > super::upload::MAX_FILE_BYTES as u64 {
            return Err(AppError::TooLarge(format!(
                "--file: {} holds {} bytes; at most {} bytes per file",
                path.display(),
                meta.len(),
                super::upload::MAX_FILE_BYTES
            )));
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| AppError::invalid("--file", format!("cannot read {}: {e}", path.display())))?;
        let raw = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = super::upload::clean_name("--file", &raw)?;
        out.push(super::upload::UploadedFile { name, bytes });
    }
    super::upload::check_sizes(&out)?;
    Ok(RunSource::Files(out))
}

/// Run the reference worker on one run until every block is done or failed. It renders the
/// run's snapshot block prompt with each block's text and stores that as the result; it calls
/// no model.
///
/// The worker token is read from the file named by --token-file, or else from the environment
/// variable RUNTIME_POLICY_TOKEN; never from the command line, where every user of the machine
/// could read it.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The run to work on.
    #[arg(long, value_name = "ID")]
    pub run: i64,
    /// A file holding the worker token (`runtime-policy token create NAME`); surrounding
    /// whitespace is ignored. Without it, RUNTIME_POLICY_TOKEN is read.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Refused: a token on the command line shows in every process listing.
    #[arg(long, hide = true, value_name = "T")]
    pub token: Option<String>,
    /// The server's address: http:// or https://, with an optional path prefix.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    pub server: String,
    /// A PEM file of CA certificates to trust besides the system's (a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The name claims are made under (default: worker-<process id>).
    #[arg(long)]
    pub name: Option<String>,
    /// How long each claim holds its blocks before another worker may take them (1-3600).
    #[arg(long)]
    pub lease_seconds: Option<i64>,
    /// Seconds to wait for a connection to open (1-300).
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub connect_timeout: u64,
    /// Seconds to wait for the next bytes of an answer (1-3600).
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub read_timeout: u64,
    /// How many times a request is sent again after a connection error or a 502, 503 or 504
    /// answer (0-100); waits double from about 250 ms, with jitter, up to 10 s. Never after a
    /// 4xx answer.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Make the built-in provider answer as one that does not apply prompt caching, to see the
    /// caching_ignored warning on the run page (the run is not failed by it).
    #[arg(long)]
    pub provider_ignores_caching: bool,
}

/// The worker token: from the file when one is named, else from RUNTIME_POLICY_TOKEN.
fn worker_token(args: &WorkerArgs) -> Result<String, AppError> {
    if args.token.is_some() {
        return Err(AppError::invalid(
            "--token",
            "is not taken: a token on the command line is visible to every user of the machine; \
             put it in a file named by --token-file, or in RUNTIME_POLICY_TOKEN",
        ));
    }
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| AppError::invalid("--token-file", format!("cannot read {}: {e}", path.display())))?,
        None => match std::env::var("RUNTIME_POLICY_TOKEN") {
            Ok(t) => t,
            Err(std::env::VarError::NotPresent) => {
                return Err(AppError::invalid(
                    "token",
                    "missing: name a file holding the worker token with --token-file, or set RUNTIME_POLICY_TOKEN",
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(AppError::invalid("RUNTIME_POLICY_TOKEN", "is not valid UTF-8"))
            }
        },
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        let whence = args.token_file.as_ref().map_or("RUNTIME_POLICY_TOKEN".to_string(), |p| p.display().to_string());
        return Err(AppError::invalid("token", format!("{whence} is empty")));
    }
    Ok(token)
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

pub async fn run(source: RunSource, store: &PolicyStore) -> Result<String, AppError> {
    let created = match source {
        RunSource::Blocks(blocks) => server::create_run(store, &Creator::cli(), &blocks).await?,
        RunSource::Files(files) => server::create_run_from_upload(store, &Creator::cli(), files).await?,
    };
    Ok(format!(
        "created run {} with {} blocks at policy revision {} (snapshot sha256 {})\n",
        created.id, created.block_count, created.policy_revision, created.snapshot_sha256
    ))
}

pub async fn worker(args: WorkerArgs) -> Result<String, AppError> {
    if args.run <= 0 {
        return Err(AppError::invalid("--run", format!("must be a positive run id, got {}", args.run)));
    }
    let in_range = |flag: &str, value: u64, max: u64| {
        if (1..=max).contains(&value) {
            Ok(Duration::from_secs(value))
        } else {
            Err(AppError::invalid(flag, format!("must be 1-{max} seconds, got {value}")))
        }
    };
    let connect_timeout = in_range("--connect-timeout", args.connect_timeout, 300)?;
    let read_timeout = in_range("--read-timeout", args.read_timeout, 3600)?;
    if args.retries > 100 {
        return Err(AppError::invalid("--retries", format!("must be 0-100, got {}", args.retries)));
    }
    let token = worker_token(&args)?;
    let name = args.name.clone().unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let rename = |flag: &str, field: &str| {
        let (flag, field) = (flag.to_string(), format!("{field}: "));
        move |e: AppError| AppError::invalid(&flag, e.to_string().trim_start_matches(&field))
    };
    let name = WorkerName::parse(&name).map_err(rename("--name", "worker"))?;
    parse_lease(args.lease_seconds).map_err(rename("--lease-seconds", "lease_seconds"))?;
    let config = WorkerConfig {
        server: args.server,
        token,
        run_id: args.run,
        name: name.as_str().to_string(),
        lease_seconds: args.lease_seconds,
        idle_wait: Duration::from_millis(500),
        client: ClientOptions {
            connect_timeout,
            read_timeout,
            retries: args.retries,
            ca_cert: args.ca_cert,
            ..ClientOptions::default()
        },
        provider_ignores_caching: args.provider_ignores_caching,
    };
    // The address, the token and the CA file are checked before anything is sent.
    worker::ApiClient::with_options(&config.server, &config.token, config.client.clone())?;
    let report = worker::run(&config).await?;
    Ok(format!(
        "run {}: {} blocks in {} claims and {} provider calls by {} (snapshot sha256 {}){}\n",
        config.run_id,
        report.completed.len(),
        report.batches.len(),
        report.provider_calls,
        config.name,
        report.snapshot_sha256,
        if report.warnings.is_empty() { String::new() } else { format!("; warnings: {}", report.warnings.join(", ")) }
    ))
}
