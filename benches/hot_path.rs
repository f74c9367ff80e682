//! Criterion micro-benchmarks of the request hot path.
//!
//! Run with `cargo bench --bench hot_path` (see docs/performance.md). Groups:
//!
//! - `validate/cached_hit`: a token already in the verified-token cache (SHA-256 of the token,
//!   moka lookup, key-still-present check, exp/nbf check).
//! - `validate/fresh_rs256`: a never-seen RS256-2048 token: the pre-checks (decode, strict JSON
//!   parse of header and claims), key lookup, jsonwebtoken's `decode_header` and `decode`
//!   (signature with the pre-parsed key, `Validation`), claim checks. The validator has
//!   `TokenCacheSize = 0`, so nothing is remembered between iterations; a pool of distinct
//!   tokens (unique `jti`) is cycled anyway.
//! - `rsa_baseline/*`: the raw aws-lc-rs RS256 verification of the same token's signing input:
//!   `components_verify` is what jsonwebtoken's verify does per call (`RsaPublicKeyComponents::verify`,
//!   which builds the RSA key from n/e every time), `parsed_verify` is a key parsed once
//!   (`ParsedPublicKey::verify_sig`), which is what the gateway's jsonwebtoken `CryptoProvider`
//!   does with keys parsed at JWKS ingestion: the floor for an RSA check.
//! - `policy/*`: path normalisation and route matching with Halo's default rules.
//! - `headers/rewrite_request`: the request header rewrite for a typical client request.
//!
//! Futures that complete without waiting (every validation here: the key is loaded) are
//! polled once with a no-op waker, so the numbers are not dominated by a runtime's block_on.

// Benchmark set-up panics on failure by design.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::hint::black_box;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use halo_gateway::auth::jwks::Fetcher;
use halo_gateway::auth::keys::KeyStore;
use halo_gateway::auth::policy::Policy;
use halo_gateway::auth::validate::Validator;
use halo_gateway::config::{AspNetEnv, Config};
use halo_gateway::dev::issuer::{Issuer, IssuerOptions};
use halo_gateway::http::path::NormalizedPath;
use halo_gateway::metrics::Metrics;
use halo_gateway::proxy::headers::{ClientInfo, rewrite_request};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Distinct tokens cycled by the fresh-validation benchmark.
const FRESH_POOL: usize = 256;

/// Polls a future once with a no-op waker; falls back to the runtime if it would wait.
fn run_now<F: Future>(rt: &tokio::runtime::Runtime, future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => rt.block_on(future),
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    _issuer: Issuer,
    cached: Arc<Validator>,
    uncached: Arc<Validator>,
    token: String,
    fresh_tokens: Vec<String>,
    n: Vec<u8>,
    e: Vec<u8>,
}

fn validator(rt: &tokio::runtime::Runtime, issuer_url: &str, cache_size: u64) -> Arc<Validator> {
    let env = AspNetEnv::from_vars(
        [
            ("Authentication__Schemes__Bearer__Authority", issuer_url),
            (
                "Authentication__Schemes__Bearer__ValidAudiences__0",
                "api://halo",
            ),
            (
                "Authentication__Schemes__Bearer__RequireHttpsMetadata",
                "false",
            ),
            (
                "Authentication__Schemes__Bearer__TokenCacheSize",
                &cache_size.to_string(),
            ),
            ("Gateway__Upstream", "http://127.0.0.1:9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let config = Config::load_with_env(None, env).expect("bench config");
    let metrics = Arc::new(Metrics::new());
    let fetcher = Fetcher::new(&config.auth, None).expect("fetcher");
    let keys = Arc::new(KeyStore::new(&config.auth, fetcher, metrics.clone()));
    let outcome = rt.block_on(keys.refresh());
    outcome.result.expect("keys load from the embedded issuer");
    Validator::new(&config.auth, keys, metrics)
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let issuer = rt
        .block_on(Issuer::start(
            "127.0.0.1:0".parse().expect("addr"),
            IssuerOptions::default(),
        ))
        .expect("issuer");
    let url = issuer.url().to_owned();
    let cached = validator(&rt, &url, 10_000);
    let uncached = validator(&rt, &url, 0);
    let client = issuer.clients()[0].clone();
    let token = issuer.token_for(&client);
    let fresh_tokens = (0..FRESH_POOL).map(|_| issuer.token_for(&client)).collect();
    let jwks: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("{url}/v1/keys"))
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json")
    });
    let key = &jwks["keys"][0];
    let b64 = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(key[name].as_str().expect("jwk member"))
            .expect("base64url")
    };
    Fixture {
        n: b64("n"),
        e: b64("e"),
        rt,
        _issuer: issuer,
        cached,
        uncached,
        token,
        fresh_tokens,
    }
}

