//! An upstream that answers before it has read the whole upload, as Kestrel does with 413 for
//! a body over its limit: a raw-socket upstream reads 1 MiB of a 64 MiB upload, answers 413 and
//! then either closes at once (its kernel then resets the connection, since upload data is
//! still unread) or keeps reading and counts what still arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{TestEnv, config_for, eventually, start_issuer};

const UPLOAD: usize = 64 << 20;
const READ_BEFORE_ANSWER: usize = 1 << 20;
const PIECE: usize = 64 << 10;
const ANSWER_BODY: &str = r#"{"title":"Request body too large.","status":413}"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum AfterAnswer {
    /// Close with upload data unread (the kernel sends RST).
    Close,
    /// Keep reading to the end and count.
    KeepReading,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    ContentLength,
    Chunked,
    ExpectContinue,
}

struct EarlyUpstream {
    addr: SocketAddr,
    /// Body bytes read after the answer was sent (`KeepReading`).
    after_answer: Arc<AtomicU64>,
    /// The gateway closed the connection (`KeepReading` reached EOF or an error).
    finished: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for EarlyUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn early_upstream(after: AfterAnswer) -> EarlyUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let after_answer = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (counted, done) = (after_answer.clone(), finished.clone());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer_early(stream, after, counted.clone(), done.clone()));
        }
    });
    EarlyUpstream {
        addr,
        after_answer,
        finished,
        task,
    }
}

