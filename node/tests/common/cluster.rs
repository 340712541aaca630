//! A cluster of real `crdtkv` processes on loopback: QUIC with mutual TLS, SWIM, anti-entropy.
//!
//! [`Cluster::start`] makes a temporary directory with a cluster CA and one certificate per
//! node (the binary's own `crdtkv cert ca` / `crdtkv cert node`), picks free TCP ports for RESP
//! and metrics and free UDP ports for QUIC ([`pick_port`]), writes one config per node (every node lists every
//! node as a seed, short timings so that failures are noticed in about a second), starts the
//! nodes, and waits until each one sees every other one alive and accepts writes (every start
//! is gated until the node has caught up). Each node is a [`Node`] of the
//! single-node harness, so `raw()`, `kill9()`, `restart()` and `log()` work as there.
//!
//! Fault injection goes through the nodes' own `CLUSTER PARTITION` / `CLUSTER HEAL`. Waits are
//! for conditions, with generous deadlines; on a timeout the panic message carries what every
//! node answered and the tail of every node's log.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{Node, Raw, Reply, run_binary};

/// Deadline of the waits that have no reason to be slow (start, membership, convergence).
pub const WAIT: Duration = Duration::from_secs(30);

/// Ports handed out by [`pick_port`] in this process.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port nobody is bound to right now, for TCP or UDP, below the kernel's ephemeral range
/// (32768 and up on Linux): a cluster test opens many short client connections, whose local
/// ports could otherwise take a picked port before the node binds it. Never the same port
/// twice in one process.
pub fn pick_port(udp: bool) -> u16 {
    let mut rng = rand::rng();
    loop {
        let port = rng.random_range(10_000..32_000);
        if !TAKEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            continue;
        }
        let free = if udp {
            UdpSocket::bind(("127.0.0.1", port)).is_ok()
        } else {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        };
        if free {
            return port;
        }
    }
}

/// A UDP port for a QUIC endpoint ([`pick_port`]).
pub fn free_udp_port() -> u16 {
    pick_port(true)
}

/// `crdtkv cert ca --out dir`.
pub fn make_ca(dir: &Path) {
    let (status, out, err) = run_binary(&["cert", "ca", "--out", &dir.display().to_string()]);
    assert!(status.success(), "crdtkv cert ca failed:\n{out}\n{err}");
}

/// `crdtkv cert node --ca ca --node-id id --out out`.
pub fn make_node_cert(ca: &Path, id: u64, out: &Path) {
    let (status, stdout, err) = run_binary(&[
        "cert",
        "node",
        "--ca",
        &ca.display().to_string(),
        "--node-id",
        &id.to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(
        status.success(),
        "crdtkv cert node failed:\n{stdout}\n{err}"
    );
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with `what` and the
/// last diagnostic `f` produced.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out after {timeout:?} waiting for {what}; last seen:\n{last}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sets `[path] key = value` in `table`, `path` dotted (`cluster.replication`).
fn set_in(table: &mut toml::Table, path: &str, key: &str, value: toml::Value) {
    let mut t = table;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        t = t
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("{part} is not a table"));
    }
    t.insert(key.to_owned(), value);
}

/// How a cluster is configured before it starts.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    overrides: Vec<(String, String, toml::Value)>,
    allow_list: bool,
}

impl ClusterBuilder {
    /// Sets `[path] key = value` in every node's config, over the harness defaults
    /// (`path` dotted, e.g. `cluster.replication`).
    pub fn set(mut self, path: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.overrides
            .push((path.to_owned(), key.to_owned(), value.into()));
        self
    }

    /// Tombstone GC every 200 ms with a 1 s grace, and an 800 ms message timeout (the grace
    /// must outlast any message in flight): deleted keys are collected within a test's time.
    pub fn quick_tombstone_gc(self) -> Self {
        self.set("cluster.replication", "tombstone_gc_period_ms", 200)
            .set("cluster.replication", "tombstone_gc_grace_ms", 1_000)
            .set("cluster.transport", "message_timeout_ms", 800)
    }

    /// Whether nodes get `cluster.allowed_node_ids = [1..=n]` (default yes).
    pub fn allow_list(mut self, on: bool) -> Self {
        self.allow_list = on;
        self
    }