fn bench_validation(c: &mut Criterion) {
    let f = fixture();
    // Warm the cache and make sure both paths accept the tokens.
    run_now(&f.rt, f.cached.validate(&f.token)).expect("cached token valid");
    for t in &f.fresh_tokens {
        run_now(&f.rt, f.uncached.validate(t)).expect("fresh token valid");
    }

    let mut group = c.benchmark_group("validate");
    group.bench_function("cached_hit", |b| {
        b.iter(|| run_now(&f.rt, f.cached.validate(black_box(&f.token))).is_ok())
    });
    group.measurement_time(Duration::from_secs(8));
    let mut i = 0usize;
    group.bench_function("fresh_rs256", |b| {
        b.iter(|| {
            i = (i + 1) % f.fresh_tokens.len();
            run_now(&f.rt, f.uncached.validate(black_box(&f.fresh_tokens[i]))).is_ok()
        })
    });
    group.finish();

    let (message, sig_b64) = f.token.rsplit_once('.').expect("jws");
    let signature = URL_SAFE_NO_PAD.decode(sig_b64).expect("signature");
    let components = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: f.n.as_slice(),
        e: f.e.as_slice(),
    };
    let params = &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256;
    components
        .verify(params, message.as_bytes(), &signature)
        .expect("raw verify");
    let parsed = components.to_parsed_public_key(params).expect("parse key");
    let mut group = c.benchmark_group("rsa_baseline");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("components_verify", |b| {
        b.iter(|| {
            components
                .verify(params, black_box(message.as_bytes()), black_box(&signature))
                .is_ok()
        })
    });
    group.bench_function("parsed_verify", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(message.as_bytes()), black_box(&signature))
                .is_ok()
        })
    });
    group.bench_function("sha256_token", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(f.token.as_bytes()))
        })
    });
    group.finish();
}

fn bench_policy(c: &mut Criterion) {
    let policy = Policy::compile(None).expect("Halo's table compiles");
    let mut group = c.benchmark_group("policy");
    for (name, method, raw) in [
        ("policies_get", Method::GET, "/api/v1/policies"),
        ("license_post", Method::POST, "/api/v1/license"),
        (
            "dotted_escaped",
            Method::GET,
            "/api//v1/./x/../policies/%64efault",
        ),
    ] {
        group.bench_function(format!("normalize_{name}"), |b| {
            b.iter(|| NormalizedPath::parse(black_box(raw)).is_ok())
        });
        let path = NormalizedPath::parse(raw).expect("path");
        group.bench_function(format!("route_{name}"), |b| {
            b.iter(|| {
                policy
                    .route(black_box(&method), black_box(&path))
                    .name
                    .len()
            })
        });
        group.bench_function(format!("normalize_and_route_{name}"), |b| {
            b.iter(|| {
                let path = NormalizedPath::parse(black_box(raw)).expect("path");
                policy.route(&method, &path).name.len()
            })
        });
    }
    group.finish();
}

fn bench_headers(c: &mut Criterion) {
    let mut template = HeaderMap::new();
    for (k, v) in [
        ("host", "gateway.example:8080"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        (
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln",
        ),
        ("x-request-id", "7b1e6a8e-3f0c-4d5e-9d0a-1c2b3d4e5f60"),
        ("x-forwarded-for", "203.0.113.7"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
    ] {
        template.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let client = ClientInfo {
        peer: IpAddr::from([127, 0, 0, 1]),
        trusted: false,
    };
    let mut group = c.benchmark_group("headers");
    group.bench_function("clone_only", |b| {
        b.iter(|| black_box(template.clone()).len())
    });
    group.bench_function("rewrite_request", |b| {
        b.iter(|| {
            let mut headers = template.clone();
            rewrite_request(&mut headers, client, true);
            headers.len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(4));
    targets = bench_validation, bench_policy, bench_headers
}
criterion_main!(benches);