async fn answer_early(
    mut stream: TcpStream,
    after: AfterAnswer,
    counted: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; PIECE];
    let mut head = Vec::new();
    let mut head_done = false;
    let mut body = 0;
    while body < READ_BEFORE_ANSWER {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if head_done {
            body += n;
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&head, b"\r\n\r\n") {
                head_done = true;
                body += head.len() - end - 4;
            }
        }
    }
    let answer = format!(
        "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nx-halo: early\r\nconnection: close\r\n\r\n{ANSWER_BODY}",
        ANSWER_BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    if after == AfterAnswer::KeepReading {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            counted.fetch_add(n as u64, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
    }
    // `Close`: dropped here with the rest of the upload unread.
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What the client saw: the final response and whether the connection then closed.
#[derive(Debug)]
struct Seen {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Uploads 64 MiB to `/api/v1/rebuild/file` through the gateway while reading what comes
/// back; returns once the gateway has closed the connection.
async fn upload(gateway: SocketAddr, token: &str, framing: Framing) -> Seen {
    let stream = TcpStream::connect(gateway).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let framing_header = match framing {
        Framing::ContentLength => format!("content-length: {UPLOAD}"),
        Framing::Chunked => "transfer-encoding: chunked".to_owned(),
        Framing::ExpectContinue => format!("content-length: {UPLOAD}\r\nexpect: 100-continue"),
    };
    let head = format!(
        "POST /api/v1/rebuild/file HTTP/1.1\r\nhost: {gateway}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/octet-stream\r\n{framing_header}\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.expect("head");
    let mut received = Vec::new();
    if framing == Framing::ExpectContinue {
        // The body goes only after `100 Continue`.
        while find(&received, b"\r\n\r\n").is_none() {
            let mut buf = [0u8; 1024];
            let n = reader.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before answering the expectation");
            received.extend_from_slice(&buf[..n]);
        }
        assert!(
            received.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&received)
        );
        received.drain(..25);
    }
    let chunked = framing == Framing::Chunked;
    // The sender stops at the first error: the gateway may close before it got everything.
    let sender = tokio::spawn(async move {
        let piece = vec![b'x'; PIECE];
        let mut sent = 0;
        while sent < UPLOAD {
            let result = if chunked {
                let mut framed = format!("{PIECE:x}\r\n").into_bytes();
                framed.extend_from_slice(&piece);
                framed.extend_from_slice(b"\r\n");
                writer.write_all(&framed).await
            } else {
                writer.write_all(&piece).await
            };
            if result.is_err() {
                return;
            }
            sent += PIECE;
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n").await;
        }
        // Keep the write half open until the gateway closes the connection.
        std::future::pending::<()>().await;
    });
    let read_all = async {
        let mut buf = vec![0u8; PIECE];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                // A reset after the response still counts as closed.
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the gateway closes the connection after the early answer");
    sender.abort();
    let end = find(&received, b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Seen {
        status,
        head,
        body: received[end + 4..].to_vec(),
    }
}

/// The embedded issuer and a gateway in front of `upstream`.
struct Gateway {
    _issuer: halo_gateway::dev::issuer::Issuer,
    running: halo_gateway::server::RunningGateway,
    token: String,
}

async fn gateway_before(upstream: &EarlyUpstream) -> Gateway {
    let issuer = start_issuer().await;
    let config = config_for(issuer.url(), &format!("http://{}", upstream.addr), &[]);
    let running = halo_gateway::start(&config).await.expect("gateway starts");
    let token = issuer.token_for(&issuer.clients()[1]);
    Gateway {
        _issuer: issuer,
        running,
        token,
    }
}

async fn assert_early_answer_relayed(after: AfterAnswer, framing: Framing) {
    let upstream = early_upstream(after).await;
    let gateway = gateway_before(&upstream).await;
    let seen = upload(gateway.running.public_addr, &gateway.token, framing).await;
    assert_eq!(
        seen.status,
        413,
        "{after:?} {framing:?}: {} {}",
        seen.head,
        String::from_utf8_lossy(&seen.body)
    );
    assert_eq!(seen.header("x-halo"), Some("early"), "{}", seen.head);
    assert_eq!(
        seen.header("connection"),
        Some("close"),
        "the client connection is not reused: {}",
        seen.head
    );
    let length: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert_eq!(length, ANSWER_BODY.len());
    assert_eq!(
        String::from_utf8_lossy(&seen.body),
        ANSWER_BODY,
        "exactly the upstream's body, then the connection closed"
    );
    if after == AfterAnswer::KeepReading {
        let finished = upstream.finished.clone();
        eventually(Duration::from_secs(10), || finished.load(Ordering::SeqCst)).await;
        let forwarded = upstream.after_answer.load(Ordering::SeqCst);
        assert!(
            forwarded < (UPLOAD / 4) as u64,
            "the rest of the upload was forwarded: {forwarded} bytes after the answer"
        );
    }
}

#[tokio::test]
async fn an_early_413_with_content_length_reaches_the_client_and_the_connection_closes() {
    assert_early_answer_relayed(AfterAnswer::Close, Framing::ContentLength).await;
}

#[tokio::test]
async fn an_early_413_to_a_chunked_upload_reaches_the_client_and_the_connection_closes() {
    assert_early_answer_relayed(AfterAnswer::Close, Framing::Chunked).await;
}

#[tokio::test]
async fn an_early_413_after_100_continue_reaches_the_client_and_the_connection_closes() {
    assert_early_answer_relayed(AfterAnswer::Close, Framing::ExpectContinue).await;
}

#[tokio::test]
async fn after_an_early_answer_the_rest_of_the_upload_is_not_forwarded() {
    assert_early_answer_relayed(AfterAnswer::KeepReading, Framing::ContentLength).await;
    assert_early_answer_relayed(AfterAnswer::KeepReading, Framing::Chunked).await;
}

#[tokio::test]
async fn a_normal_upload_keeps_its_connection_open() {
    // Control: the stub reads the whole body before answering, so nothing is "early".
    let env = TestEnv::start().await;
    let response = env
        .http
        .post(env.url("/stub/digest"))
        .bearer_auth(env.token(None))
        .body(vec![1u8; 4 << 20])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("connection").is_none());
}

#[tokio::test]
async fn a_client_that_reads_only_after_sending_everything_still_gets_the_early_answer() {
    // The rest of the upload is drained (bounded), not refused with a reset, so a client that
    // writes its whole body before reading still sees the answer.
    const SMALL_UPLOAD: usize = 8 << 20;
    let upstream = early_upstream(AfterAnswer::Close).await;
    let gateway = gateway_before(&upstream).await;
    let mut stream = TcpStream::connect(gateway.running.public_addr)
        .await
        .expect("connect");
    let head = format!(
        "PUT /api/v1/rebuild/file HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {}\r\n\
         content-length: {SMALL_UPLOAD}\r\n\r\n",
        gateway.token
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&vec![b'x'; SMALL_UPLOAD])
        .await
        .expect("the whole body is accepted");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut received))
        .await
        .expect("the gateway closes the connection")
        .expect("a clean close, no reset");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.ends_with(ANSWER_BODY), "{text}");
}

#[tokio::test]
async fn a_success_answer_streamed_during_the_upload_gets_the_whole_upload() {
    // The stub's rebuild answers as soon as the file part starts and streams it back while it
    // is still arriving: both directions must go on to the end.
    let env = TestEnv::start().await;
    let content: Vec<u8> = (0..(16 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.clone()).file_name("large.pdf"),
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
    assert!(response.headers().get("connection").is_none());
    let received = tokio::time::timeout(Duration::from_secs(60), response.bytes())
        .await
        .expect("the stream completes")
        .expect("body");
    assert!(received == content, "rebuilt bytes differ");
}
