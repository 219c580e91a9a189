//! The binary's command line: help, and one-line errors for bad configuration.

use std::process::Command;

/// The name of this process's user, as `id -un` says.
fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

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
    let out = bin().env("DATABASE_URL", format!("sqlite://{}", path.display())).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(path.exists());
    // The folder it created and the file are the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("nested")), 0o700);
    assert_eq!(mode(&path), 0o600);
}

fn policy(url: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.env("DATABASE_URL", url).env("USER", "ops").arg("policy").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_both_backends!(policy_commands_resolve_set_and_audit, |t| {
    let url = t.url.as_str().to_string();
    let (code, out, _) = policy(&url, &["list"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| l.contains("(source=default)")).count(), 15, "{out}");

    let (_, out, _) = policy(&url, &["get", "worker.claim_batch_size"], &[("POLICY__WORKER__CLAIM_BATCH_SIZE", "5")]);
    assert!(out.contains("effective=5 (source=env)"), "{out}");

    let (code, out, err) = policy(&url, &["set", "worker.claim_batch_size", "7", "--reason", "flaky provider"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("effective=7 (source=admin)"), "{out}");
    let (_, out, _) = policy(&url, &["history", "--json"], &[]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    // The actor is the operating system's user, whatever $USER says.
    assert_eq!(rows[0]["actor_email"], format!("cli:{}", os_user()));
    assert_eq!(rows[0]["reason"], "flaky provider");

    let (code, _, err) = policy(&url, &["set", "worker.claim_batch_size", "500"], &[]);
    assert_eq!(code, 2);
    assert_eq!(err.trim(), "runtime-policy: worker.claim_batch_size must be an integer from 1 to 100, got 500");
    let (code, _, err) = policy(&url, &["set", "no.such.key", "1"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = policy(&url, &["set", "worker.claim_batch_size", "8", "--expect-version", "0"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("changed by cli:{}", os_user())), "{err}");
    let (_, out, _) = policy(&url, &["history"], &[]);
    assert_eq!(out.lines().count(), 1, "nothing else was written: {out}");

    let (code, out, _) = policy(&url, &["unset", "worker.claim_batch_size"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("(source=default)"), "{out}");
    let (_, out, _) = policy(&url, &["get", "worker.claim_batch_size", "--json"], &[]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((r["source"].as_str(), r["admin_version"].as_i64()), (Some("default"), Some(2)));
    // A key that needs review: `set` opens a change request and changes nothing yet.
    let (code, out, err) = policy(&url, &["set", "worker.max_retries", "7"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("opened change request 1: worker.max_retries"), "{out}");
    let (_, out, _) = policy(&url, &["get", "worker.max_retries"], &[]);
    assert!(out.contains("effective=3 (source=default)"), "{out}");
    t.finish().await;
});

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

    one_line_error(
        &run(&db, &["user", "create", "a@example.com", "--role", "superuser"], "short\n"),
        2,
        "password: must be at least 12",
    );
    one_line_error(&run(&db, &["user", "create", "a@example.com", "--role", "superuser"], ""), 2, "password:");
    one_line_error(
        &run(&db, &["user", "create", "not-an-email", "--role", "member"], "long enough password\n"),
        2,
        "EMAIL:",
    );
    one_line_error(
        &run(&db, &["user", "create", "a@example.com", "--role", "admin"], "long enough password\n"),
        2,
        "--role",
    );
    one_line_error(&run(&db, &["user", "create", "a@example.com"], "long enough password\n"), 2, "--role");
    assert_eq!(list(&db), "");

    let out = run(&db, &["user", "create", "Ada@Example.com", "--role", "superuser"], "long enough password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    one_line_error(
        &run(&db, &["user", "create", "ADA@example.com", "--role", "member"], "long enough password\n"),
        2,
        "EMAIL: a user ada@example.com already exists",
    );
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

    // Scopes and a bound run are chosen at creation and listed; a token with no --scope gets
    // every worker scope.
    assert!(listed.starts_with("worker-1\t"));
    let out =
        run(&db, &["token", "create", "reader", "--scope", "snapshot:read", "--scope", "runs:work", "--run", "3"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8(run(&db, &["token", "list"], "").stdout).unwrap();
    assert!(
        listed.lines().any(|l| l.starts_with("reader\t") && l.ends_with("\truns:work snapshot:read (run 3)")),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l.starts_with("worker-1\t") && l.ends_with("\truns:create runs:work snapshot:read")),
        "{listed}"
    );
    one_line_error(
        &run(&db, &["token", "create", "x", "--scope", "runs:delete"], ""),
        2,
        "--scope: must be runs:create, runs:work, snapshot:read or policy:read",
    );
    one_line_error(
        &run(&db, &["token", "create", "x", "--run", "3"], ""),
        2,
        "--run: a token bound to one run cannot create runs",
    );
}

#[test]
fn the_committed_key_reference_is_what_the_registry_gives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys.md");
    // No database is needed: an unreachable one must not matter.
    let run = bin()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .args(["policy", "docs", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written, runtime_policy::policy::docs::key_reference());
    for spec in runtime_policy::policy::REGISTRY {
        assert!(written.contains(&format!("`{}`", spec.env_var())), "{} lacks its env variable", spec.key);
    }
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy-keys.md")).unwrap_or_default();
    assert!(
        committed == written,
        "docs/policy-keys.md differs from the registry: run `runtime-policy policy docs` and commit the file"
    );
}

#[test]
fn every_setting_is_a_flag_and_config_prints_them_with_secrets_hidden() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DATABASE_URL",
        "LEPTOS_SITE_ADDR",
        "LEPTOS_SITE_ROOT",
        "LEPTOS_ENV",
        "COOKIE_SECURE",
        "PUBLIC_ORIGIN",
        "TRUST_PROXY",
        "METRICS_ALLOW",
        "METRICS_TOKEN",
        "LOG_FORMAT",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "serve --help lacks {var}:\n{help}");
    }

    // A flag wins over its variable; secrets never print.
    let out = bin()
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:5000")
        .env("DATABASE_URL", "postgres://someone:hunter2-secret@127.0.0.1:5432/db")
        .env("METRICS_TOKEN", "a-metrics-token-that-is-secret")
        .args(["config", "--site-addr", "127.0.0.1:4000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("LEPTOS_SITE_ADDR=127.0.0.1:4000"), "{text}");
    assert!(text.contains("postgres://someone:***@127.0.0.1:5432/db"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("that-is-secret"), "{text}");

    // An invalid env-layer value: reported by key, and a non-zero exit.
    let out = bin().env("POLICY__WORKER__MAX_RETRIES", "99").arg("config").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("warning: worker.max_retries"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // An invalid setting: one line naming it.
    let out = bin().args(["config", "--metrics-allow", "not-an-address"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("METRICS_ALLOW:") && err.trim_end().lines().count() == 1, "{err}");
}
