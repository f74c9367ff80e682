//! The chart's Grafana dashboard and alert rules against the gateway itself: every expression
//! parses as PromQL, the dashboard's selectors honour its `namespace`/`pod` variables, and every
//! metric and label they name is one a running gateway exports.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;
use yaml_rust2::YamlLoader;

use crate::support::TestEnv;

const DASHBOARD: &str = include_str!("../charts/halo-gateway/dashboards/halo-gateway.json");
/// The chart's PrometheusRule as `helm template` renders it with the default thresholds
/// (.ci/deploy-checks.sh fails when this copy is stale).
const RULES: &str = include_str!("../charts/halo-gateway/examples/prometheusrule-rendered.yaml");

/// Series labels that Prometheus adds at scrape time, not the gateway.
const TARGET_LABELS: [&str; 2] = ["namespace", "pod"];

/// One expression and where it comes from, for failure messages.
struct Query {
    origin: String,
    expr: String,
}

/// Every query in the dashboard: panel targets (rows included) and query variables.
fn dashboard_queries() -> Vec<Query> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    fn panels(list: &Value, queries: &mut Vec<Query>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                queries.push(Query {
                    origin: format!("panel '{title}'"),
                    expr: grafana_interpolate(expr),
                });
            }
            panels(&panel["panels"], queries);
        }
    }
    panels(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"].as_str().expect("variable query");
        // label_values(<selector>, <label>): the selector is PromQL.
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(selector, _label)| selector)
            .unwrap_or_else(|| {
                panic!("variable query {query} is not label_values(selector, label)")
            });
        queries.push(Query {
            origin: format!("variable '{}'", variable["name"].as_str().unwrap_or("?")),
            expr: selector.to_owned(),
        });
    }
    queries
}

/// Grafana's interval variables, replaced as Grafana does before it sends a query; anything
/// else starting with `$` outside a string stays and fails to parse.
fn grafana_interpolate(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
}

/// The alert rules' expressions, by alert name.
fn rule_queries() -> Vec<Query> {
    let docs = YamlLoader::load_from_str(RULES).expect("the rendered rules are YAML");
    let rule = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("PrometheusRule"))
        .expect("a PrometheusRule");
    let mut queries = Vec::new();
    for group in rule["spec"]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            queries.push(Query {
                origin: format!("alert {}", rule["alert"].as_str().expect("alert name")),
                expr: rule["expr"].as_str().expect("expr").to_owned(),
            });
        }
    }
    queries
}

/// The vector selectors (plain or inside range selectors) of one parsed expression.
#[derive(Default)]
struct Selectors(Vec<VectorSelector>);

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(selector) => self.0.push(selector.clone()),
            Expr::MatrixSelector(matrix) => self.0.push(matrix.vs.clone()),
            _ => {}
        }
        Ok(true)
    }
}

fn selectors(query: &Query) -> Vec<VectorSelector> {
    let expr = parser::parse(&query.expr)
        .unwrap_or_else(|e| panic!("{}: not PromQL: {e}\n{}", query.origin, query.expr));
    let mut found = Selectors::default();
    let _ = walk_expr(&mut found, &expr);
    assert!(!found.0.is_empty(), "{}: selects no metric", query.origin);
    for selector in &found.0 {
        assert!(
            selector.name.is_some(),
            "{}: every selector names its metric",
            query.origin
        );
    }
    found.0
}

fn label_value<'a>(selector: &'a VectorSelector, label: &str) -> Option<(&'a MatchOp, &'a str)> {
    selector
        .matchers
        .matchers
        .iter()
        .find(|m| m.name == label)
        .map(|m| (&m.op, m.value.as_str()))
}

