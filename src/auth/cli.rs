//! `runtime-policy user …` and `runtime-policy token …`.

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
        /// What it may do: runs:create, runs:work (claim, complete, fail), snapshot:read;
        /// repeat for several. Without any, all three.
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
