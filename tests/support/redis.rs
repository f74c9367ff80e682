//! A real `redis-server` (Debian package `redis-server`) on a loopback port, for the tests of
//! shared state; stopped when dropped. Without the binary the tests that need it say so and
//! return early (`.ci/run` installs it).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually_async, free_port};

pub struct RedisServer {
    child: Child,
    url: String,
}

impl RedisServer {
    /// Starts a server without persistence; `None` (with a message) when `redis-server` is
    /// not installed.
    pub async fn start() -> Option<Self> {
        let port = free_port();
        let child = match Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!(
                    "SKIPPED: redis-server not found ({e}); install the Debian package redis-server"
                );
                return None;
            }
        };
        let server = Self {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        };
        let addr = format!("127.0.0.1:{port}");
        eventually_async(Duration::from_secs(10), || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
        })
        .await;
        Some(server)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
