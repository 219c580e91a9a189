//! The binary's command line: help, and one-line errors for bad configuration.
#![cfg(feature = "ssr")]

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runtime-policy"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "migrate", "user", "token"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(sub)), "--help lacks {sub}:\n{text}");
    }
}

#[test]
fn a_bad_database_url_exits_with_one_line_naming_the_variable() {
    let out = bin().env("DATABASE_URL", "nonsense://x").arg("migrate").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("DATABASE_URL: unsupported scheme \"nonsense\""), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn a_bad_site_address_exits_with_one_line_naming_the_variable() {
    let out = bin().env("LEPTOS_SITE_ADDR", "not-an-address").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("LEPTOS_SITE_ADDR:"), "{err}");
}

#[test]
fn migrate_creates_the_sqlite_file_and_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/policy.db");
    let out = bin()
        .env("DATABASE_URL", format!("sqlite://{}", path.display()))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(path.exists());
}

/// Runs the binary against `db` with `stdin` as its input.
fn run(db: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = bin()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may exit before reading (a bad argument), closing the pipe: that is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn one_line_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn users_are_created_listed_and_disabled_and_bad_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let list = |db| String::from_utf8(run(db, &["user", "list"], "").stdout).unwrap();

    one_line_error(&run(&db, &["user", "create", "a@example.com", "--role", "superuser"], "short\n"), 2, "password: must be at least 12");
    one_line_error(&run(&db, &["user", "create", "a@example.com", "--role", "superuser"], ""), 2, "password:");
    one_line_error(&run(&db, &["user", "create", "not-an-email", "--role", "member"], "long enough password\n"), 2, "EMAIL:");
    one_line_error(&run(&db, &["user", "create", "a@example.com", "--role", "admin"], "long enough password\n"), 2, "--role");
    one_line_error(&run(&db, &["user", "create", "a@example.com"], "long enough password\n"), 2, "--role");
    assert_eq!(list(&db), "");

    let out = run(&db, &["user", "create", "Ada@Example.com", "--role", "superuser"], "long enough password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    one_line_error(&run(&db, &["user", "create", "ADA@example.com", "--role", "member"], "long enough password\n"), 2, "EMAIL: a user ada@example.com already exists");
    let out = run(&db, &["user", "create", "bob@example.com", "--role", "member"], "another long password\r\n");
    assert!(out.status.success());

    let listed = list(&db);
    assert!(listed.contains("ada@example.com\tsuperuser\tactive"), "{listed}");
    assert!(listed.contains("bob@example.com\tmember\tactive"), "{listed}");
    assert!(!listed.contains("argon2"), "hashes must not be listed");

    assert!(run(&db, &["user", "disable", "BOB@example.com"], "").status.success());
    assert!(list(&db).contains("bob@example.com\tmember\tdisabled"));
    one_line_error(&run(&db, &["user", "disable", "nobody@example.com"], ""), 2, "EMAIL: no user nobody@example.com");
}

#[test]
fn worker_tokens_are_printed_once_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    one_line_error(&run(&db, &["token", "create", "bad name"], ""), 2, "NAME:");
    let out = run(&db, &["token", "create", "worker-1"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(token.trim().starts_with("rpw_"), "{token}");
    one_line_error(&run(&db, &["token", "create", "worker-1"], ""), 2, "NAME: a token named worker-1 already exists");

    let listed = String::from_utf8(run(&db, &["token", "list"], "").stdout).unwrap();
    assert!(listed.starts_with("worker-1\t") && listed.contains("active"), "{listed}");
    assert!(!listed.contains(token.trim()));
    assert!(run(&db, &["token", "revoke", "worker-1"], "").status.success());
    let listed = String::from_utf8(run(&db, &["token", "list"], "").stdout).unwrap();
    assert!(listed.contains("revoked"), "{listed}");
    one_line_error(&run(&db, &["token", "revoke", "worker-1"], ""), 2, "NAME: no live token named worker-1");
}