    /// Makes the certificates and configs, starts every node and waits until each sees every
    /// other one alive.
    pub fn start(self) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca");
        make_ca(&ca);
        let n = self.nodes;
        let quic: Vec<u16> = (0..n).map(|_| free_udp_port()).collect();
        let seeds: Vec<toml::Value> = quic
            .iter()
            .map(|p| format!("127.0.0.1:{p}").into())
            .collect();
        let mut nodes = Vec::with_capacity(n);
        let mut metrics = Vec::with_capacity(n);
        for (i, &quic_port) in quic.iter().enumerate() {
            let id = i as u64 + 1;
            let tls = dir.path().join(format!("tls{id}"));
            make_node_cert(&ca, id, &tls);
            let metrics_port = pick_port(false);
            let mut config = base_config(&tls, quic_port, seeds.clone());
            set_in(
                &mut config,
                "cluster",
                "metrics_bind",
                format!("127.0.0.1:{metrics_port}").into(),
            );
            if self.allow_list {
                let ids: Vec<toml::Value> = (1..=n as i64).map(toml::Value::from).collect();
                set_in(&mut config, "cluster", "allowed_node_ids", ids.into());
            }
            for (path, key, value) in &self.overrides {
                set_in(&mut config, path, key, value.clone());
            }
            nodes.push(prepare_node(config));
            metrics.push(metrics_port);
        }
        let mut cluster = Cluster {
            nodes,
            quic,
            metrics,
            dir,
        };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        cluster.wait_all_alive();
        // Every start is gated until the node has caught up with every member.
        for i in 0..n {
            cluster.wait_writable(i);
        }
        cluster
    }
}

/// The config every cluster node starts from: short timings so that a dead or cut peer is
/// noticed within a second or two, and anti-entropy runs every 200 ms.
pub fn base_config(tls_dir: &Path, quic_port: u16, seeds: Vec<toml::Value>) -> toml::Table {
    let mut c = toml::Table::new();
    set_in(&mut c, "log", "level", "info".into());
    set_in(&mut c, "limits", "value_bytes_max", 4_194_304.into());
    set_in(
        &mut c,
        "cluster",
        "bind",
        format!("127.0.0.1:{quic_port}").into(),
    );
    set_in(&mut c, "cluster", "seeds", seeds.into());
    set_in(
        &mut c,
        "cluster",
        "tls_dir",
        tls_dir.display().to_string().into(),
    );
    set_in(&mut c, "cluster", "startup_sync_timeout_ms", 30_000.into());
    for (key, value) in [
        ("ae_period_ms", 200),
        ("heartbeat_period_ms", 100),
        ("gap_repair_after_ms", 500),
    ] {
        set_in(&mut c, "cluster.replication", key, value.into());
    }
    for (key, value) in [
        ("probe_period_ms", 300),
        ("probe_rtt_ms", 150),
        ("suspect_to_down_ms", 1_000),
        ("gossip_period_ms", 100),
        ("announce_down_period_ms", 500),
        ("rejoin_period_ms", 300),
    ] {
        set_in(&mut c, "cluster.membership", key, value.into());
    }
    set_in(&mut c, "cluster.transport", "redial_backoff_ms", 200.into());
    c
}

/// A [`Node`] with `config` written into its own temporary directory (data directory and RESP
/// port added), not started yet.
pub fn prepare_node(mut config: toml::Table) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = pick_port(false);
    set_in(
        &mut config,
        "node",
        "data_dir",
        dir.path().join("data").display().to_string().into(),
    );
    set_in(&mut config, "server", "port", i64::from(port).into());
    let path = dir.path().join("crdtkv.toml");
    std::fs::write(&path, toml::to_string(&config).expect("config serialises")).expect("write");
    Node {
        child: None,
        port,
        dir,
        config: path,
        env: Vec::new(),
        starts: 0,
    }
}

/// One line of `CLUSTER MEMBERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLine {
    /// Node id.
    pub id: u64,
    /// QUIC address.
    pub addr: String,
    /// `myself`, `alive`, `suspect`, `down`, `left` or `unseen`.
    pub state: String,
    /// The `name=value` fields after the state.
    pub fields: BTreeMap<String, String>,
}

/// Parses `CLUSTER MEMBERS`.
pub fn parse_members(text: &str) -> Vec<MemberLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next().and_then(|w| w.parse().ok());
            let addr = words.next().unwrap_or_default().to_owned();
            let state = words.next().unwrap_or_default().to_owned();
            let fields = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            MemberLine {
                id: id.unwrap_or_else(|| panic!("bad CLUSTER MEMBERS line {l:?}")),
                addr,
                state,
                fields,
            }
        })
        .collect()
}

