//! Counters and request latencies in the Prometheus text format (0.0.4), served at `/metrics`.
//! One [`Metrics`] per database handle (`Db::metrics`), so every feature that has the database
//! can count without a global, and each test's app counts alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// Upper bounds of the request latency buckets, in seconds.
const BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Every counter: name, help. A counter not listed here is not rendered (and a typo shows up
/// as a missing series in the test).
const COUNTERS: &[(&str, &str)] = &[
    ("http_requests_total", "HTTP requests answered, by method, route template and status."),
    ("policy_saves_total", "Audited policy changes, by key."),
    ("policy_conflicts_total", "Policy changes refused because the key changed since it was read, by key."),
    ("policy_refusals_total", "Policy changes refused as invalid, by key."),
    ("policy_noops_total", "Policy changes that wrote nothing (the value was already in force), by key."),
    ("sign_ins_total", "Sign-in attempts, by outcome (success, failure, throttled)."),
    ("runs_created_total", "Runs created."),
    ("block_claims_total", "Blocks handed to workers by claims."),
    ("block_completions_total", "Blocks completed by workers."),
    ("block_failures_total", "Block failures reported by workers."),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    latency: BTreeMap<String, Histogram>,
}

#[derive(Clone, Default)]
pub struct Metrics(Arc<Mutex<Inner>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A gauge read at scrape time (pool use, blocks by state).
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub values: Vec<(Labels, f64)>,
}

impl Metrics {
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if let Ok(mut m) = self.0.lock() {
            *m.counters.entry((name, labels)).or_default() += n;
        }
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// One answered request: counted by method, route and status, timed by route.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.inc("http_requests_total", &[("method", method), ("route", route), ("status", &status.to_string())]);
        if let Ok(mut m) = self.0.lock() {
            let h = m.latency.entry(route.to_string()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// The text format, with `gauges` read by the caller.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let Ok(m) = self.0.lock() else { return out };
        for (name, help) in COUNTERS {
            let _ = writeln!(out, "# HELP runtime_policy_{name} {help}\n# TYPE runtime_policy_{name} counter");
            for ((_, labels), value) in m.counters.range((*name, Vec::new())..).take_while(|((n, _), _)| n == name) {
                let _ = writeln!(out, "runtime_policy_{name}{} {value}", label_text(labels, None));
            }
        }
        let name = "runtime_policy_http_request_duration_seconds";
        let _ =
            writeln!(out, "# HELP {name} Time to answer an HTTP request, by route template.\n# TYPE {name} histogram");
        for (route, h) in &m.latency {
            let labels = vec![("route", route.clone())];
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(out, "{name}_bucket{} {}", label_text(&labels, Some(&bound.to_string())), h.buckets[i]);
            }
            let _ = writeln!(out, "{name}_bucket{} {}", label_text(&labels, Some("+Inf")), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", label_text(&labels, None), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", label_text(&labels, None), h.count);
        }
        for g in gauges {
            let _ =
                writeln!(out, "# HELP runtime_policy_{} {}\n# TYPE runtime_policy_{} gauge", g.name, g.help, g.name);
            for (labels, value) in &g.values {
                let _ = writeln!(out, "runtime_policy_{}{} {value}", g.name, label_text(labels, None));
            }
        }
        out
    }
}

/// `{a="x",b="y"}` with values escaped as the format requires; empty without labels.
fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_latencies_render_in_the_text_format() {
        let m = Metrics::default();
        m.inc("policy_saves_total", &[("key", "worker.max_retries")]);
        m.inc("policy_saves_total", &[("key", "worker.max_retries")]);
        m.inc("sign_ins_total", &[("outcome", "failure \"quoted\"")]);
        m.request("GET", "/healthz", 200, 0.003);
        let text = m.render(&[Gauge { name: "db_pool_connections", help: "Open.", values: vec![(vec![], 2.0)] }]);
        assert!(text.contains("runtime_policy_policy_saves_total{key=\"worker.max_retries\"} 2\n"), "{text}");
        assert!(text.contains("runtime_policy_sign_ins_total{outcome=\"failure \\\"quoted\\\"\"} 1\n"), "{text}");
        assert!(
            text.contains("runtime_policy_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("runtime_policy_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("runtime_policy_db_pool_connections 2\n"), "{text}");
    }
}
