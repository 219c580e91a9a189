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
    for sub in ["serve", "migrate"] {
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
