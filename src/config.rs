//! Configuration from the environment. Every problem becomes a one-line
//! [`AppError::Config`] that names the variable, never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;

use leptos::config::{Env, LeptosOptions};

use crate::error::AppError;

/// The SQLite file used when `DATABASE_URL` is unset.
pub const DEFAULT_SQLITE_PATH: &str = "data/runtime-policy.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database address whose scheme has been checked.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub backend: Backend,
    url: String,
    /// The file behind a SQLite address, so its folder can be created before connecting.
    pub sqlite_path: Option<PathBuf>,
}

impl std::fmt::Debug for DatabaseUrl {
    // The address may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("backend", &self.backend)
            .field("sqlite_path", &self.sqlite_path)
            .finish_non_exhaustive()
    }
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<DatabaseUrl, AppError> {
        let raw = raw.trim();
        let err = |problem: &str| AppError::Config(format!("DATABASE_URL: {problem}"));
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path.is_empty() || path == ":memory:" || path.starts_with(":memory:") {
                return Err(err(
                    "an in-memory SQLite database would lose every change; give a file, e.g. sqlite://data/runtime-policy.db",
                ));
            }
            // `mode=rwc` creates the file on first start.
            let query = match query {
                Some(q) if q.split('&').any(|kv| kv.starts_with("mode=")) => q.to_string(),
                Some(q) if !q.is_empty() => format!("{q}&mode=rwc"),
                _ => "mode=rwc".to_string(),
            };
            return Ok(DatabaseUrl {
                backend: Backend::Sqlite,
                url: format!("sqlite://{path}?{query}"),
                sqlite_path: Some(PathBuf::from(path)),
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let after = raw.split_once("://").map(|(_, r)| r).unwrap_or_default();
            if after.is_empty() || after.starts_with('/') && after.len() == 1 {
                return Err(err("a PostgreSQL address needs a host, e.g. postgres://user@127.0.0.1:5432/db"));
            }
            return Ok(DatabaseUrl { backend: Backend::Postgres, url: raw.to_string(), sqlite_path: None });
        }
        let scheme = raw.split_once(':').map(|(s, _)| s).unwrap_or(raw);
        if raw.is_empty() {
            return Err(err(
                "is set but empty; unset it for the embedded SQLite default or give sqlite://PATH or postgres://…",
            ));
        }
        Err(err(&format!("unsupported scheme \"{scheme}\"; use sqlite://PATH or postgres://USER@HOST:PORT/DB")))
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub leptos_options: LeptosOptions,
    /// Marks the session cookie `Secure`; set `COOKIE_SECURE=true` when the site is served
    /// over TLS (directly or behind a proxy), so the cookie never travels in clear text.
    pub cookie_secure: bool,
    /// The site's address as browsers see it (`https://policy.example.com`), when a reverse
    /// proxy rewrites `Host`: the same-origin check compares `Origin` with it.
    pub public_origin: Option<String>,
    /// Take the client address for sign-in throttling from the last `X-Forwarded-For` entry
    /// (only behind a proxy that sets it; otherwise clients could pick their own address).
    pub trust_proxy: bool,
    /// Who may read `/metrics` without a superuser's session.
    pub metrics_access: MetricsAccess,
}

/// `/metrics` without a session: clients at one of `allow` (`METRICS_ALLOW`, comma-separated
/// addresses; default loopback), or a bearer token whose SHA-256 is `token_sha256`
/// (`METRICS_TOKEN`).
#[derive(Clone, Debug)]
pub struct MetricsAccess {
    pub allow: Vec<std::net::IpAddr>,
    pub token_sha256: Option<String>,
}

impl Default for MetricsAccess {
    fn default() -> Self {
        MetricsAccess { allow: vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()], token_sha256: None }
    }
}

/// The folder of the current bundle under the site root: `pkg/<hash>` as `pkg/current` names it
/// (`scripts/build.sh`), so its files may be cached for good; `pkg` when there is none (the
/// pages then render without hydrating, and the server says so at start).
pub fn bundle_dir(site_root: &std::path::Path) -> String {
    let current = std::fs::read_to_string(site_root.join("pkg/current")).unwrap_or_default();
    let hash = current.trim();
    let valid = (8..=64).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if valid && site_root.join("pkg").join(hash).is_dir() {
        format!("pkg/{hash}")
    } else {
        "pkg".to_string()
    }
}

