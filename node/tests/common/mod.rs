//! Test harness: real `crdtkv` processes on free ports, and a raw RESP client.
//!
//! [`Node`] starts the binary built by cargo with a generated config file and a temporary data
//! directory, waits until it answers PING, and kills it when dropped. [`Node::kill9`] and
//! [`Node::restart`] crash and restart it on the same data directory and port, for crash
//! tests. [`Raw`] is a blocking TCP client that sends arbitrary bytes and reads RESP2/RESP3
//! replies into [`Reply`] values, so tests can check exact bytes and shapes.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

pub mod resp;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use resp::{Raw, Reply};

/// How long a node may take to answer its first PING (opening RocksDB, first build caches).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `crdtkv` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_crdtkv")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Config keys to set, by section.
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    sections: BTreeMap<String, toml::Table>,
    env: Vec<(String, String)>,
}

impl NodeBuilder {
    /// Sets `[section] key = value`.
    pub fn set(mut self, section: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.sections
            .entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), value.into());
        self
    }

    /// Sets `server.requirepass`.
    pub fn password(self, password: &str) -> Self {
        self.set("server", "requirepass", password)
    }

    /// Sets an environment variable of the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the node and waits until it answers PING.
    pub fn start(self) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut sections = self.sections;
        let node = sections.entry("node".into()).or_default();
        node.insert(
            "data_dir".into(),
            dir.path().join("data").display().to_string().into(),
        );
        let server = sections.entry("server".into()).or_default();
        server.insert("port".into(), i64::from(port).into());
        let log = sections.entry("log".into()).or_default();
        log.entry("level").or_insert_with(|| "info".into());
        let text = toml::to_string(&sections).expect("config serialises");
        let config = dir.path().join("crdtkv.toml");
        std::fs::write(&config, text).expect("write config");
        let mut node = Node {
            child: None,
            port,
            dir,
            config,
            env: self.env,
            starts: 0,
        };
        node.spawn();
        node
    }
}

/// A running `crdtkv` process.
pub struct Node {
    child: Option<Child>,
    /// The RESP port.
    pub port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Node {
    /// A node with the default configuration.
    pub fn start() -> Node {
        Node::builder().start()
    }

    /// A builder for a node with some keys set.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    /// The log of the current run (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("crdtkv-{}.log", self.starts))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn crdtkv"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("crdtkv exited during start ({status}):\n{}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(self.addr()) {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut buf = [0u8; 64];
                // PONG, or NOAUTH when a password is set: either way the node is serving.
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf).map(|n| n > 0).unwrap_or(false)
                {
                    // QUIT and wait for the close: the server unregisters a client before it
                    // closes the socket, so tests that count clients do not see this probe.
                    if s.write_all(b"QUIT\r\n").is_ok() {
                        while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
                    }
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "crdtkv did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A raw client connected to the node.
    pub fn raw(&self) -> Raw {
        Raw::connect(&self.addr())
    }

    /// A client of the `redis` crate.
    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(format!("redis://{}/", self.addr()))
            .and_then(|c| c.get_connection())
            .expect("redis crate connects")
    }

    /// Clients of the `redis` crate, one over RESP2 and one over RESP3 (`?protocol=resp3`),
    /// each with the URL it connected to (for messages, and to tell the protocols apart).
    pub fn redis_connections(&self) -> Vec<(String, redis::Connection)> {
        [
            format!("redis://{}/", self.addr()),
            format!("redis://{}/?protocol=resp3", self.addr()),
        ]
        .into_iter()
        .map(|url| {
            let con = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .unwrap_or_else(|e| panic!("redis crate connects to {url}: {e}"));
            (url, con)
        })
        .collect()
    }

    /// Resident memory of the process (`VmRSS`), from /proc.
    pub fn rss_bytes(&self) -> u64 {
        self.status_bytes("VmRSS")
    }

    /// Virtual memory of the process (`VmSize`): grows with every reservation, even of pages
    /// never touched.
    pub fn vm_size_bytes(&self) -> u64 {
        self.status_bytes("VmSize")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
            * 1024
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process with SIGKILL and reaps it (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the point is that it is not running afterwards.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same data directory, config and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Sends `signal` (a `kill` name such as `TERM`) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("node is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        child.wait().expect("wait for crdtkv")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `crdtkv` with `args` to completion; returns (exit status, stdout, stderr).
pub fn run_binary(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run crdtkv");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A seed for a randomised test: the integer in the environment variable `var` (to replay a
/// run), else one from the clock. Prints nothing: the caller prints the seed with how to
/// replay it.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is after 1970")
                .as_nanos() as u64
        })
}

/// Helpers for the data-command tests.
pub mod data;

/// A cluster of real nodes over QUIC on loopback.
pub mod cluster;

/// Network namespaces, veths, a bridge and iptables for a real partition (needs root).
pub mod netns;
