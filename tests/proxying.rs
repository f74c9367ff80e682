//! Streaming, header rewriting, client disconnects and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{TestEnv, client, config_for, eventually, start_issuer};

#[tokio::test]
async fn a_200_mb_upload_streams_through_byte_for_byte() {
    let env = TestEnv::start().await;
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 200;
    let mut hasher = Sha256::new();
    let chunks: Vec<Bytes> = (0..CHUNKS)
        .map(|i| {
            let chunk: Vec<u8> = (0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
            hasher.update(&chunk);
            Bytes::from(chunk)
        })
        .collect();
    let expected = format!("{:x}", hasher.finalize());
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let response = env
        .http
        .post(env.url("/stub/digest"))
        .bearer_auth(env.token(None))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.expect("json");
    assert_eq!(json["bytes"], (CHUNK * CHUNKS) as u64);
    assert_eq!(
        json["sha256"], expected,
        "the upstream saw exactly the bytes sent"
    );
}

#[tokio::test]
async fn the_upstream_receives_bytes_before_the_upload_finishes() {
    // Proof of streaming: the sender waits for the stub to count bytes before sending the
    // rest; a gateway that buffered the whole body would deadlock here.
    let env = TestEnv::start().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let request = env
        .http
        .post(env.url("/stub/sink"))
        .bearer_auth(env.token(None))
        .body(body)
        .send();
    let upload = tokio::spawn(request);
    tx.send(Ok(Bytes::from(vec![7u8; 4 << 20])))
        .await
        .expect("first chunk");
    let upstream = &env.upstream;
    eventually(Duration::from_secs(10), || upstream.sink_bytes() >= 4 << 20).await;
    tx.send(Ok(Bytes::from(vec![8u8; 1 << 20])))
        .await
        .expect("second chunk");
    drop(tx);
    let response = upload.await.expect("task").expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.sink_bytes(), 5 << 20);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_client_disconnect_mid_upload_aborts_the_upstream_request() {
    let env = TestEnv::start().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let upload = tokio::spawn(
        env.http
            .post(env.url("/stub/sink"))
            .bearer_auth(env.token(None))
            .body(body)
            .send(),
    );
    tx.send(Ok(Bytes::from(vec![1u8; 1 << 20])))
        .await
        .expect("chunk");
    let upstream = &env.upstream;
    eventually(Duration::from_secs(10), || upstream.sink_bytes() > 0).await;
    upload.abort();
    drop(tx);
    eventually(Duration::from_secs(10), || upstream.aborted_uploads() == 1).await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_set() {
    let env = TestEnv::start().await;
    let auth = format!("Bearer {}", env.token(None));
    let response = env
        .raw(
            "GET",
            "/stub/echo-headers",
            &[
                ("authorization", &auth),
                ("host", "halo.example.com"),
                ("connection", "keep-alive, x-drop-me"),
                ("x-drop-me", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic abc"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "websocket"),
                ("x-http-method-override", "DELETE"),
                ("x-forwarded-for", "6.6.6.6"),
                ("forwarded", "for=6.6.6.6"),
                ("x-request-id", "req-123"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("x-custom", "kept"),
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let headers = &response.json()["headers"];
    for gone in [
        "x-drop-me",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
        "x-http-method-override",
        "forwarded",
    ] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} must not be forwarded: {headers}"
        );
    }
    assert_eq!(
        headers["x-forwarded-for"][0], "127.0.0.1",
        "client-supplied XFF replaced (untrusted peer)"
    );
    assert_eq!(headers["x-forwarded-proto"][0], "http");
    assert_eq!(headers["x-forwarded-host"][0], "halo.example.com");
    assert_eq!(
        headers["host"][0],
        env.upstream.addr().to_string(),
        "Host is the upstream's authority"
    );
    assert_eq!(headers["via"][0], "1.1 halo-gateway");
    assert_eq!(headers["x-request-id"][0], "req-123");
    assert_eq!(
        headers["traceparent"][0],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(headers["x-custom"][0], "kept");
    assert!(
        headers["authorization"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("Bearer "),
        "ForwardAuthorization defaults to true"
    );
    assert_eq!(
        response.headers["x-request-id"], "req-123",
        "request id echoed"
    );
}

#[tokio::test]
async fn trusted_proxies_extend_x_forwarded_for() {
    let env = TestEnv::with_settings(&[("Gateway__TrustedProxies__0", "127.0.0.0/8")]).await;
    let auth = format!("Bearer {}", env.token(None));
    let response = env
        .raw(
            "GET",
            "/stub/echo-headers",
            &[
                ("authorization", &auth),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
    let headers = &response.json()["headers"];
    assert_eq!(headers["x-forwarded-for"][0], "203.0.113.7, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"][0], "https");
}

#[tokio::test]
async fn authorization_is_dropped_when_forward_authorization_is_false() {
    let env = TestEnv::with_settings(&[("Gateway__ForwardAuthorization", "false")]).await;
    let response = env.get("/stub/echo-headers", Some(&env.token(None))).await;
    let json: serde_json::Value = response.json().await.expect("json");
    assert!(json["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn response_hop_by_hop_headers_are_stripped() {
    let env = TestEnv::start().await;
    let response = env
        .raw(
            "GET",
            "/stub/hop-headers",
            &[("authorization", &format!("Bearer {}", env.token(None)))],
        )
        .await;
    assert_eq!(response.status, 200);
    assert!(response.headers.get("x-upstream-hop").is_none());
    assert!(response.headers.get("keep-alive").is_none());
    assert!(response.headers.get("proxy-connection").is_none());
    assert!(
        response.headers.get("proxy-authenticate").is_none(),
        "RFC 9110 §11.7.1: for the next hop only"
    );
    assert!(
        response.headers.get("proxy-authentication-info").is_none(),
        "RFC 9110 §11.7.3: for the next hop only"
    );
    assert_eq!(response.headers["x-end-to-end"], "kept");
}

#[tokio::test]
async fn a_file_rebuild_comes_back_byte_identical() {
    let env = TestEnv::start().await;
    let content: Vec<u8> = (0..(5 << 20)).map(|i: u32| (i % 253) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.clone()).file_name("report.pdf"),
    );
    let response = env
        .http
        .post(env.url("/api/v1/rebuild/file"))
        .bearer_auth(env.token(None))
        .multipart(form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .contains("report.pdf")
    );
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.expect("chunk"));
    }
    assert!(received == content, "rebuilt bytes differ");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    let url = env.url("/stub/slow?ms=700");
    let http = env.http.clone();
    let in_flight = tokio::spawn(async move {
        http.get(url)
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Shut down only once the request is in the gateway.
    let metrics = env.gateway.metrics.clone();
    eventually(Duration::from_secs(5), || metrics.inflight.get() == 1).await;
    let TestEnv {
        gateway,
        issuer: _issuer,
        upstream: _upstream,
        ..
    } = env;
    let public = gateway.public_addr;
    gateway.shutdown().await;
    assert_eq!(in_flight.await.expect("task").expect("completed"), 200);
    assert!(
        tokio::net::TcpStream::connect(public).await.is_err(),
        "the listener is closed"
    );
}

/// A raw HTTP/1.1 upstream that counts the connections it accepts (and those still open) and
/// answers each request with a small keep-alive response; with `one_per_connection` it closes every connection after
/// its first answer without saying so (as an upstream does when its keep-alive timeout fires).
struct CountingUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn counting_upstream(one_per_connection: bool) -> CountingUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (counter, open_counter) = (accepted.clone(), open.clone());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            open_counter.fetch_add(1, Ordering::SeqCst);
            let open = open_counter.clone();
            tokio::spawn(async move {
                let _closed = CountsDown(open);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    // GET requests only: a head without a body ends at the blank line.
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() || one_per_connection {
                            return;
                        }
                    }
                }
            });
        }
    });
    CountingUpstream {
        addr,
        accepted,
        open,
        task,
    }
}

/// Decrements the open-connection count when a connection's task ends.
struct CountsDown(Arc<AtomicUsize>);

impl Drop for CountsDown {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends `count` GETs one after the other over one keep-alive client connection through a
/// gateway in front of `upstream`, each answered 200 `ok`; returns the upstream connections
/// accepted and those open a moment later (polled up to 2 s for `open_expected`), the gateway
/// still running.
async fn sequential_gets(
    upstream: &CountingUpstream,
    count: usize,
    extra: &[(&str, &str)],
    open_expected: usize,
) -> (usize, usize) {
    let issuer = start_issuer().await;
    let config = config_for(issuer.url(), &format!("http://{}", upstream.addr), extra);
    let gateway = halo_gateway::start(&config).await.expect("gateway starts");
    let token = issuer.token_for(&issuer.clients()[1]);
    let client = client();
    let url = format!("http://{}/api/v1/policies", gateway.public_addr);
    for i in 0..count {
        let response = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.text().await.expect("body"), "ok");
    }
    let mut open = upstream.open.load(Ordering::SeqCst);
    for _ in 0..200 {
        if open == open_expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        open = upstream.open.load(Ordering::SeqCst);
    }
    drop(gateway);
    (upstream.accepted.load(Ordering::SeqCst), open)
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let upstream = counting_upstream(false).await;
    assert_eq!(
        sequential_gets(&upstream, 20, &[], 1).await,
        (1, 1),
        "one client connection's requests go over one kept-alive upstream connection, kept open"
    );
}

#[tokio::test]
async fn no_idle_upstream_connection_is_kept_beyond_the_setting() {
    let upstream = counting_upstream(false).await;
    let setting = [("Gateway__UpstreamMaxIdleConnections", "0")];
    assert_eq!(
        sequential_gets(&upstream, 5, &setting, 0).await,
        (5, 0),
        "with none kept idle, each request has a connection of its own, closed after it"
    );
}

#[tokio::test]
async fn an_upstream_closing_idle_connections_fails_no_request() {
    let upstream = counting_upstream(true).await;
    assert_eq!(
        sequential_gets(&upstream, 20, &[], 0).await.0,
        20,
        "a closed connection is never reused"
    );
}