/// Every setting as a command-line flag that also reads its environment variable (a flag wins
/// over the variable), so `runtime-policy serve --help` lists them all. Parsing and checking stay
/// in [`Config::from_lookup`]; these are only its input.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(next_help_heading = "Server configuration (flag or environment variable)")]
pub struct ConfigArgs {
    /// sqlite://PATH (created and migrated on first start) or postgres://USER:PASS@HOST:PORT/DB
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "sqlite://data/runtime-policy.db",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Address and port to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", global = true, default_value = "127.0.0.1:3000")]
    pub site_addr: Option<String>,
    /// Folder holding the built site (pkg/ with the bundle and the stylesheet).
    #[arg(long, env = "LEPTOS_SITE_ROOT", global = true, default_value = "target/site")]
    pub site_root: Option<String>,
    /// PROD or DEV.
    #[arg(long, env = "LEPTOS_ENV", global = true, default_value = "PROD")]
    pub leptos_env: Option<String>,
    /// Mark the session cookie Secure (default: true when --public-origin is https).
    #[arg(long, env = "COOKIE_SECURE", global = true)]
    pub cookie_secure: Option<String>,
    /// The site's address as browsers see it, behind a reverse proxy (https://policy.example.com).
    #[arg(long, env = "PUBLIC_ORIGIN", global = true)]
    pub public_origin: Option<String>,
    /// Take the client address for sign-in throttling from X-Forwarded-For (behind a proxy only).
    #[arg(long, env = "TRUST_PROXY", global = true, default_value = "false")]
    pub trust_proxy: Option<String>,
    /// Comma-separated client addresses that may read /metrics without a session.
    #[arg(long, env = "METRICS_ALLOW", global = true, default_value = "127.0.0.1,::1")]
    pub metrics_allow: Option<String>,
    /// Bearer token (16 characters or more) that may read /metrics from anywhere.
    #[arg(long, env = "METRICS_TOKEN", global = true, hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Log lines as text or json.
    #[arg(long, env = "LOG_FORMAT", global = true, default_value = "text")]
    pub log_format: Option<String>,
}

impl ConfigArgs {
    /// The value of one setting by its variable's name.
    pub fn get(&self, name: &str) -> Option<String> {
        match name {
            "DATABASE_URL" => self.database_url.clone(),
            "LEPTOS_SITE_ADDR" => self.site_addr.clone(),
            "LEPTOS_SITE_ROOT" => self.site_root.clone(),
            "LEPTOS_ENV" => self.leptos_env.clone(),
            "COOKIE_SECURE" => self.cookie_secure.clone(),
            "PUBLIC_ORIGIN" => self.public_origin.clone(),
            "TRUST_PROXY" => self.trust_proxy.clone(),
            "METRICS_ALLOW" => self.metrics_allow.clone(),
            "METRICS_TOKEN" => self.metrics_token.clone(),
            "LOG_FORMAT" => self.log_format.clone(),
            _ => None,
        }
    }
}

