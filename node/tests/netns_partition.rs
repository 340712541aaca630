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
//!
//! The namespace, veth, bridge and iptables plumbing is in `common/netns.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::netns::{Net, delete_leftovers, host_network, must, skip, unsupported};

const NODES: usize = 3;
const RESP_PORT: u16 = 6379;
const QUIC_PORT: u16 = 7379;
/// Every key the test compares across nodes.
const KEYS: [&str; 7] = ["c", "w", "s", "k1", "d1", "d2", "doc"];

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
            // Replication may drop the key between TYPE and GET: a nil then differs from every
            // value, and the next poll looks again.
            _ => redis::cmd("GET")
                .arg(key)
                .query::<Option<String>>(con)?
                .unwrap_or_else(|| "(nil after TYPE)".to_owned()),
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
    let net = match Net::create(NODES) {
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