/// Parses `name:value` lines (`CLUSTER INFO`, `INFO`).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `CLUSTER MEMBERS` of the node behind `raw`.
pub fn members(raw: &mut Raw) -> Vec<MemberLine> {
    parse_members(&raw.cmd(&["CLUSTER", "MEMBERS"]).text())
}

/// `CLUSTER INFO` of the node behind `raw`.
pub fn info(raw: &mut Raw) -> BTreeMap<String, String> {
    parse_info(&raw.cmd(&["CLUSTER", "INFO"]).text())
}

/// A key's visible value in a form that compares across nodes: `none`, `string:<value>`,
/// `text:<value>` or `set:<sorted members, one per line>`.
pub fn value_of(raw: &mut Raw, key: &str) -> String {
    let kind = match raw.cmd(&["TYPE", key]) {
        Reply::Simple(s) => s,
        other => panic!("TYPE {key}: {other:?}"),
    };
    match kind.as_str() {
        "none" => "none".into(),
        "set" => match raw.cmd(&["SMEMBERS", key]) {
            Reply::Array(items) | Reply::Set(items) => {
                let mut members: Vec<String> = items.iter().map(Reply::text).collect();
                members.sort();
                format!("set:{}", members.join("\n"))
            }
            other => panic!("SMEMBERS {key}: {other:?}"),
        },
        _ => match raw.cmd(&["GET", key]) {
            // The key may have changed type between TYPE and GET; the caller polls again.
            Reply::Bulk(b) => format!("{kind}:{}", String::from_utf8_lossy(&b)),
            Reply::Null => "none".into(),
            Reply::Error(e) => format!("{kind}:<{e}>"),
            other => panic!("GET {key}: {other:?}"),
        },
    }
}

