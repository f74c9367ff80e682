//! `halo-gateway serve` as a child process, for what only the binary does: its log on stdout,
//! SIGTERM handling, trace export set up from `OTEL_*`, several replicas side by side.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{client, free_port};

/// What happens to the child's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Kept for [`ServeProcess::stop`]; only for tests that stop the process (a pipe nobody
    /// reads would fill up and block the gateway's log writer).
    Captured,
    /// Dropped.
    Discarded,
}

/// A running `halo-gateway serve`; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` of the public listener.
    pub base: String,
}

impl ServeProcess {
    /// Starts `serve` with only `vars` in its environment (plus both listeners on free loopback
    /// ports) and waits up to 20 s for `/readyz` to answer 200.
    pub async fn start(vars: Vec<(String, String)>, output: Output) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin_listen = format!("127.0.0.1:{}", free_port());
        let stdio = || match output {
            Output::Captured => Stdio::piped(),
            Output::Discarded => Stdio::null(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
            .arg("serve")
            .env_clear()
            .envs(vars)
            .env("Gateway__Listen", &listen)
            .env("Gateway__AdminListen", &admin_listen)
            .stdout(stdio())
            .stderr(stdio())
            .kill_on_drop(true)
            .spawn()
            .expect("serve starts");
        let http = client();
        let readyz = format!("http://{admin_listen}/readyz");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway never ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            base: format!("http://{listen}"),
        }
    }

    /// Stops the process as Kubernetes does (SIGTERM), asserts a graceful exit within 20 s,
    /// and returns what it printed.
    pub async fn stop(self) -> std::process::Output {
        let pid = self.child.id().expect("running").to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(term.expect("kill runs").success());
        let output = tokio::time::timeout(Duration::from_secs(20), self.child.wait_with_output())
            .await
            .expect("exits after SIGTERM")
            .expect("output");
        assert!(
            output.status.success(),
            "graceful exit: {:?}",
            output.status
        );
        output
    }
}
