//! `runtime-policy user …`, `runtime-policy token …` and `runtime-policy api-token …`.

use std::io::{BufRead, IsTerminal};

use clap::{Subcommand, ValueEnum};

use super::password::{Hasher, NewPassword, MIN_PASSWORD_CHARS};
use super::token::{create_token, list_tokens, revoke_token, Grant, TokenName};
use super::types::Role;
use super::users::{create_user, disable_user, list_users, Email};
use crate::db::Db;
use crate::error::AppError;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
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

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a worker token and print it; it is stored only as a hash and never shown again.
    Create {
        name: String,
        /// What it may do: runs:create, runs:work (claim, complete, fail), snapshot:read,
        /// policy:read (today's baseline, for a service that enforces it); repeat for several.
        /// Without any, the first three.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Bind the token to one run (it may not create runs then).
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
    },
    /// Revoke a worker token at once.
    Revoke { name: String },
    /// List the worker tokens (names and dates, never the tokens).
    List,
}

#[derive(Subcommand, Debug)]
pub enum ApiTokenCommand {
    /// Create a personal API token for a superuser and print it once (only its hash is kept).
    Create {
        name: String,
        /// The superuser it acts for.
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// policy:read, policy:write, audit:read; repeat for several. Without any, read-only
        /// (policy:read audit:read); policy:write brings policy:read.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Days until it stops working (1-3650); without it, it works until revoked.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<i64>,
    },
    /// Revoke an API token at once.
    Revoke { name: String },
    /// List the API tokens: owner, scopes, dates, last use (never the tokens).
    List,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
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

/// Parses what the command needs before `open` touches the database, so bad input writes
/// nothing; returns what to print.
pub async fn user<F, Fut>(cmd: UserCommand, open: F) -> Result<String, AppError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Db, AppError>>,
{
    match cmd {
        UserCommand::Create { email, role } => {
            let email = Email::parse(&email)?;
            let password = NewPassword::parse(&read_password()?)?;
            let db = open().await?;
            let hash = Hasher::new(1, 0).hash(password).await?;
            let user = create_user(&db, &email, role.into(), &hash).await?;
            Ok(format!("created {} ({})\n", user.email, user.role.as_str()))
        }
        UserCommand::Disable { email } => {
            let email = Email::parse(&email)?;
            disable_user(&open().await?, &email).await?;
            Ok(format!("disabled {}\n", email.as_str()))
        }
        UserCommand::List => Ok(list_users(&open().await?)
            .await?
            .iter()
            .map(|u| {
                let state = if u.disabled { "disabled" } else { "active" };
                format!("{}\t{}\t{}\t{}\n", u.user.email, u.user.role.as_str(), state, u.created_at)
            })
            .collect()),
    }
}

/// Like [`user`]. A new token goes to stdout alone (the note about it to stderr), so
/// `TOKEN=$(runtime-policy token create NAME)` works.
pub async fn token<F, Fut>(cmd: TokenCommand, open: F) -> Result<String, AppError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Db, AppError>>,
{
    match cmd {
        TokenCommand::Create { name, scopes, run } => {
            let name = TokenName::parse(&name)?;
            let grant = Grant::parse(&scopes, run)?;
            let token = create_token(&open().await?, &name, &grant).await?;
            eprintln!("token {} created; it is shown only this once:", name.as_str());
            Ok(format!("{token}\n"))
        }
        TokenCommand::Revoke { name } => {
            let name = TokenName::parse(&name)?;
            revoke_token(&open().await?, &name).await?;
            Ok(format!("revoked {}\n", name.as_str()))
        }
        TokenCommand::List => Ok(list_tokens(&open().await?)
            .await?
            .iter()
            .map(|t| {
                let state = t.revoked_at.as_ref().map(|at| format!("revoked {at}")).unwrap_or_else(|| "active".into());
                format!("{}\t{}\t{}\t{}\n", t.name, t.created_at, state, t.grant.describe())
            })
            .collect()),
    }
}

pub async fn api_token<F, Fut>(cmd: ApiTokenCommand, open: F) -> Result<String, AppError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Db, AppError>>,
{
    use super::api_token::{create_api_token, list_api_tokens, revoke_api_token, ApiScope};
    match cmd {
        ApiTokenCommand::Create { name, user, scopes, expires_in_days } => {
            let name = TokenName::parse(&name)?;
            let email = Email::parse(&user).map_err(|e| e.map_message(|m| m.replacen("EMAIL", "--user", 1)))?;
            let scopes = ApiScope::parse_list(&scopes)?;
            let db = open().await?;
            let owner = list_users(&db)
                .await?
                .into_iter()
                .find(|r| r.user.email == email.as_str() && !r.disabled)
                .map(|r| r.user)
                .ok_or_else(|| AppError::invalid("--user", format!("no active user {}", email.as_str())))?;
            let token = create_api_token(&db, &name, &owner, &scopes, expires_in_days).await?;
            eprintln!("API token {} for {} created; it is shown only this once:", name.as_str(), owner.email);
            Ok(format!("{token}\n"))
        }
        ApiTokenCommand::Revoke { name } => {
            let name = TokenName::parse(&name)?;
            revoke_api_token(&open().await?, &name).await?;
            Ok(format!("revoked {}\n", name.as_str()))
        }
        ApiTokenCommand::List => Ok(list_api_tokens(&open().await?)
            .await?
            .iter()
            .map(|t| {
                let state = match (&t.revoked_at, &t.expires_at) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, Some(at)) => format!("expires {at}"),
                    (None, None) => "active".into(),
                };
                let used = t.last_used_at.clone().unwrap_or_else(|| "never used".into());
                format!("{}\t{}\t{}\t{}\t{state}\t{used}\n", t.name, t.owner, t.scopes, t.created_at)
            })
            .collect()),
    }
}

/// The new password: prompted for without echo on a terminal (rpassword restores the
/// terminal, also on Ctrl-C), else one line of stdin.
fn read_password() -> Result<String, AppError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password(format!("Password (at least {MIN_PASSWORD_CHARS} characters): "))
            .map_err(|e| AppError::invalid("password", format!("cannot read it from the terminal: {e}")));
    }
    let mut line = String::new();
    match stdin.lock().read_line(&mut line) {
        Ok(0) => Err(AppError::invalid("password", "expected one line on stdin, got nothing")),
        Ok(_) => Ok(line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_string()),
        Err(_) => Err(AppError::invalid("password", "stdin is not valid UTF-8 text")),
    }
}
