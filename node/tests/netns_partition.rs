//! A real network partition: three `crdtkv` nodes, each in its own Linux network namespace,
//! joined by a bridge; iptables DROP rules inside the namespaces split node 1 from nodes 2 and
//! 3 while clients write on both sides; flushing the rules heals it. The test then waits until
//! every node holds identical values, prints the time from the heal, and checks the merge: no
//! acknowledged increment or add is lost, no acknowledged remove or delete comes back unless a
//! concurrent write on the other side re-added it, the later SET wins, and both sides' text
//! edits survive.
//!
//! Topology (P = this test's pid):
//!
//! ```text
//!   crdtkv-n1-P  eth0 10.77.0.1 ─┐
//!   crdtkv-n2-P  eth0 10.77.0.2 ─┼─ br0 in crdtkv-br-P ─── eth0 10.77.0.100 in crdtkv-c-P
//!   crdtkv-n3-P  eth0 10.77.0.3 ─┘                          (the test's RESP clients)
//! ```
//!
//! Each node runs as `ip netns exec crdtkv-nN-P crdtkv --config ...`, RESP and QUIC bound to
//! its own address. The test's RESP connections are opened by threads that first join the
//! client namespace `crdtkv-c-P` (setns); a socket stays in the namespace it was created in, so
//! the connections can then be used from any thread. The host's network namespace gets no link,
//! address or route (the test checks that `ip -o link` and `ip -o addr` there are the same
//! before and after start-up, and after teardown), and since every run has its own bridge and
//! client namespace, runs at the same time do not collide. The namespaces are deleted when the
//! test ends, also on panic; leftovers of a run that was killed are deleted at the start of the
//! next one.
//!
//! Needs root, `ip` (iproute2) and a working `iptables` (nft or legacy; `.ci/setup` installs
//! them). Without them the test prints "skipped: ..." and passes, unless
//! `CRDTKV_REQUIRE_NETNS=1` is set, in which case it fails. `CRDTKV_NETNS_LOGS=DIR` keeps the
//! nodes' logs in DIR.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

const NODES: usize = 3;
const RESP_PORT: u16 = 6379;
const QUIC_PORT: u16 = 7379;
/// Every key the test compares across nodes.
const KEYS: [&str; 7] = ["c", "w", "s", "k1", "d1", "d2", "doc"];

// ---------------------------------------------------------------------------------------------
// Commands

/// Runs a command; Ok(stdout) on success, Err(what failed, with stderr) otherwise.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(program: &str, args: &[&str]) -> String {
    run(program, args).unwrap_or_else(|e| panic!("{e}"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2)) // effective uid
            == Some("0")
    })
}

/// Why this machine cannot run the test, if it cannot (before any namespace exists).
fn unsupported() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces and iptables)".into());
    }
    if run("ip", &["-V"]).is_err() {
        return Some("no `ip` command (apt-get install iproute2)".into());
    }
    None
}

fn skip(why: &str) {
    if std::env::var("CRDTKV_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("CRDTKV_REQUIRE_NETNS=1 but: {why}");
    }
    eprintln!("skipped: {why}");
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid a namespace made by this test carries (`crdtkv-n1-123`, `crdtkv-br-123`,
/// `crdtkv-c-123`), `Some(None)` for the fixed names an older version might have used
/// (`crdtkv-n1`, `crdtkv-br`), `None` for anything else.
fn owner_pid(name: &str) -> Option<Option<u32>> {
    let rest = name.strip_prefix("crdtkv-")?;
    let (role, pid) = match rest.split_once('-') {
        Some((role, pid)) => (role, Some(pid.parse().ok()?)),
        None => (rest, None),
    };
    let node = role
        .strip_prefix('n')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    (node || role == "br" || role == "c").then_some(pid)
}

/// Deletes the namespaces (and the processes in them) of earlier runs whose test process is
/// gone. Only namespaces: the host's own links are never touched.
fn delete_leftovers() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        match owner_pid(ns) {
            Some(Some(pid)) if pid_alive(pid) => {}
            Some(_) => {
                eprintln!("deleting namespace {ns} left by an earlier run");
                delete_namespace(ns);
            }
            None => {}
        }
    }
}