#[test]
fn dashboard_and_rule_expressions_parse_and_panels_follow_the_variables() {
    let dashboard = dashboard_queries();
    let rules = rule_queries();
    assert!(
        dashboard.len() >= 20,
        "{} dashboard queries",
        dashboard.len()
    );
    let alerts: Vec<&str> = rules.iter().map(|q| q.origin.as_str()).collect();
    assert_eq!(
        alerts,
        [
            "alert HaloGatewayKeysStale",
            "alert HaloGatewayKeyFetchFailing",
            "alert HaloGatewayDenySpike",
            "alert HaloGatewayKeysUnavailable",
            "alert HaloGatewayUpstreamErrors",
            "alert HaloGatewayRateLimitsNotShared",
        ]
    );
    for query in &rules {
        selectors(query);
    }

    let mut used = BTreeSet::new();
    for query in &dashboard {
        for selector in selectors(query) {
            let name = selector.name.clone().unwrap_or_default();
            used.insert(name.clone());
            if query.origin.starts_with("variable") {
                continue;
            }
            for (label, variable) in [("namespace", "$namespace"), ("pod", "$pod")] {
                assert!(
                    matches!(label_value(&selector, label), Some((MatchOp::Re(_), v)) if v == variable),
                    "{}: {name} must select {label}=~\"{variable}\"",
                    query.origin
                );
            }
        }
    }
    // What the dashboard promises to show (issue 20), by the metric that carries it.
    for metric in [
        "halo_gateway_requests_total",
        "halo_gateway_request_duration_seconds_bucket",
        "halo_gateway_upstream_duration_seconds_bucket",
        "halo_gateway_auth_decisions_total",
        "halo_gateway_jwks_keys",
        "halo_gateway_jwks_age_seconds",
        "halo_gateway_jwks_fetches_total",
        "halo_gateway_token_cache_hits_total",
        "halo_gateway_token_cache_misses_total",
        "halo_gateway_upstream_errors_total",
        "halo_gateway_inflight_requests",
        "halo_gateway_rate_limited_total",
        "halo_gateway_ratelimit_backend_errors_total",
    ] {
        assert!(used.contains(metric), "no panel shows {metric}");
    }
}

/// Metric names in a text exposition, each with the label names its samples carry.
fn exported(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let series = line
            .rsplit_once(' ')
            .map_or(line, |(series, _value)| series);
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let names = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('=').map(|(label, _)| label.to_owned()));
        metrics.entry(name.to_owned()).or_default().extend(names);
    }
    metrics
}

#[tokio::test]
async fn every_metric_and_label_the_dashboard_and_rules_use_is_exported() {
    // One client with a quota of one request, so a second one is refused (the rate-limit
    // series exist only once something was refused).
    let env = TestEnv::with_settings(&[
        ("Gateway__UpstreamTimeout", "200ms"),
        ("Gateway__RateLimit__Clients__0__Id", "0oa-limited"),
        ("Gateway__RateLimit__Clients__0__Requests", "1"),
        ("Gateway__RateLimit__Clients__0__Period", "3600"),
    ])
    .await;
    let token = env.token(None);
    let allowed = env.get("/api/v1/policies", Some(&token)).await;
    assert_eq!(allowed.status(), 200);
    let denied = env.get("/api/v1/policies", None).await;
    assert_eq!(denied.status(), 401);
    let upstream_error = env.get("/stub/slow?ms=2000", Some(&token)).await;
    assert_eq!(upstream_error.status(), 504);
    let mut limited = env.claims();
    limited["cid"] = serde_json::json!("0oa-limited");
    let limited = env.issuer.sign(&limited);
    assert_eq!(
        env.get("/api/v1/policies", Some(&limited)).await.status(),
        200
    );
    assert_eq!(
        env.get("/api/v1/policies", Some(&limited)).await.status(),
        429
    );

    let exposition = env.scrape_metrics().await;
    let metrics = exported(&exposition);
    let mut checked = 0;
    for query in dashboard_queries().iter().chain(&rule_queries()) {
        for selector in selectors(query) {
            let name = selector.name.as_deref().unwrap_or_default();
            let labels = metrics.get(name).unwrap_or_else(|| {
                panic!(
                    "{}: the gateway does not export {name}; it exports {:?}",
                    query.origin,
                    metrics.keys().collect::<Vec<_>>()
                )
            });
            for matcher in &selector.matchers.matchers {
                let label = matcher.name.as_str();
                assert!(
                    TARGET_LABELS.contains(&label) || labels.contains(label),
                    "{}: {name} has no label {label} (it has {labels:?})",
                    query.origin
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} selectors checked");
}
