//! `scripts/cluster` end to end: `up` a 3-node cluster from copies of config/cluster/ with free
//! ports and temporary data, write on both sides of a `partition`, `heal`, and
//! `watch --until-identical` until every node holds the same values; then `down`.
//!
//! The script only needs python3 (3.11 or newer, for tomllib); without it the test says
//! "skipped" and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

// Ports from `pick_port`: never one handed out before in this process, so the nodes' ports
// are distinct (a port bound and released at once may be given out again by the kernel).
use common::cluster::pick_port;

const NODES: u64 = 3;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster")
}

fn unsupported() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import tomllib"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some("python3 has no tomllib (needs Python 3.11 or newer)".into()),
        Err(e) => Some(format!("no python3: {e}")),
    }
}

/// A copy of config/cluster/ on free ports, with its data under a temporary directory; stops
/// the nodes when dropped, even when the test fails.
struct Cluster {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
}

impl Cluster {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_dir = dir.path().join("config");
        std::fs::create_dir(&config_dir).unwrap();
        let ports: Vec<u16> = (0..NODES).map(|_| pick_port(false)).collect();
        let quic: Vec<String> = (0..NODES)
            .map(|_| format!("127.0.0.1:{}", pick_port(true)))
            .collect();
        let repo_configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/cluster");
        for id in 1..=NODES {
            let i = (id - 1) as usize;
            // Start from the example's own file, so the test follows what it says.
            let text = std::fs::read_to_string(repo_configs.join(format!("node{id}.toml")))
                .expect("config/cluster/nodeN.toml");
            let mut cfg: toml::Table = text.parse().expect("example config parses");
            let data = dir.path().join("data");
            let node = cfg["node"].as_table_mut().unwrap();
            node.insert(
                "data_dir".into(),
                data.join(format!("node{id}")).display().to_string().into(),
            );
            cfg["server"]
                .as_table_mut()
                .unwrap()
                .insert("port".into(), i64::from(ports[i]).into());
            let cluster = cfg["cluster"].as_table_mut().unwrap();
            cluster.insert("bind".into(), quic[i].clone().into());
            cluster.insert(
                "seeds".into(),
                toml::Value::Array(quic.iter().cloned().map(Into::into).collect()),
            );
            cluster.insert(
                "tls_dir".into(),
                data.join(format!("tls/node{id}"))
                    .display()
                    .to_string()
                    .into(),
            );
            cluster.remove("metrics_bind");
            // Quick failure detection, so the partition shows in membership within the test.
            let mut membership = toml::Table::new();
            membership.insert("probe_period_ms".into(), 300.into());
            membership.insert("probe_rtt_ms".into(), 100.into());
            membership.insert("suspect_to_down_ms".into(), 500.into());
            membership.insert("rejoin_period_ms".into(), 300.into());
            cluster.insert("membership".into(), membership.into());
            let mut log = toml::Table::new();
            log.insert("level".into(), "info".into());
            cfg.insert("log".into(), log.into());
            std::fs::write(
                config_dir.join(format!("node{id}.toml")),
                toml::to_string(&cfg).unwrap(),
            )
            .unwrap();
        }
        Self { dir, ports }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(script())
            .arg("--config-dir")
            .arg(self.dir.path().join("config"))
            .args(args)
            .current_dir(self.dir.path())
            .env("CRDTKV_BIN", env!("CARGO_BIN_EXE_crdtkv"))
            .output()
            .expect("run scripts/cluster");
        eprintln!(
            "$ scripts/cluster {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs the script and expects success; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "scripts/cluster {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn redis(&self, id: u64) -> redis::Connection {
        let port = self.ports[(id - 1) as usize];
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("data/node{id}.log")))
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--timeout", "5"]);
        if std::thread::panicking() {
            for id in 1..=NODES {
                eprintln!("--- node{id}.log (tail)");
                let log = self.log(id);
                let lines: Vec<&str> = log.lines().collect();
                for line in &lines[lines.len().saturating_sub(30)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn up_partition_write_heal_watch_down() {
    if let Some(why) = unsupported() {
        eprintln!("skipped: {why}");
        return;
    }
    let cluster = Cluster::new();
    let started = Instant::now();

    let out = cluster.ok(&["up", "--timeout", "60"]);
    assert!(out.contains("creating the cluster CA"), "{out}");
    assert!(out.contains("each sees all 3 alive"), "{out}");
    for id in 1..=NODES {
        assert!(
            cluster
                .dir
                .path()
                .join(format!("data/node{id}.pid"))
                .exists()
        );
    }
    // A second `up` finds them running.
    let out = cluster.ok(&["up"]);
    assert!(out.contains("already running"), "{out}");
    let status = cluster.ok(&["status"]);
    assert_eq!(status.matches(" normal ").count(), 3, "{status}");

    let out = cluster.ok(&["partition", "1", "/", "2", "3"]);
    assert!(out.contains("node 1: cut from 2 3"), "{out}");
    assert!(out.contains("node 2: cut from 1"), "{out}");
    assert!(out.contains("node 3: cut from 1"), "{out}");

    let mut n1 = cluster.redis(1);
    let mut n2 = cluster.redis(2);
    let mut n3 = cluster.redis(3);
    let _: i64 = query(&mut n1, &["INCRBY", "visits", "10"]);
    let _: i64 = query(&mut n2, &["INCRBY", "visits", "5"]);
    let _: i64 = query(&mut n1, &["SADD", "tags", "red"]);
    let _: i64 = query(&mut n3, &["SADD", "tags", "blue"]);
    let _: () = query(&mut n2, &["SET", "greeting", "bonjour"]);
    let _: i64 = query(&mut n1, &["TEXT.INSERT", "doc", "0", "hello"]);

    // The partition holds: node 1 keeps its side's values, membership notices the cut.
    let keys = ["visits", "tags", "greeting", "doc"];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = cluster.ok(&["status"]);
        let node1 = status.lines().find(|l| l.starts_with("1 ")).unwrap();
        if node1.contains("isolated") && node1.contains("2:down 3:down") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 never saw 2 and 3 down: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut watch = vec!["watch", "--once"];
    watch.extend(keys);
    let frame = cluster.ok(&watch);
    assert!(
        frame.contains("differing keys: visits, tags, greeting, doc"),
        "{frame}"
    );
    let visits: i64 = query(&mut n1, &["GET", "visits"]);
    assert_eq!(visits, 10);
    // --until-identical gives up while the partition holds.
    let mut until = vec!["watch", "--until-identical", "--timeout", "0.5"];
    until.extend(keys);
    let out = cluster.run(&until);
    assert_eq!(out.status.code(), Some(1), "identical during a partition");

    let out = cluster.ok(&["heal"]);
    assert!(out.contains("healed at"), "{out}");
    assert!(cluster.dir.path().join("data/cluster.healed_at").exists());
    let mut until = vec![
        "watch",
        "--until-identical",
        "--timeout",
        "30",
        "--interval",
        "0.02",
    ];
    until.extend(keys);
    let frame = cluster.ok(&until);
    let line = frame
        .lines()
        .find(|l| l.contains("after heal"))
        .unwrap_or_else(|| panic!("no convergence time: {frame}"));
    assert!(line.starts_with("all nodes identical"), "{frame}");
    eprintln!("scripts/cluster: {line}");

    for con in [&mut n1, &mut n2, &mut n3] {
        let visits: i64 = query(con, &["GET", "visits"]);
        assert_eq!(visits, 15);
        let mut tags: Vec<String> = query(con, &["SMEMBERS", "tags"]);
        tags.sort();
        assert_eq!(tags, ["blue", "red"]);
        let greeting: String = query(con, &["GET", "greeting"]);
        assert_eq!(greeting, "bonjour");
        let doc: String = query(con, &["GET", "doc"]);
        assert_eq!(doc, "hello");
    }
    drop((n1, n2, n3));

    let out = cluster.ok(&["down"]);
    assert!(out.contains("cluster down"), "{out}");
    assert!(!out.contains("SIGKILL"), "a node ignored SIGTERM: {out}");
    for id in 1..=NODES {
        assert!(
            !cluster
                .dir
                .path()
                .join(format!("data/node{id}.pid"))
                .exists()
        );
    }
    let status = cluster.run(&["status"]);
    assert_eq!(status.status.code(), Some(1), "status with every node down");
    eprintln!("whole run: {:?}", started.elapsed());
}
