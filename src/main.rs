use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use runtime_policy::auth::server::{self as auth, AuthError, Email, Hasher, NewPassword, TokenName};
use runtime_policy::auth::Role;
use runtime_policy::config::Config;
use runtime_policy::db::Db;
use runtime_policy::policy::cli::PolicyCommand;
use runtime_policy::policy::server::PolicyStore;
use runtime_policy::runs::cli::{RunCommand, WorkerArgs};

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

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password (at least 12 characters) is read from stdin, or prompted
    /// for without echo on a terminal.
    Create {
        email: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Disable a user; their sessions stop working at their next request.
    Disable { email: String },
    /// List the users.
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a worker token and print it; it is stored only as a hash and never shown again.
    Create { name: String },
    /// Revoke a worker token at once.
    Revoke { name: String },
    /// List the worker tokens (names and dates, never the tokens).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Superuser,
    Member,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Superuser => Role::Superuser,
            RoleArg::Member => Role::Member,
        }
    }
}

/// How a command failed: bad input (exit 2, nothing written) or anything else (exit 1).
enum Failure {
    Input(String),
    Other(String),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Failure {
        match e {
            AuthError::Invalid { .. } => Failure::Input(e.to_string()),
            other => Failure::Other(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
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
            return ExitCode::from(2);
        }
    };
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
            Command::Serve => runtime_policy::server::serve(config).await.map_err(|e| Failure::Other(e.to_string())),
            Command::Migrate => {
                open(&config).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Policy(cmd) => {
                let store = PolicyStore::from_process_env(open(&config).await?);
                match runtime_policy::policy::cli::run(cmd, &store).await {
                    Ok(text) => {
                        print!("{text}");
                        Ok(())
                    }
                    Err(e) if e.code == 2 => Err(Failure::Input(e.message)),
                    Err(e) => Err(Failure::Other(e.message)),
                }
            }
            Command::User(cmd) => user_command(&config, cmd).await,
            Command::Token(cmd) => token_command(&config, cmd).await,
            Command::Run(RunCommand::Create { blocks }) => {
                let blocks = runtime_policy::runs::cli::read_blocks(&blocks).map_err(cli_failure)?;
                let store = PolicyStore::from_process_env(open(&config).await?);
                print!("{}", runtime_policy::runs::cli::run(blocks, &store).await.map_err(cli_failure)?);
                Ok(())
            }
            Command::Worker(args) => {
                print!("{}", runtime_policy::runs::cli::worker(args).await.map_err(cli_failure)?);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(m)) => {
            eprintln!("runtime-policy: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Other(m)) => fail(m),
    }
}

fn cli_failure(e: runtime_policy::policy::cli::CliError) -> Failure {
    if e.code == 2 {
        Failure::Input(e.message)
    } else {
        Failure::Other(e.message)
    }
}

async fn open(config: &Config) -> Result<Db, Failure> {
    Db::open(&config.database_url).await.map_err(|e| Failure::Other(e.to_string()))
}

async fn user_command(config: &Config, cmd: UserCommand) -> Result<(), Failure> {
    match cmd {
        UserCommand::Create { email, role } => {
            // Everything is checked before the database is touched.
            let email = Email::parse(&email)?;
            let password = NewPassword::parse(&read_password()?)?;
            let db = open(config).await?;
            let hasher = Hasher::new(1, 0);
            let hash = hasher.hash(password).await?;
            let user = auth::create_user(&db, &email, role.into(), &hash).await?;
            println!("created {} ({})", user.email, user.role.as_str());
        }
        UserCommand::Disable { email } => {
            let email = Email::parse(&email)?;
            let db = open(config).await?;
            auth::disable_user(&db, &email).await?;
            println!("disabled {}", email.as_str());
        }
        UserCommand::List => {
            let db = open(config).await?;
            for u in auth::list_users(&db).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.user.email,
                    u.user.role.as_str(),
                    if u.disabled { "disabled" } else { "active" },
                    u.created_at
                );
            }
        }
    }
    Ok(())
}

async fn token_command(config: &Config, cmd: TokenCommand) -> Result<(), Failure> {
    match cmd {
        TokenCommand::Create { name } => {
            let name = TokenName::parse(&name)?;
            let db = open(config).await?;
            let token = auth::create_token(&db, &name).await?;
            eprintln!("token {} created; it is shown only this once:", name.as_str());
            println!("{token}");
        }
        TokenCommand::Revoke { name } => {
            let name = TokenName::parse(&name)?;
            let db = open(config).await?;
            auth::revoke_token(&db, &name).await?;
            println!("revoked {}", name.as_str());
        }
        TokenCommand::List => {
            let db = open(config).await?;
            for t in auth::list_tokens(&db).await? {
                let state = match &t.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_string(),
                };
                println!("{}\t{}\t{}", t.name, t.created_at, state);
            }
        }
    }
    Ok(())
}

/// One line from stdin. On a terminal it prompts and turns echo off with `stty` while typing.
fn read_password() -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let echo_off = tty && set_echo(false);
    if tty {
        eprint!("Password (at least 12 characters): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        set_echo(true);
        eprintln!();
    }
    match read {
        Ok(0) => Err(Failure::Input("password: expected one line on stdin, got nothing".into())),
        Ok(_) => Ok(line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_string()),
        Err(_) => Err(Failure::Input("password: stdin is not valid UTF-8 text".into())),
    }
}

fn set_echo(on: bool) -> bool {
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("runtime-policy: {message}");
    ExitCode::FAILURE
}
