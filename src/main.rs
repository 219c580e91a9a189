//! The `runtime-policy` binary: parses the command line, sets up logging and the runtime, and
//! hands each command to its feature's CLI. A failure prints one line and exits with the
//! error's code (2 for bad input, 1 otherwise).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runtime_policy::auth::cli::{ApiTokenCommand, TokenCommand, UserCommand};
use runtime_policy::config::{Config, ConfigArgs};
use runtime_policy::db::Db;
use runtime_policy::error::{AppError, Exit};
use runtime_policy::policy::cli::PolicyCommand;
use runtime_policy::policy::store::PolicyStore;
use runtime_policy::runs::cli::{RunCommand, WorkerArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runtime Policy: change how background workers behave, with validation, audit and provenance.
///
/// Every setting is a flag that also reads its environment variable (the flag wins); `--help`
/// on any command lists them with their defaults. The policy's env layer comes from POLICY__…
/// variables, and RUST_LOG filters the log.
#[derive(Parser)]
#[command(name = "runtime-policy", version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app and the API (the default when no subcommand is given).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Print the OpenAPI 3.1 document of the /api/v1 routes (also served at /api/v1/openapi.json).
    Openapi,
    /// Print the effective configuration (secrets hidden) and the policy's env layer with its
    /// warnings; exits non-zero when something is invalid.
    Config,
    /// Read and change the runtime policy (writes are validated and audited).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Manage the people who sign in to the web app.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the bearer tokens workers use for the API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage webhooks: endpoints told about policy changes, change requests and new runs.
    #[command(subcommand)]
    Webhook(runtime_policy::policy::cli::WebhookCommand),
    /// Manage superusers' personal API tokens for /api/v1/policy.
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// Create runs (each freezes the effective policy as its snapshot).
    #[command(subcommand)]
    Run(RunCommand),
    /// Run the reference worker on one run over the HTTP API.
    Worker(WorkerArgs),
    /// Used by the server: reads uploaded files on stdin and writes their text blocks.
    #[command(hide = true)]
    ExtractText,
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
    match cli.config.log_format.as_deref().ok_or(()) {
        Err(()) | Ok("") | Ok("text") => {
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

    if let Some(Command::ExtractText) = cli.command {
        return runtime_policy::runs::upload::extract_main();
    }
    let args = cli.config.clone();
    let config = Config::from_lookup(|name| args.get(name));
    if let Some(Command::Config) = cli.command {
        return match config {
            Ok(config) => {
                write_out(&config.describe(&args));
                let (report, problems) = runtime_policy::policy::cli::env_layer_report();
                write_out(&report);
                if problems > 0 {
                    eprintln!("runtime-policy: the policy env layer has {problems} problem(s), listed above");
                    Exit::Failure.into()
                } else {
                    Exit::Success.into()
                }
            }
            Err(e) => {
                eprintln!("runtime-policy: {e}");
                e.exit().into()
            }
        };
    }
    let result = config.and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| AppError::Internal(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config))
    });
    match result {
        Ok(out) => {
            write_out(&out);
            Exit::Success.into()
        }
        Err(e) => {
            eprintln!("runtime-policy: {e}");
            e.exit().into()
        }
    }
}

/// Uploaded documents are read in a child process under limits (`runs/upload.rs`).
fn isolate_extraction() -> Result<(), AppError> {
    runtime_policy::runs::upload::isolate_extraction(runtime_policy::runs::upload::Isolation::current_exe()?);
    Ok(())
}

/// Writes to stdout; a closed pipe (`… | head`) is not an error worth a panic.
fn write_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// Runs one command; what it returns is printed to stdout.
async fn run(command: Command, config: Config) -> Result<String, AppError> {
    let open = || Db::open(&config.database_url);
    match command {
        Command::Serve => {
            isolate_extraction()?;
            runtime_policy::web::serve(config.clone()).await.map(|()| String::new())
        }
        Command::Config => Ok(String::new()),
        Command::Openapi => serde_json::to_string_pretty(&runtime_policy::web::openapi_document())
            .map(|t| t + "\n")
            .map_err(|e| AppError::Internal(format!("cannot write the document: {e}"))),
        Command::Migrate => {
            open().await?;
            Ok("migrations applied\n".into())
        }
        Command::Policy(runtime_policy::policy::cli::PolicyCommand::Docs { out }) => {
            runtime_policy::policy::docs::write(&out)
        }
        Command::Policy(cmd) => {
            runtime_policy::policy::cli::run(cmd, &PolicyStore::from_process_env(open().await?)).await
        }
        Command::User(cmd) => runtime_policy::auth::cli::user(cmd, open).await,
        Command::Token(cmd) => runtime_policy::auth::cli::token(cmd, open).await,
        Command::ApiToken(cmd) => runtime_policy::auth::cli::api_token(cmd, open).await,
        Command::Webhook(cmd) => {
            runtime_policy::policy::cli::webhook(cmd, &PolicyStore::from_process_env(open().await?)).await
        }
        Command::Run(RunCommand::Create { blocks, file }) => {
            isolate_extraction()?;
            let source = runtime_policy::runs::cli::read_source(blocks, file)?;
            runtime_policy::runs::cli::run(source, &PolicyStore::from_process_env(open().await?)).await
        }
        Command::Worker(args) => runtime_policy::runs::cli::worker(args).await,
        // Handled before the configuration is read.
        Command::ExtractText => Ok(String::new()),
    }
}