/// `CRDT.INFO key` without what depends on a replica's history rather than on its state: a
/// text's `runs` count is of its in-memory entries, which merges in different orders split
/// differently (equality and digests use the canonical form, where runs are maximal). Equal on
/// every replica holding the same state.
pub fn crdt_state(raw: &mut Raw, key: &str) -> Reply {
    fn strip(reply: Reply) -> Reply {
        match reply {
            Reply::Array(items) => {
                let is_map = items.len() % 2 == 0
                    && items.iter().step_by(2).all(|k| matches!(k, Reply::Bulk(_)));
                let mut out = Vec::with_capacity(items.len());
                let mut it = items.into_iter();
                if is_map {
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        if k != Reply::bulk("runs") {
                            out.push(k);
                            out.push(strip(v));
                        }
                    }
                } else {
                    out.extend(it.map(strip));
                }
                Reply::Array(out)
            }
            Reply::Map(pairs) => Reply::Map(
                pairs
                    .into_iter()
                    .filter(|(k, _)| *k != Reply::bulk("runs"))
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    strip(raw.cmd(&["CRDT.INFO", key]))
}

/// Extracts the members of a [`value_of`] set.
pub fn set_members(value: &str) -> Vec<String> {
    match value.strip_prefix("set:") {
        Some("") => Vec::new(),
        Some(rest) => rest.lines().map(str::to_owned).collect(),
        None if value == "none" => Vec::new(),
        None => panic!("not a set: {value}"),
    }
}

/// A running cluster.
pub struct Cluster {
    /// The nodes; node `i` (0-based) has node id `i + 1`.
    pub nodes: Vec<Node>,
    /// QUIC (UDP) port of each node.
    pub quic: Vec<u16>,
    /// Metrics (TCP) port of each node.
    pub metrics: Vec<u16>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// A builder for an `n`-node cluster.
    pub fn builder(n: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes: n,
            overrides: Vec::new(),
            allow_list: true,
        }
    }

    /// An `n`-node cluster with the harness defaults, started and fully joined.
    pub fn start(n: usize) -> Cluster {
        Cluster::builder(n).start()
    }

    /// The directory with the CA (`ca/`) and the node certificates (`tls<id>/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster CA directory (ca.pem, ca.key).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The QUIC addresses of every node, as seeds.
    pub fn seeds(&self) -> Vec<toml::Value> {
        self.quic
            .iter()
            .map(|p| format!("127.0.0.1:{p}").into())
            .collect()
    }

    /// Node id of node `i`.
    pub fn id(&self, i: usize) -> u64 {
        i as u64 + 1
    }

    /// A client of node `i`.
    pub fn raw(&self, i: usize) -> Raw {
        self.nodes[i].raw()
    }

    /// A client of every node.
    pub fn raws(&self) -> Vec<Raw> {
        self.nodes.iter().map(Node::raw).collect()
    }

    /// `CLUSTER INFO` of node `i`.
    pub fn info(&self, i: usize) -> BTreeMap<String, String> {
        info(&mut self.raw(i))
    }

    /// `CLUSTER MEMBERS` of node `i`.
    pub fn members(&self, i: usize) -> Vec<MemberLine> {
        members(&mut self.raw(i))
    }

    /// The tail of every node's current log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = node.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "--- node {} log (last {} lines) ---\n{}\n",
                i + 1,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Waits until every running node lists every other node of `group` as alive (and no
    /// member of `group` as anything else).
    pub fn wait_alive_among(&self, group: &[usize]) {
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for("members to see each other alive", WAIT, || {
                let mut report = String::new();
                let mut ok = true;
                for &i in group {
                    let m = self.members(i);
                    for &j in group {
                        let want = if i == j { "myself" } else { "alive" };
                        let id = self.id(j);
                        if !m.iter().any(|l| l.id == id && l.state == want) {
                            ok = false;
                        }
                    }
                    report.push_str(&format!(
                        "node {}:\n{}\n",
                        i + 1,
                        self.raw(i).cmd(&["CLUSTER", "MEMBERS"]).text()
                    ));
                }
                if ok { Ok(()) } else { Err(report) }
            })
        }));
        if let Err(panic) = result {
            eprintln!("{}", self.logs());
            std::panic::resume_unwind(panic);
        }
        eprintln!(
            "nodes {:?} see each other alive after {:?}",
            group.iter().map(|i| i + 1).collect::<Vec<_>>(),
            started.elapsed()
        );
    }

    /// Waits until every node sees every other node alive.
    pub fn wait_all_alive(&self) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.wait_alive_among(&all);
    }

    /// Waits until node `i` has caught up and accepts writes.
    pub fn wait_writable(&self, i: usize) {
        wait_for(&format!("node {} to accept writes", i + 1), WAIT, || {
            let info = self.info(i);
            if info.get("caught_up").map(String::as_str) == Some("1")
                && info.get("writes_accepted").map(String::as_str) == Some("1")
            {
                Ok(())
            } else {
                Err(format!("{info:#?}"))
            }
        });
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Restarts node `i` on its data directory (it answers PING; it may still refuse writes
    /// until it has caught up).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Kills node `i`, empties its data directory (same certificate, same id) and starts it.
    pub fn wipe_and_restart(&mut self, i: usize) {
        self.nodes[i].kill9();
        let data = self.nodes[i].data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).expect("remove the data directory");
        }
        self.nodes[i].spawn();
    }

    /// Splits the cluster into `groups` (0-based node indexes): every node cuts every node
    /// outside its group with `CLUSTER PARTITION`.
    pub fn partition(&self, groups: &[&[usize]]) {
        for group in groups {
            for &i in *group {
                let others: Vec<String> = (0..self.nodes.len())
                    .filter(|j| !group.contains(j))
                    .map(|j| self.id(j).to_string())
                    .collect();
                if others.is_empty() {
                    continue;
                }
                let mut args = vec!["CLUSTER", "PARTITION"];
                args.extend(others.iter().map(String::as_str));
                assert_eq!(
                    self.raw(i).cmd(&args),
                    Reply::Simple("OK".into()),
                    "CLUSTER PARTITION on node {}",
                    i + 1
                );
            }
        }
    }

    /// Every node but `i` cuts node `i` off with `CLUSTER PARTITION` (node `i` itself is not
    /// asked, so it may be down).
    pub fn isolate(&self, i: usize) {
        let id = self.id(i).to_string();
        for j in (0..self.nodes.len()).filter(|&j| j != i) {
            assert_eq!(
                self.raw(j).cmd(&["CLUSTER", "PARTITION", &id]),
                Reply::Simple("OK".into()),
                "CLUSTER PARTITION {id} on node {}",
                j + 1
            );
        }
    }

    /// Undoes [`Cluster::isolate`]: `CLUSTER HEAL` on every node but `i`.
    pub fn end_isolation(&self, i: usize) {
        for j in (0..self.nodes.len()).filter(|&j| j != i) {
            assert_eq!(
                self.raw(j).cmd(&["CLUSTER", "HEAL"]),
                Reply::Simple("OK".into()),
                "CLUSTER HEAL on node {}",
                j + 1
            );
        }
    }

    /// `CLUSTER HEAL` on every node.
    pub fn heal(&self) {
        for i in 0..self.nodes.len() {
            assert_eq!(
                self.raw(i).cmd(&["CLUSTER", "HEAL"]),
                Reply::Simple("OK".into())
            );
        }
    }

    /// What node `i` holds for `keys` ([`value_of`] each).
    pub fn values(&self, i: usize, keys: &[String]) -> Vec<String> {
        let mut raw = self.raw(i);
        keys.iter().map(|k| value_of(&mut raw, k)).collect()
    }

    /// Polls until every node returns the same value for each of `keys`; returns those values
    /// and how long it took.
    pub fn wait_identical(&self, keys: &[String], timeout: Duration) -> (Vec<String>, Duration) {
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for("every node to hold identical values", timeout, || {
                let all: Vec<Vec<String>> = (0..self.nodes.len())
                    .map(|i| self.values(i, keys))
                    .collect();
                if all.windows(2).all(|w| w[0] == w[1]) {
                    return Ok(all.into_iter().next().unwrap_or_default());
                }
                let mut report = String::new();
                for (k, key) in keys.iter().enumerate() {
                    if all.iter().any(|v| v[k] != all[0][k]) {
                        report.push_str(&format!("key {key}:\n"));
                        for (i, v) in all.iter().enumerate() {
                            report.push_str(&format!("  node {}: {}\n", i + 1, short(&v[k])));
                        }
                    }
                }
                Err(report)
            })
        }));
        match result {
            Ok(values) => (values, started.elapsed()),
            Err(panic) => {
                for i in 0..self.nodes.len() {
                    eprintln!(
                        "node {} CLUSTER INFO:\n{}",
                        i + 1,
                        self.raw(i).cmd(&["CLUSTER", "INFO"]).text()
                    );
                }
                eprintln!("{}", self.logs());
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Waits until every node holds the same CRDT state ([`crdt_state`]) of each of `keys`,
    /// not only the same visible values.
    pub fn wait_same_states(&self, keys: &[String]) {
        let mut raws = self.raws();
        wait_for("every node to hold the same CRDT states", WAIT, || {
            for key in keys {
                let states: Vec<Reply> = raws.iter_mut().map(|r| crdt_state(r, key)).collect();
                if !states.windows(2).all(|w| w[0] == w[1]) {
                    return Err(format!(
                        "CRDT.INFO {key}:{}",
                        states
                            .iter()
                            .map(|s| format!("\n  {}", render(s)))
                            .collect::<String>()
                    ));
                }
            }
            Ok(())
        });
    }

    /// Starts a process that is not part of the cluster but tries to join it: `tls_dir` as its
    /// cluster TLS material, every cluster node as a seed, the harness timings.
    /// Its start gate is off, so that it takes writes although it never catches up.
    pub fn start_outsider(&self, tls_dir: &Path) -> (Node, u16) {
        let quic = free_udp_port();
        let mut config = base_config(tls_dir, quic, self.seeds());
        set_in(&mut config, "cluster", "startup_sync_timeout_ms", 0.into());
        let mut node = prepare_node(config);
        node.spawn();
        (node, quic)
    }

    /// `GET /metrics` of node `i`: (status line, body).
    pub fn scrape(&self, i: usize) -> (String, String) {
        http_get(&format!("127.0.0.1:{}", self.metrics[i]), "/metrics")
    }
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample `name` (exactly, labels included) in Prometheus text.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok())?
    })
}

fn short(v: &str) -> String {
    if v.len() > 300 {
        let head: String = v.chars().take(300).collect();
        format!("{}… ({} bytes)", head.replace('\n', ","), v.len())
    } else {
        v.replace('\n', ",")
    }
}

/// A reply as one readable line.
pub fn render(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Reply::Array(items) | Reply::Set(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Reply::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", render(k), render(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}
