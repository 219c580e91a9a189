use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runtime_policy::config::Config;
use runtime_policy::db::Db;
use runtime_policy::policy::cli::PolicyCommand;
use runtime_policy::policy::server::PolicyStore;

/// Runtime Policy: change how background workers behave, with validation, audit and provenance.
///
/// Configuration comes from the environment: DATABASE_URL (default: the SQLite file
/// data/runtime-policy.db), LEPTOS_SITE_ADDR (default 127.0.0.1:3000) and LEPTOS_SITE_ROOT
/// (default target/site).
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs at info; one-shot commands keep their output to what they print.
    let default_filter = match cli.command {
        None | Some(Command::Serve) => "info,sqlx=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => runtime_policy::server::serve(config).await.map_err(|e| (1, e.to_string())),
            Command::Migrate => {
                Db::open(&config.database_url).await.map_err(|e| (1, e.to_string()))?;
                println!("migrations applied");
                Ok(())
            }
            Command::Policy(cmd) => {
                let db = Db::open(&config.database_url).await.map_err(|e| (1, e.to_string()))?;
                let store = PolicyStore::from_process_env(db);
                match runtime_policy::policy::cli::run(cmd, &store).await {
                    Ok(text) => {
                        print!("{text}");
                        Ok(())
                    }
                    Err(e) => Err((e.code, e.message)),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("runtime-policy: {e}");
            ExitCode::from(code)
        }
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("runtime-policy: {message}");
    ExitCode::FAILURE
}