impl Config {
    /// The effective settings as `runtime-policy config` prints them: one `NAME=value` per
    /// line, with the database password and the metrics token hidden.
    pub fn describe(&self, args: &ConfigArgs) -> String {
        let url = self.database_url.as_str();
        let shown_url = match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            },
            _ => url.to_string(),
        };
        let allow: Vec<String> = self.metrics_access.allow.iter().map(|a| a.to_string()).collect();
        let mut out = String::new();
        out.push_str(&format!("DATABASE_URL={shown_url}\n"));
        out.push_str(&format!("LEPTOS_SITE_ADDR={}\n", self.leptos_options.site_addr));
        out.push_str(&format!("LEPTOS_SITE_ROOT={}\n", self.leptos_options.site_root));
        out.push_str(&format!("LEPTOS_ENV={:?}\n", self.leptos_options.env));
        out.push_str(&format!("COOKIE_SECURE={}\n", self.cookie_secure));
        out.push_str(&format!("PUBLIC_ORIGIN={}\n", self.public_origin.as_deref().unwrap_or("")));
        out.push_str(&format!("TRUST_PROXY={}\n", self.trust_proxy));
        out.push_str(&format!("METRICS_ALLOW={}\n", allow.join(",")));
        out.push_str(&format!(
            "METRICS_TOKEN={}\n",
            if self.metrics_access.token_sha256.is_some() { "(set, hidden)" } else { "" }
        ));
        out.push_str(&format!("LOG_FORMAT={}\n", args.log_format.as_deref().unwrap_or("text")));
        out
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, AppError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, AppError> {
        let database_url = match get("DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse(&raw)?,
            None => DatabaseUrl::parse(&format!("sqlite://{DEFAULT_SQLITE_PATH}"))?,
        };

        let site_addr: SocketAddr = match get("LEPTOS_SITE_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
            Some(raw) => raw.trim().parse().map_err(|_| {
                AppError::Config(format!("LEPTOS_SITE_ADDR: expected IP:PORT such as 127.0.0.1:3000, got \"{raw}\""))
            })?,
        };
        let site_root = get("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".to_string());
        if site_root.trim().is_empty() {
            return Err(AppError::Config(
                "LEPTOS_SITE_ROOT: is empty; give the folder that holds pkg/ (default target/site)".into(),
            ));
        }
        let env = match get("LEPTOS_ENV").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("prod") | Some("production") => Env::PROD,
            Some("dev") | Some("development") => Env::DEV,
            Some(other) => return Err(AppError::Config(format!("LEPTOS_ENV: expected PROD or DEV, got \"{other}\""))),
        };

        let cookie_secure = match get("COOKIE_SECURE").as_deref().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            // Unset: Secure when the site is known to be served over HTTPS.
            None | Some("") => {
                get("PUBLIC_ORIGIN").is_some_and(|o| o.trim().to_ascii_lowercase().starts_with("https://"))
            }
            Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(AppError::Config(format!("COOKIE_SECURE: expected true or false, got \"{other}\"")))
            }
        };

        let public_origin = match get("PUBLIC_ORIGIN").map(|v| v.trim().trim_end_matches('/').to_string()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) => {
                let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
                        Some(v.to_ascii_lowercase())
                    }
                    _ => {
                        return Err(AppError::Config(format!(
                        "PUBLIC_ORIGIN: expected scheme://host[:port] such as https://policy.example.com, got \"{v}\""
                    )))
                    }
                }
            }
        };
        let trust_proxy = match get("TRUST_PROXY").as_deref().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(AppError::Config(format!("TRUST_PROXY: expected true or false, got \"{other}\"")))
            }
        };

        let mut metrics_access = MetricsAccess::default();
        if let Some(list) = get("METRICS_ALLOW") {
            metrics_access.allow = list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.parse().map_err(|_| {
                        AppError::Config(format!(
                            "METRICS_ALLOW: \"{a}\" is not an IP address (a comma-separated list of addresses)"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(token) = get("METRICS_TOKEN").filter(|t| !t.is_empty()) {
            if token.len() < 16 {
                return Err(AppError::Config("METRICS_TOKEN: must be at least 16 characters".into()));
            }
            use sha2::Digest;
            metrics_access.token_sha256 = Some(hex::encode(sha2::Sha256::digest(token.as_bytes())));
        }

        let pkg_dir = bundle_dir(std::path::Path::new(&site_root));
        let leptos_options = LeptosOptions::builder()
            .output_name("runtime-policy")
            .site_root(site_root)
            .site_pkg_dir(pkg_dir)
            .site_addr(site_addr)
            .env(env)
            .build();
        Ok(Config { database_url, leptos_options, cookie_secure, public_origin, trust_proxy, metrics_access })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults_to_an_embedded_sqlite_file() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.database_url.backend, Backend::Sqlite);
        assert_eq!(c.database_url.as_str(), "sqlite://data/runtime-policy.db?mode=rwc");
        assert_eq!(c.leptos_options.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(&*c.leptos_options.site_root, "target/site");
    }

    #[test]
    fn rejects_an_unknown_scheme_naming_the_variable() {
        let e = Config::from_lookup(lookup(&[("DATABASE_URL", "nonsense://x")])).unwrap_err();
        assert!(e.to_string().starts_with("DATABASE_URL: unsupported scheme \"nonsense\""), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn rejects_in_memory_sqlite_and_empty_values() {
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert!(DatabaseUrl::parse("").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn accepts_postgres_and_keeps_sqlite_query_parameters() {
        let pg = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(pg.backend, Backend::Postgres);
        let lite = DatabaseUrl::parse("sqlite:///tmp/x.db?mode=rw").unwrap();
        assert_eq!(lite.as_str(), "sqlite:///tmp/x.db?mode=rw");
        assert_eq!(lite.sqlite_path, Some(PathBuf::from("/tmp/x.db")));
    }

    #[test]
    fn rejects_a_bad_site_address_naming_the_variable() {
        let e = Config::from_lookup(lookup(&[("LEPTOS_SITE_ADDR", "localhost")])).unwrap_err();
        assert!(e.to_string().starts_with("LEPTOS_SITE_ADDR:"), "{e}");
        let e = Config::from_lookup(lookup(&[("LEPTOS_ENV", "staging")])).unwrap_err();
        assert!(e.to_string().starts_with("LEPTOS_ENV:"), "{e}");
    }

    #[test]
    fn metrics_access_is_loopback_by_default_and_parsed_strictly() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.metrics_access.allow.len(), 2);
        assert!(c.metrics_access.token_sha256.is_none());
        let c = Config::from_lookup(lookup(&[
            ("METRICS_ALLOW", "10.0.0.5, ::1"),
            ("METRICS_TOKEN", "a-long-enough-token"),
        ]))
        .unwrap();
        assert_eq!(
            c.metrics_access.allow,
            vec!["10.0.0.5".parse::<std::net::IpAddr>().unwrap(), "::1".parse().unwrap()]
        );
        assert!(c.metrics_access.token_sha256.is_some());
        let e = Config::from_lookup(lookup(&[("METRICS_ALLOW", "10.0.0.0/8")])).unwrap_err();
        assert!(e.to_string().starts_with("METRICS_ALLOW:"), "{e}");
        let e = Config::from_lookup(lookup(&[("METRICS_TOKEN", "short")])).unwrap_err();
        assert!(e.to_string().starts_with("METRICS_TOKEN:"), "{e}");
    }

    #[test]
    fn proxy_settings_are_validated() {
        let c =
            Config::from_lookup(lookup(&[("PUBLIC_ORIGIN", "https://Policy.example.com/"), ("TRUST_PROXY", "true")]))
                .unwrap();
        assert_eq!(c.public_origin.as_deref(), Some("https://policy.example.com"));
        assert!(c.trust_proxy);
        for bad in ["policy.example.com", "https://", "https://a.example/path"] {
            let e = Config::from_lookup(lookup(&[("PUBLIC_ORIGIN", bad)])).unwrap_err();
            assert!(e.to_string().starts_with("PUBLIC_ORIGIN:"), "{e}");
        }
        assert!(Config::from_lookup(lookup(&[("TRUST_PROXY", "maybe")]))
            .unwrap_err()
            .to_string()
            .starts_with("TRUST_PROXY:"));
    }

    #[test]
    fn cookie_secure_is_off_by_default_and_parsed_strictly() {
        assert!(!Config::from_lookup(lookup(&[])).unwrap().cookie_secure);
        // Served over HTTPS (PUBLIC_ORIGIN says so), it is Secure unless turned off.
        assert!(Config::from_lookup(lookup(&[("PUBLIC_ORIGIN", "https://p.example")])).unwrap().cookie_secure);
        assert!(
            !Config::from_lookup(lookup(&[("PUBLIC_ORIGIN", "https://p.example"), ("COOKIE_SECURE", "false")]))
                .unwrap()
                .cookie_secure
        );
        assert!(!Config::from_lookup(lookup(&[("PUBLIC_ORIGIN", "http://p.example")])).unwrap().cookie_secure);
        assert!(Config::from_lookup(lookup(&[("COOKIE_SECURE", "true")])).unwrap().cookie_secure);
        let e = Config::from_lookup(lookup(&[("COOKIE_SECURE", "yes please")])).unwrap_err();
        assert!(e.to_string().starts_with("COOKIE_SECURE:"), "{e}");
    }

    #[test]
    fn debug_output_hides_the_database_address() {
        let pg = DatabaseUrl::parse("postgres://u:secret@h/db").unwrap();
        assert!(!format!("{pg:?}").contains("secret"));
    }
}
