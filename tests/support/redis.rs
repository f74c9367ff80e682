//! A real `redis-server` (Debian package `redis-server`) on a free loopback port, for tests of
//! state shared through Redis. Stopped when dropped; [`RedisServer::stop`] and
//! [`RedisServer::restart`] simulate an outage on the same port.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

/// Whether `redis-server` can be run; tests that need it return early (with this message on
/// stderr) when it cannot.
pub fn redis_server_available() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    if !found {
        eprintln!("skipped: redis-server is not on PATH (install the Debian package redis-server)");
    }
    found
}

impl RedisServer {
    /// Starts a server and waits until it answers PING; `None` when `redis-server` is not
    /// installed.
    pub async fn start() -> Option<Self> {
        if !redis_server_available() {
            return None;
        }
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        Some(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data goes with it) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.ping().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh connection, for a test to look at what the gateway stored.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn ping(&self) -> redis::RedisResult<()> {
        let mut connection = self.connection().await?;
        redis::cmd("PING").query_async(&mut connection).await
    }

    /// The keys the gateway wrote matching `pattern` (e.g. `halo-gw:rl:*`).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut connection = self.connection().await.expect("connect to redis");
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut connection)
            .await
            .expect("KEYS")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
