//! The Grafana dashboard (deploy/grafana/sluice.json) and the metrics
//! reference (docs/OPERATIONS.md) against what sluice exports: every
//! metric a query names is exported, every exported family is documented
//! and shown on the dashboard. The export is a real scrape's text, of a
//! `Metrics` with every family touched (a family with no series is not
//! written at all).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::exchange::{Outcome, RpcSummary, Summary};

use super::{MemberLive, Metrics, Phase, RouteLive};
use crate::hooks::{HookError, HookErrorKind, HookRun, HookRunResult};

const DASHBOARD: &str = include_str!("../../../deploy/grafana/sluice.json");
const OPERATIONS: &str = include_str!("../../../docs/OPERATIONS.md");

/// A scrape with every family holding at least one series.
fn full_scrape() -> String {
    let (writer, _drain) =
        crate::logq::start(std::io::sink(), crate::logq::QueueLimits::default()).unwrap();
    let m = Metrics::new(Some(writer.dropped()));
    let r = m.routes(&["r".into()]);
    let started = Instant::now();
    let summary = Summary {
        http_method: "POST".into(),
        target: "/mcp".into(),
        rpc: Some(RpcSummary {
            method: Some("tools/call".into()),
            id: Some(b"1".to_vec()),
            name: Some("echo".into()),
            batch: false,
        }),
        route: Some(0),
        status: Some(200),
        outcome: Outcome::Complete,
        reason: None,
        error: None,
        started,
        request_done: Some(started),
        response_head: Some(started + Duration::from_micros(300)),
        finished: Some(started + Duration::from_millis(2)),
        body_bytes: 10,
        reused: false,
        event_stream: true,
        identity: None,
        keepalives: 2,
        sse_events: 3,
    };
    m.exchange_done(&r, &summary, &super::Elapsed::of(&summary));
    let _open = m.sse_stream_opened(&r, Some(0));
    m.auth("r").judged(
        &sluice_core::auth::Verdict::Deny(sluice_core::auth::Denial::InvalidToken),
        super::AuthMethod::Jwt,
    );
    let sessions = r.federation(0);
    sessions.sealed();
    sessions.refused();
    m.reloaded(super::ReloadOutcome::Ok);
    m.reloaded(super::ReloadOutcome::Invalid);
    for result in [
        HookRunResult::Continue,
        HookRunResult::Failed {
            error: HookError {
                hook: "h".into(),
                kind: HookErrorKind::Deadline(Duration::from_millis(50)),
            },
            passed: false,
        },
    ] {
        let run = HookRun {
            hook: Arc::from("h"),
            elapsed: Duration::from_micros(20),
            result,
            audit: false,
        };
        m.hook_ran(Phase::Request, &run);
    }
    m.encode(
        &r,
        &[RouteLive {
            legacy_sessions: 1,
            stdio_sessions: 1,
            stdio_shared_sessions: 1,
            stdio_processes: 1,
            members: vec![MemberLive {
                name: "m".into(),
                left_out: 1,
                circuit_open: true,
                requests: [1, 1, 1, 1, 1],
            }],
        }],
    )
}

/// Families by their `# TYPE` lines, and the series names each exports
/// (`_bucket`, `_sum`, `_count` for a histogram).
fn exported(scrape: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut families = BTreeSet::new();
    let mut series = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    series.insert(format!("{name}{suffix}"));
                }
            } else {
                series.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..end].to_owned());
        }
    }
    (families, series)
}

/// The metric names a PromQL expression reads: its identifiers, less
/// function and aggregation names (followed by `(`), the labels of
/// `by (…)`, `without (…)`, `on (…)`, `ignoring (…)` and `group_*(…)`,
/// keywords, and what sits in strings, label matchers `{…}` and ranges `[…]`.
fn metric_names(expr: &str) -> Vec<String> {
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];
    // Aggregations may put `by (…)` between their name and `(`.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut quote = None;
                while i < chars.len() {
                    match (quote, chars[i]) {
                        (Some(_), '\\') => i += 1,
                        (Some(q), ch) if ch == q => quote = None,
                        (None, '"' | '\'' | '`') => quote = Some(chars[i]),
                        (None, ch) if ch == close => break,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let called = chars.get(next) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) && called {
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                } else if !called
                    && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                    && !AGGREGATIONS.contains(&word.as_str())
                {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every query of the dashboard: the panels' `expr`, and the selector in
/// each variable's `label_values(…)`.
fn queries(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        ("definition", Value::String(d)) => {
                            let inner = d
                                .strip_prefix("label_values(")
                                .and_then(|d| d.rsplit_once(','))
                                .map(|(selector, _)| selector.to_owned());
                            out.push(inner.unwrap_or_else(|| panic!("unknown variable query {d}")));
                        }
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

#[test]
fn promql_names_are_found() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{job=~"$job",x="y}"}[$__rate_interval]))) / on (route) group_left (kind) b_total offset 5m > bool 1e3"#,
    );
    assert_eq!(names, ["a_bucket", "b_total"]);
}

#[test]
fn every_query_of_the_dashboard_names_a_metric_sluice_exports() {
    let scrape = full_scrape();
    let (families, series) = exported(&scrape);
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let queries = queries(&dashboard);
    assert!(queries.len() > 20, "{queries:?}");
    let mut used = BTreeSet::new();
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "a query that reads no metric: {q}");
        for name in names {
            assert!(
                series.contains(&name),
                "{name} (in {q}) is not exported; sluice exports {series:?}"
            );
            used.insert(name);
        }
    }
    // And the dashboard shows every family.
    for family in &families {
        assert!(
            used.iter().any(|u| u.starts_with(family.as_str())),
            "{family} is on no panel of deploy/grafana/sluice.json"
        );
    }
    // Every panel reads its data from the dashboard's Prometheus variable.
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        }
    }
}

#[test]
fn the_metrics_reference_lists_exactly_the_families_exported() {
    let (families, _) = exported(&full_scrape());
    let documented: BTreeSet<String> = OPERATIONS
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split_once('`'))
        .map(|(name, _)| name)
        .filter(|n| n.starts_with("sluice_") || n.starts_with("process_"))
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, families);
}