fn delete_namespace(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// Runs `f` on a new thread that has first joined the network namespace `ns` (made by `ip netns
/// add`); the calling thread, and so the rest of the process, stays where it is. Sockets `f`
/// creates stay in `ns` wherever they are used later.
fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns({path}): {e}"))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The host namespace's links and addresses (`ip -o link`, `ip -o addr` without the address
/// lifetimes, which may count down); this test must leave them as they are.
fn host_network() -> String {
    let links = must("ip", &["-o", "link", "show"]);
    let addrs = must("ip", &["-o", "addr", "show"]);
    let addrs = addrs.lines().map(|l| match l.find("valid_lft") {
        Some(i) => l[..i].trim_end(),
        None => l,
    });
    let mut out = links;
    for a in addrs {
        out.push_str(a);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The network

/// The namespaces, bridge and veths of one run; deleted when dropped.
struct Net {
    pid: u32,
    /// `10.77.0`: every run has its own bridge and client namespace, so no run's addresses are
    /// visible to another's or to the host.
    prefix: String,
    /// Namespaces created so far (deleted on drop).
    namespaces: Vec<String>,
    /// The iptables binary that works in the namespaces.
    iptables: String,
}

impl Net {
    fn node_ns(&self, id: usize) -> String {
        format!("crdtkv-n{id}-{}", self.pid)
    }

    fn bridge_ns(&self) -> String {
        format!("crdtkv-br-{}", self.pid)
    }

    /// Where the test's RESP clients live.
    fn client_ns(&self) -> String {
        format!("crdtkv-c-{}", self.pid)
    }

    fn client_ip(&self) -> String {
        format!("{}.100", self.prefix)
    }

    /// Runs `f` on a thread in the client namespace (see [`in_namespace`]).
    fn in_client_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_namespace(&self.client_ns(), f).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(&self, id: usize) -> String {
        format!("{}.{id}", self.prefix)
    }

    /// Builds the topology; Err(reason) if this machine cannot (what exists is deleted).
    fn create() -> Result<Self, String> {
        let pid = std::process::id();
        let mut net = Self {
            pid,
            prefix: "10.77.0".into(),
            namespaces: Vec::new(),
            iptables: String::new(),
        };
        let br = net.bridge_ns();
        let client = net.client_ns();
        let names: Vec<String> = (1..=NODES)
            .map(|i| net.node_ns(i))
            .chain([br.clone(), client.clone()])
            .collect();
        for ns in names {
            run("ip", &["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        run("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &br, "link", "set", "br0", "up"])?;
        let hosts = (1..=NODES).map(|i| (net.node_ns(i), format!("v{i}"), net.ip(i)));
        let hosts = hosts.chain([(client.clone(), "vc".into(), net.client_ip())]);
        for (ns, port, ip) in hosts {
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &br,
                ],
            )?;
            run(
                "ip",
                &["-n", &br, "link", "set", &port, "master", "br0", "up"],
            )?;
            let addr = format!("{ip}/24");
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        }

        // A thread that joins the client namespace must really be in it.
        let want = std::fs::metadata(format!("/run/netns/{client}"))
            .map(|m| format!("net:[{}]", m.ino()))
            .map_err(|e| format!("/run/netns/{client}: {e}"))?;
        let got = in_namespace(&client, || std::fs::read_link("/proc/thread-self/ns/net"))?
            .map_err(|e| format!("/proc/thread-self/ns/net: {e}"))?;
        if got.to_str() != Some(want.as_str()) {
            return Err(format!(
                "setns into {client}: the thread is in {got:?}, not {want}"
            ));
        }

        // nft or legacy: whichever can add and delete a rule in a node's namespace.
        let ns = net.node_ns(1);
        let probe = format!("{}.254", net.prefix);
        let mut tried = Vec::new();
        for candidate in ["iptables", "iptables-legacy", "iptables-nft"] {
            let rule = ["-d", probe.as_str(), "-j", "DROP"];
            let add: Vec<&str> = ["netns", "exec", &ns, candidate, "-w", "-A", "OUTPUT"]
                .into_iter()
                .chain(rule)
                .collect();
            match run("ip", &add) {
                Ok(_) => {
                    let del: Vec<&str> = ["netns", "exec", &ns, candidate, "-w", "-D", "OUTPUT"]
                        .into_iter()
                        .chain(rule)
                        .collect();
                    run("ip", &del)?;
                    net.iptables = candidate.to_owned();
                    break;
                }
                Err(e) => tried.push(e),
            }
        }
        if net.iptables.is_empty() {
            return Err(format!(
                "no working iptables in a namespace (apt-get install iptables): {}",
                tried.join("; ")
            ));
        }
        Ok(net)
    }

    fn iptables(&self, id: usize, args: &[&str]) {
        let ns = self.node_ns(id);
        let mut full = vec!["netns", "exec", &ns, &self.iptables, "-w"];
        full.extend_from_slice(args);
        must("ip", &full);
    }

    /// Drops every packet between the two groups, both ways, in each node's namespace.
    fn cut(&self, a: &[usize], b: &[usize]) {
        for (side, other) in [(a, b), (b, a)] {
            for &id in side {
                for &peer in other {
                    let peer = self.ip(peer);
                    self.iptables(id, &["-A", "INPUT", "-s", &peer, "-j", "DROP"]);
                    self.iptables(id, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"]);
                }
            }
        }
    }

    /// Flushes every rule.
    fn heal(&self) {
        for id in 1..=NODES {
            self.iptables(id, &["-F", "INPUT"]);
            self.iptables(id, &["-F", "OUTPUT"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            delete_namespace(ns);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The nodes

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fields drop in order: the nodes first, then the network, then their files.
struct Cluster {
    daemons: Vec<Daemon>,
    net: Net,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(net: Net) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = env!("CARGO_BIN_EXE_crdtkv");
        let ca = dir.path().join("tls/ca");
        must(bin, &["cert", "ca", "--out", ca.to_str().unwrap()]);
        let seeds: Vec<toml::Value> = (1..=NODES)
            .map(|i| format!("{}:{QUIC_PORT}", net.ip(i)).into())
            .collect();
        let mut daemons = Vec::new();
        for id in 1..=NODES {
            let tls = dir.path().join(format!("tls/node{id}"));
            must(
                bin,
                &[
                    "cert",
                    "node",
                    "--ca",
                    ca.to_str().unwrap(),
                    "--node-id",
                    &id.to_string(),
                    "--out",
                    tls.to_str().unwrap(),
                ],
            );
            let mut cfg = toml::Table::new();
            let mut node = toml::Table::new();
            node.insert("node_id".into(), (id as i64).into());
            node.insert(
                "data_dir".into(),
                dir.path()
                    .join(format!("node{id}"))
                    .display()
                    .to_string()
                    .into(),
            );
            cfg.insert("node".into(), node.into());
            let mut server = toml::Table::new();
            server.insert("bind".into(), net.ip(id).into());
            server.insert("port".into(), i64::from(RESP_PORT).into());
            cfg.insert("server".into(), server.into());
            // A key's whole state must fit one transport message (as in config/cluster/).
            let mut limits = toml::Table::new();
            limits.insert("value_bytes_max".into(), 4_194_304.into());
            cfg.insert("limits".into(), limits.into());
            let mut cluster = toml::Table::new();
            cluster.insert("bind".into(), format!("{}:{QUIC_PORT}", net.ip(id)).into());
            cluster.insert("seeds".into(), seeds.clone().into());
            cluster.insert("tls_dir".into(), tls.display().to_string().into());
            cluster.insert(
                "allowed_node_ids".into(),
                (1..=NODES as i64)
                    .map(toml::Value::from)
                    .collect::<Vec<_>>()
                    .into(),
            );
            cfg.insert("cluster".into(), cluster.into());
            let mut log = toml::Table::new();
            log.insert("level".into(), "info".into());
            cfg.insert("log".into(), log.into());
            let config = dir.path().join(format!("node{id}.toml"));
            std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
            let log = dir.path().join(format!("node{id}.log"));
            let out = File::create(&log).unwrap();
            let err = out.try_clone().unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", &net.node_ns(id), bin, "--config"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start crdtkv in its namespace");
            daemons.push(Daemon { child, log });
        }
        Self { daemons, net, dir }
    }

    fn addr(&self, id: usize) -> String {
        format!("{}:{RESP_PORT}", self.net.ip(id))
    }

    /// Connects from the client namespace; the connection can be used from any thread.
    fn try_connect(&self, id: usize) -> redis::RedisResult<redis::Connection> {
        let url = format!("redis://{}/", self.addr(id));
        self.net.in_client_ns(move || {
            let client = redis::Client::open(url)?;
            let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
            con.set_read_timeout(Some(Duration::from_secs(10)))?;
            con.set_write_timeout(Some(Duration::from_secs(10)))?;
            Ok(con)
        })
    }

    fn connect(&self, id: usize) -> redis::Connection {
        self.try_connect(id)
            .unwrap_or_else(|e| panic!("connect to node {id} at {}: {e}", self.addr(id)))
    }

    fn check_running(&mut self) {
        for (i, d) in self.daemons.iter_mut().enumerate() {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "node {} exited ({status}):\n{}",
                    i + 1,
                    std::fs::read_to_string(&d.log).unwrap_or_default()
                );
            }
        }
    }

    /// Waits until `pred(id, CLUSTER INFO)` holds on every node; returns how long it took.
    fn wait_info(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(usize, &BTreeMap<String, String>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let mut cons: Vec<Option<redis::Connection>> = (0..NODES).map(|_| None).collect();
        loop {
            self.check_running();
            let mut all = true;
            let mut last = String::new();
            for id in 1..=NODES {
                let con = &mut cons[id - 1];
                if con.is_none() {
                    *con = self.try_connect(id).ok();
                }
                let info = con
                    .as_mut()
                    .and_then(|c| cluster_info(c).ok())
                    .unwrap_or_default();
                if info.is_empty() {
                    cons[id - 1] = None;
                }
                if !pred(id, &info) {
                    all = false;
                    last = format!("node {id}: {info:?}");
                }
            }
            if all {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not after {timeout:?}; {last}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn tail_logs(&self) {
        for (i, d) in self.daemons.iter().enumerate() {
            let log = std::fs::read_to_string(&d.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- node{} log (last 40 lines)", i + 1);
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(keep) = std::env::var_os("CRDTKV_NETNS_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&keep);
            for (i, d) in self.daemons.iter().enumerate() {
                let _ = std::fs::copy(&d.log, keep.join(format!("node{}.log", i + 1)));
            }
        }
        if std::thread::panicking() {
            self.tail_logs();
            eprintln!("(data and logs in {})", self.dir.path().display());
        }
    }
}

fn cluster_info(con: &mut redis::Connection) -> redis::RedisResult<BTreeMap<String, String>> {
    let text: String = redis::cmd("CLUSTER").arg("INFO").query(con)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

fn field(info: &BTreeMap<String, String>, key: &str) -> String {
    info.get(key).cloned().unwrap_or_default()
}

fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// What one node holds for every compared key: TYPE and a canonical value.
fn snapshot(con: &mut redis::Connection) -> redis::RedisResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for key in KEYS {
        let kind: String = redis::cmd("TYPE").arg(key).query(con)?;
        let value = match kind.as_str() {
            "none" => String::new(),
            "set" => {
                let mut members: Vec<String> = redis::cmd("SMEMBERS").arg(key).query(con)?;
                members.sort();
                members.join(",")
            }
            _ => redis::cmd("GET").arg(key).query(con)?,
        };
        out.push((kind, value));
    }
    Ok(out)
}

/// Polls every node until all snapshots are equal; returns the elapsed time and the snapshot.
fn wait_identical(
    cons: &mut [redis::Connection],
    timeout: Duration,
) -> (Duration, Vec<(String, String)>) {
    let start = Instant::now();
    loop {
        let snaps: Vec<_> = cons
            .iter_mut()
            .map(|c| snapshot(c).expect("snapshot"))
            .collect();
        if snaps.windows(2).all(|w| w[0] == w[1]) {
            return (start.elapsed(), snaps.into_iter().next().unwrap());
        }
        if start.elapsed() > timeout {
            let differing: Vec<&str> = KEYS
                .iter()
                .enumerate()
                .filter(|(i, _)| snaps.iter().any(|s| s[*i] != snaps[0][*i]))
                .map(|(_, k)| *k)
                .collect();
            panic!("not identical after {timeout:?}; differing keys {differing:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Writers that run across the cut

#[derive(Default)]
struct Acked {
    /// Sum of the increments the node acknowledged.
    sum: i64,
    /// Members whose SADD the node acknowledged.
    added: Vec<String>,
    /// Commands that failed or got no reply: may or may not have happened.
    unknown_incr: i64,
    unknown_adds: Vec<String>,
}

fn spawn_writer(mut con: redis::Connection, id: usize, stop: Arc<AtomicBool>) -> JoinHandle<Acked> {
    std::thread::spawn(move || {
        let mut acked = Acked::default();
        let mut i: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let by = (i % 7 + 1) as i64;
            match redis::cmd("INCRBY").arg("c").arg(by).query::<i64>(&mut con) {
                Ok(_) => acked.sum += by,
                Err(e) => {
                    eprintln!("writer {id}: INCRBY: {e}");
                    acked.unknown_incr += by;
                }
            }
            let member = format!("n{id}-{i}");
            match redis::cmd("SADD")
                .arg("w")
                .arg(&member)
                .query::<i64>(&mut con)
            {
                Ok(1) => acked.added.push(member),
                Ok(n) => panic!("SADD of the new member {member} answered {n}"),
                Err(e) => {
                    eprintln!("writer {id}: SADD: {e}");
                    acked.unknown_adds.push(member);
                }
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        acked
    })
}

// ---------------------------------------------------------------------------------------------

#[test]
fn partition_by_iptables_and_heal() {
    if let Some(why) = unsupported() {
        skip(&why);
        return;
    }
    delete_leftovers();
    let host_before = host_network();
    let net = match Net::create() {
        Ok(net) => net,
        Err(why) => {
            skip(&why);
            return;
        }
    };
    eprintln!(
        "namespaces crdtkv-{{n1,n2,n3,br,c}}-{}, nodes at {}.1-{NODES}, clients at {} in {}, \
         iptables: {}",
        net.pid,
        net.prefix,
        net.client_ip(),
        net.client_ns(),
        net.iptables
    );
    let mut cluster = Cluster::start(net);
    let up = cluster.wait_info("cluster up", Duration::from_secs(60), |_, i| {
        field(i, "members_alive") == NODES.to_string()
            && field(i, "writes_accepted") == "1"
            && field(i, "replication_mode") == "normal"
    });
    eprintln!("cluster up and in normal mode after {up:?}");
    let host_up = host_network();
    assert_eq!(
        host_before, host_up,
        "the host namespace's links or addresses changed during start-up"
    );
    eprintln!(
        "host namespace unchanged after start-up: {} links, {} addresses, same `ip -o link` and \
         `ip -o addr` as before",
        host_up.lines().filter(|l| !l.contains(" inet")).count(),
        host_up.lines().filter(|l| l.contains(" inet")).count()
    );

    let mut cons: Vec<redis::Connection> = (1..=NODES).map(|id| cluster.connect(id)).collect();

    // Before the cut, seen by everyone.
    let base: i64 = q(&mut cons[0], &["INCRBY", "c", "100"]);
    assert_eq!(base, 100);
    let _: i64 = q(&mut cons[0], &["SADD", "s", "a", "b", "c", "d"]);
    let _: () = q(&mut cons[1], &["SET", "k1", "before"]);
    let _: () = q(&mut cons[2], &["SET", "d1", "x"]);
    let _: () = q(&mut cons[2], &["SET", "d2", "x"]);
    let _: i64 = q(&mut cons[0], &["TEXT.INSERT", "doc", "0", "hello world"]);
    let (t, _) = wait_identical(&mut cons, Duration::from_secs(20));
    eprintln!("initial values on every node after {t:?}");

    // Writers on every node, running across the cut.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=NODES)
        .map(|id| spawn_writer(cluster.connect(id), id, stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // {1} | {2, 3}
    cluster.net.cut(&[1], &[2, 3]);
    let cut_at = Instant::now();
    eprintln!("cut: node 1 | nodes 2 3 (iptables DROP)");

    // Concurrent writes on both sides.
    let (side_a, side_b) = cons.split_at_mut(1);
    let a = &mut side_a[0];
    let (b2, b3) = side_b.split_at_mut(1);
    let (b2, b3) = (&mut b2[0], &mut b3[0]);
    let _: i64 = q(a, &["SREM", "s", "a"]); // concurrent with node 2's SADD a: add wins
    let _: i64 = q(b2, &["SADD", "s", "a"]); // already there: adds a new dot
    let _: i64 = q(a, &["SREM", "s", "b"]); // nobody re-adds b: stays removed
    let _: i64 = q(b3, &["SREM", "s", "c"]); // nobody re-adds c: stays removed
    let _: i64 = q(a, &["SADD", "s", "x"]);
    let _: i64 = q(b3, &["SADD", "s", "y"]);
    let _: i64 = q(a, &["DEL", "d1"]); // nobody writes d1: stays deleted
    let _: i64 = q(a, &["DEL", "d2"]); // concurrent with node 2's SET: the SET survives
    let _: () = q(b2, &["SET", "d2", "new"]);
    let _: i64 = q(a, &["TEXT.INSERT", "doc", "0", "A:"]);
    let _: i64 = q(b3, &["TEXT.INSERT", "doc", "0", "B:"]);
    let _: i64 = q(b3, &["TEXT.DELETE", "doc", "7", "6"]); // "B:hello world" -> "B:hello"
    let _: i64 = q(b3, &["TEXT.INSERT", "doc", "7", "!"]);
    let _: () = q(a, &["SET", "k1", "A"]);
    std::thread::sleep(Duration::from_millis(50));
    let _: () = q(b3, &["SET", "k1", "B"]); // later: wins everywhere

    // Membership sees the cut: node 1 alone, nodes 2 and 3 together.
    cluster.wait_info("peers seen down", Duration::from_secs(30), |id, i| {
        let alive = if id == 1 { "1" } else { "2" };
        field(i, "members_alive") == alive && field(i, "replication_mode") == "degraded"
    });
    eprintln!(
        "membership saw the cut {} ms after it (node 1 alone, 2 and 3 together, all degraded)",
        cut_at.elapsed().as_millis()
    );
    let info1 = cluster_info(&mut cons[0]).unwrap();
    assert_eq!(field(&info1, "membership"), "isolated", "{info1:?}");
    // Each side still has its own view.
    let k1: String = q(&mut cons[0], &["GET", "k1"]);
    assert_eq!(k1, "A");
    let k1: String = q(&mut cons[1], &["GET", "k1"]);
    assert_eq!(k1, "B");
    let doc: String = q(&mut cons[0], &["GET", "doc"]);
    assert_eq!(doc, "A:hello world");
    let doc: String = q(&mut cons[1], &["GET", "doc"]);
    assert_eq!(doc, "B:hello!");

    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let partitioned_for = cut_at.elapsed();

    // Heal.
    cluster.net.heal();
    let healed = Instant::now();
    let (converged, snap) = wait_identical(&mut cons, Duration::from_secs(60));
    cluster.wait_info("members alive again", Duration::from_secs(60), |_, i| {
        field(i, "members_alive") == NODES.to_string()
    });
    let members_back = healed.elapsed();
    cluster.wait_info("replication normal", Duration::from_secs(60), |_, i| {
        field(i, "replication_mode") == "normal"
    });
    let normal = healed.elapsed();
    eprintln!(
        "healed after {} ms of partition: all nodes identical {} ms after the heal; every \
         member alive again by {} ms, replication normal everywhere by {} ms",
        partitioned_for.as_millis(),
        converged.as_millis(),
        members_back.as_millis(),
        normal.as_millis()
    );

    // The merge.
    let value = |key: &str| {
        let i = KEYS.iter().position(|k| *k == key).unwrap();
        snap[i].clone()
    };
    let sum: i64 = acked.iter().map(|a| a.sum).sum();
    let unknown: i64 = acked.iter().map(|a| a.unknown_incr).sum();
    let c: i64 = value("c").1.parse().expect("counter");
    assert!(
        (base + sum..=base + sum + unknown).contains(&c),
        "counter {c}: acknowledged {} (+{unknown} unknown)",
        base + sum
    );
    let w = value("w").1;
    let w: BTreeSet<&str> = w.split(',').filter(|m| !m.is_empty()).collect();
    let mut adds = 0;
    for a in &acked {
        for m in &a.added {
            assert!(w.contains(m.as_str()), "acknowledged SADD w {m} lost");
        }
        adds += a.added.len();
    }
    let possible = adds + acked.iter().map(|a| a.unknown_adds.len()).sum::<usize>();
    assert!(w.len() <= possible, "w has members nobody added");
    assert_eq!(value("s"), ("set".into(), "a,d,x,y".into()), "set s");
    assert_eq!(value("d1"), (String::from("none"), String::new()), "d1");
    assert_eq!(value("d2").1, "new", "d2");
    assert_eq!(value("k1").1, "B", "k1: the later SET wins");
    let doc = value("doc").1;
    assert!(
        doc == "A:B:hello!" || doc == "B:A:hello!",
        "doc: both sides' edits, got {doc:?}"
    );
    eprintln!(
        "merge ok: counter {c} ({} from {} writers' acknowledged increments), {} acknowledged \
         adds, s = {{a,d,x,y}}, d1 deleted, d2 = new, k1 = B, doc = {doc:?}",
        c - base,
        NODES,
        adds
    );
    eprintln!(
        "netns partition: heal-to-identical {} ms",
        converged.as_millis()
    );

    drop(cons);
    drop(cluster);
    assert_eq!(
        host_before,
        host_network(),
        "the host namespace's links or addresses changed by the end of the test"
    );
    eprintln!("host namespace unchanged after teardown");
}
