//! The `runtime-policy` binary: parses the command line, sets up logging and the runtime, and
//! hands each command to its feature's CLI. A failure prints one line and exits with the
//! error's code (2 for bad input, 1 otherwise).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runtime_policy::auth::cli::{TokenCommand, UserCommand};
use runtime_policy::config::Config;
use runtime_policy::db::Db;
use runtime_policy::error::{AppError, Exit};
use runtime_policy::policy::cli::PolicyCommand;
use runtime_policy::policy::store::PolicyStore;
use runtime_policy::runs::cli::{RunCommand, WorkerArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runtime Policy: change how background workers behave, with validation, audit and provenance.
///
/// Configuration comes from the environment: DATABASE_URL (default: the SQLite file
/// data/runtime-policy.db), LEPTOS_SITE_ADDR (default 127.0.0.1:3000), LEPTOS_SITE_ROOT
/// (default target/site) and COOKIE_SECURE (true behind TLS).
#[derive(Parser)]
#[command(name = "runtime-policy", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app and the API (the default when no subcommand is given).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Read and change the runtime policy (writes are validated and audited).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Manage the people who sign in to the web app.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the bearer tokens workers use for the API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create runs (each freezes the effective policy as its snapshot).
    #[command(subcommand)]
    Run(RunCommand),
    /// Run the reference worker on one run over the HTTP API.
    Worker(WorkerArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return Exit::Success.into();
        }
        Err(e) => {
            // clap's own message spans several lines; keep the part that names the argument.
            let text = e.to_string();
            let message = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .collect::<Vec<_>>()
                .join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("runtime-policy: {message} (see --help)");
            return Exit::Usage.into();
        }
    };
    // The server logs at info; one-shot commands keep their output to what they print.
    let default_filter = match cli.command {
        None | Some(Command::Serve) => "info,sqlx=warn",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // LOG_FORMAT=json: one JSON object per line, with the request span's fields (its id).
    match std::env::var("LOG_FORMAT").as_deref() {
        Err(_) | Ok("") | Ok("text") => {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
        }
        Ok("json") => {
            tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
        }
        Ok(other) => {
            eprintln!("runtime-policy: LOG_FORMAT: expected text or json, got {other:?}");
            return Exit::Failure.into();
        }
    }

    let result = Config::from_env().and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| AppError::Internal(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config))
    });
    match result {
        Ok(out) => {
            print!("{out}");
            Exit::Success.into()
        }
        Err(e) => {
            eprintln!("runtime-policy: {e}");
            e.exit().into()
        }
    }
}

/// Runs one command; what it returns is printed to stdout.
async fn run(command: Command, config: Config) -> Result<String, AppError> {
    let open = || Db::open(&config.database_url);
    match command {
        Command::Serve => runtime_policy::web::serve(config.clone()).await.map(|()| String::new()),
        Command::Migrate => {
            open().await?;
            Ok("migrations applied\n".into())
        }
        Command::Policy(runtime_policy::policy::cli::PolicyCommand::Docs { out }) => runtime_policy::policy::docs::write(&out),
        Command::Policy(cmd) => runtime_policy::policy::cli::run(cmd, &PolicyStore::from_process_env(open().await?)).await,
        Command::User(cmd) => runtime_policy::auth::cli::user(cmd, open).await,
        Command::Token(cmd) => runtime_policy::auth::cli::token(cmd, open).await,
        Command::Run(RunCommand::Create { blocks }) => {
            let blocks = runtime_policy::runs::cli::read_blocks(&blocks)?;
            runtime_policy::runs::cli::run(blocks, &PolicyStore::from_process_env(open().await?)).await
        }
        Command::Worker(args) => runtime_policy::runs::cli::worker(args).await,
    }
}
