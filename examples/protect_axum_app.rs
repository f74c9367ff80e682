//! Protecting another axum app with halo-gateway's `AuthLayer`.
//!
//! A two-route app (`/hello` open to anyone, `/me` for any valid token, `/admin/report` for
//! the `Admin` role) is wrapped in the same authentication layer the gateway uses, with rules
//! configured through the same `Gateway__Rules__N__*` names. An Okta-like issuer (the one
//! `halo-gateway dev` runs) serves discovery and JWKS on loopback.
//!
//! ```text
//! cargo run --example protect_axum_app
//! ```
//!
//! `cargo test` runs it too (see the test at the bottom).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Router, ServiceExt};
use halo_gateway::auth::validate::VerifiedToken;
use halo_gateway::auth::{AuthLayer, Authenticator};
use halo_gateway::config::{AspNetEnv, Config};
use halo_gateway::dev::issuer::{Issuer, IssuerOptions};
use halo_gateway::metrics::Metrics;
use tower::Layer as _;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The app's own handler: the layer put the verified token in the request's extensions.
async fn me(Extension(token): Extension<Arc<VerifiedToken>>) -> String {
    format!(
        "hello {} (client {}, roles {})",
        token.subject,
        token.client_id().unwrap_or("-"),
        token.access.role_names().join(",")
    )
}

/// Starts the issuer and the protected app; returns what each request got.
async fn demo() -> Result<Vec<(&'static str, u16, String)>, Error> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let issuer = Issuer::start(loopback, IssuerOptions::default()).await?;
    let vars = [
        ("Authentication__Schemes__Bearer__Authority", issuer.url()),
        (
            "Authentication__Schemes__Bearer__ValidAudiences__0",
            issuer.audience(),
        ),
        (
            "Authentication__Schemes__Bearer__RequireHttpsMetadata",
            "false",
        ),
        // Required by the gateway's configuration; this app forwards nothing.
        ("Gateway__Upstream", "http://127.0.0.1:9"),
        ("Gateway__Rules__0__Path", "/hello"),
        ("Gateway__Rules__0__Role", "Anonymous"),
        ("Gateway__Rules__1__Path", "/admin/**"),
        ("Gateway__Rules__1__Role", "Admin"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    let config = Config::load_with_env(None, AspNetEnv::from_vars(vars))?;
    let authenticator = Arc::new(Authenticator::from_config(
        &config,
        Arc::new(Metrics::new()),
    )?);
    authenticator.validator().keys().refresh().await;

    let app = Router::new()
        .route("/hello", get(|| async { "hello, anyone" }))
        .route("/me", get(me))
        .route("/admin/report", get(|| async { "the admin report" }));
    // The layer wraps the whole router, so it sees every request first.
    let protected = AuthLayer::<axum::body::Body>::new(authenticator).layer(app);
    let listener = tokio::net::TcpListener::bind(loopback).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = ServiceExt::<axum::extract::Request>::into_make_service(protected);
        let _ = axum::serve(listener, service).await;
    });

    let user_token = issuer.sign(&issuer.claims_for(&issuer.clients()[1], &[]));
    let http = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for (label, path, token) in [
        ("open route, no token", "/hello", None),
        ("protected route, no token", "/me", None),
        ("protected route, user token", "/me", Some(&user_token)),
        (
            "admin route, user token",
            "/admin/report",
            Some(&user_token),
        ),
    ] {
        let mut request = http.get(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        outcomes.push((label, status, response.text().await?));
    }
    Ok(outcomes)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    for (label, status, body) in demo().await? {
        println!("{label}: {status} {body}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_layer_admits_and_refuses_like_the_gateway() {
        let outcomes = super::demo().await.expect("demo runs");
        let statuses: Vec<u16> = outcomes.iter().map(|(_, status, _)| *status).collect();
        assert_eq!(statuses, [200, 401, 200, 403], "{outcomes:#?}");
        assert!(outcomes[2].2.starts_with("hello "), "{outcomes:#?}");
        assert!(outcomes[3].2.contains("AdminRoleMissing"), "{outcomes:#?}");
    }
}
