//! The admin listener: `/healthz` (the process runs), `/readyz` (keys loaded and not shutting
//! down, else 503 with the reason), `/metrics` (Prometheus text exposition).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde_json::json;

use crate::auth::keys::KeyStore;
use crate::metrics::Metrics;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct AdminState {
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM so the endpoint leaves the Service before connections drain.
    pub draining: AtomicBool,
}

pub fn admin_app(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let status = state.keys.status();
    if state.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": "shutting down" })),
        )
            .into_response();
    }
    if !status.loaded {
        let reason = status
            .last_error
            .clone()
            .unwrap_or_else(|| "keys not fetched yet".into());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        )
            .into_response();
    }
    Json(json!({
        "status": "ready",
        "keys": status.key_ids.len(),
        "jwks_uri": status.jwks_uri.as_ref().map(ToString::to_string),
        "last_refresh_error": status.last_error,
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let last = state.keys.last_success_unix();
    let age = (last > 0).then(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now.saturating_sub(last) as f64
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(age),
    )
        .into_response()
}
