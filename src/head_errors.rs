//! JSON bodies for the answers hyper's HTTP/1 server writes on its own, before any service
//! sees the request: 431 for a request head over `Gateway__MaxHeaderBytes` or
//! `Gateway__MaxHeaderCount` (RFC 6585 §5), 400 for a head that does not parse.
//!
//! hyper offers no hook for these: it writes `connection: close`, `content-length: 0` and
//! `date` and closes. [`HeadErrorIo`] wraps each public connection and replaces exactly that
//! write, whole, with the same status, the gateway's `{"error","error_description"}` body and
//! the same `date`, so every error the gateway produces has the same shape. Nothing else is
//! touched: a response the service produced always carries more headers (at least its
//! `content-type` or `x-request-id`), so it never matches byte for byte. If a hyper upgrade
//! changes the format, the answers go back to empty bodies, which the tests catch.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::rt::{Read, ReadBufCursor, Write};
use serde_json::json;

/// What hyper writes after its status line, up to the date (hyper 1.x).
const AUTO_HEADERS: &[u8] = b"connection: close\r\ncontent-length: 0\r\n";
/// `date: ` + an IMF-fixdate (29 bytes) + CRLF, then the empty line.
const DATE_LINE_LEN: usize = 6 + 29 + 2;

/// The replacement answers, built once from the configured limits.
#[derive(Debug)]
pub struct HeadErrorReplies {
    replies: Vec<Reply>,
}

#[derive(Debug)]
struct Reply {
    status_line: &'static [u8],
    body: Bytes,
}

impl HeadErrorReplies {
    pub fn new(max_header_bytes: usize, max_header_count: usize) -> Arc<Self> {
        let body = |error: &str, description: String| {
            Bytes::from(json!({ "error": error, "error_description": description }).to_string())
        };
        Arc::new(Self {
            replies: vec![
                Reply {
                    status_line: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
                    body: body(
                        "headers_too_large",
                        format!(
                            "the request line and headers exceed Gateway__MaxHeaderBytes ({max_header_bytes} bytes) or Gateway__MaxHeaderCount ({max_header_count} fields)"
                        ),
                    ),
                },
                Reply {
                    status_line: b"HTTP/1.1 400 Bad Request\r\n",
                    body: body(
                        "invalid_request",
                        "the request line or a header is not valid HTTP/1.1".to_owned(),
                    ),
                },
            ],
        })
    }

    /// The full replacement if `written` is exactly one of hyper's automatic answers.
    fn replace(&self, written: &[u8]) -> Option<Bytes> {
        self.replies.iter().find_map(|reply| {
            let start = reply.status_line.len() + AUTO_HEADERS.len();
            let matches = written.len() == start + DATE_LINE_LEN + 2
                && written.starts_with(reply.status_line)
                && written[reply.status_line.len()..].starts_with(AUTO_HEADERS)
                && written[start..].starts_with(b"date: ")
                && written.ends_with(b"\r\n\r\n");
            if !matches {
                return None;
            }
            let date_line = &written[start..start + DATE_LINE_LEN];
            let mut out = Vec::with_capacity(written.len() + 64 + reply.body.len());
            out.extend_from_slice(reply.status_line);
            out.extend_from_slice(b"connection: close\r\ncontent-type: application/json\r\n");
            out.extend_from_slice(format!("content-length: {}\r\n", reply.body.len()).as_bytes());
            out.extend_from_slice(date_line);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&reply.body);
            Some(Bytes::from(out))
        })
    }
}

/// A public connection whose automatic error answers get JSON bodies.
#[derive(Debug)]
pub struct HeadErrorIo<T> {
    inner: T,
    replies: Arc<HeadErrorReplies>,
    /// A replacement being written: the bytes, how many went out, and the length of hyper's
    /// write it stands for (reported once all of it is out).
    replacing: Option<Box<(Bytes, usize, usize)>>,
}

impl<T> HeadErrorIo<T> {
    pub fn new(inner: T, replies: Arc<HeadErrorReplies>) -> Self {
        Self {
            inner,
            replies,
            replacing: None,
        }
    }
}

impl<T: Write + Unpin> HeadErrorIo<T> {
    fn write_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(replacing) = self.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let (bytes, sent, stands_for) = &mut **replacing;
        while *sent < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        let stands_for = *stands_for;
        self.replacing = None;
        Poll::Ready(Ok(stands_for))
    }
}

impl<T: Read + Unpin> Read for HeadErrorIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for HeadErrorIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none()
            && let Some(reply) = this.replies.replace(buf)
        {
            this.replacing = Some(Box::new((reply, 0, buf.len())));
        }
        if this.replacing.is_some() {
            return this.write_replacement(cx);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            // hyper's automatic answer is a single buffer.
            let mut filled = bufs.iter().filter(|b| !b.is_empty());
            if let (Some(only), None) = (filled.next(), filled.next())
                && let Some(reply) = this.replies.replace(only)
            {
                this.replacing = Some(Box::new((reply, 0, only.len())));
            }
        }
        if this.replacing.is_some() {
            return this.write_replacement(cx);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Mon, 30 Nov 2026 10:34:04 GMT\r\n";

    #[test]
    fn only_hypers_exact_automatic_answers_are_replaced() {
        let replies = HeadErrorReplies::new(65536, 100);
        let auto = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n"
        );
        let replaced = replies.replace(auto.as_bytes()).expect("replaced");
        let text = String::from_utf8(replaced.to_vec()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains(DATE.trim_end()), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"], "headers_too_large");
        let description = json["error_description"].as_str().expect("description");
        assert!(description.contains("Gateway__MaxHeaderBytes (65536 bytes)"));

        let bad = format!(
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n"
        );
        assert!(replies.replace(bad.as_bytes()).is_some());

        // A response the service wrote has more headers, or a body: left alone.
        for other in [
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\nx-request-id: a\r\n{DATE}\r\n"
            ),
            format!("{auto}x"),
            format!(
                "HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n"
            ),
        ] {
            assert!(replies.replace(other.as_bytes()).is_none(), "{other}");
        }
    }
}
