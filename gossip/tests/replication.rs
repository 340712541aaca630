//! Replication over the real stack: three nodes on loopback, each with the QUIC transport,
//! the SWIM membership driver and the replication driver over an in-memory keyspace. Writes of
//! every type converge; a partition made at the transport, with writes on both sides, heals to
//! identical replicas; freshness and mode follow. Waits are for conditions, with generous limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crdt::{Hlc, NodeId, Timestamp, Value};
use gossip::membership::driver::{self as membership_driver, MembershipHandle};
use gossip::membership::{MemberIdentity, Membership, MembershipConfig};
use gossip::replication::driver::{self, ReplicationHandle};
use gossip::replication::{MemReplica, Mode, Replica, ReplicationConfig, Replicator};
use gossip::tls::{CaPem, NodeTls};
use gossip::transport::{Transport, TransportConfig};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const PATIENCE: Duration = Duration::from_secs(30);

/// The in-memory keyspace shared by the test (writes, reads) and the replication task.
#[derive(Clone)]
struct Shared(Arc<Mutex<MemReplica>>);

impl Replica for Shared {
    fn leaf_bits(&self) -> u32 {
        self.0.lock().leaf_bits()
    }
    fn refresh(&mut self, epoch: u64) {
        self.0.lock().refresh(epoch);
    }
    fn leaf_digests(&mut self, out: &mut Vec<u64>) {
        self.0.lock().leaf_digests(out);
    }
    fn bucket_entries(&mut self, bucket: u32, out: &mut Vec<(Vec<u8>, u64)>) {
        self.0.lock().bucket_entries(bucket, out);
    }
    fn state(&mut self, key: &[u8]) -> Option<Value> {
        self.0.lock().state(key)
    }
    fn merge(&mut self, entries: Vec<(Vec<u8>, Value)>) -> usize {
        self.0.lock().merge(entries)
    }
    fn drop_tombstones(&mut self, safe_epoch: u64, limit: usize) -> Vec<(Vec<u8>, Value)> {
        self.0.lock().drop_tombstones(safe_epoch, limit)
    }
}

struct Node {
    id: NodeId,
    transport: Transport,
    _membership: MembershipHandle,
    repl: ReplicationHandle,
    store: Shared,
    hlc: Arc<Mutex<Hlc>>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn start(ca: &CaPem, id: u64, all: &[u64], seeds: Vec<SocketAddr>) -> Node {
    let me = NodeId(id);
    let pem = ca.issue_node(me).unwrap();
    let tls = NodeTls::from_pem(&ca.cert_pem, &pem.cert_pem, &pem.key_pem).unwrap();
    let config = TransportConfig {
        bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        redial_backoff_ms: 200,
        ..TransportConfig::default()
    };
    let (transport, channels) = Transport::bind(config, &tls).unwrap();
    let identity = MemberIdentity::new(
        me,
        transport.local_addr(),
        membership_driver::generation_from_clock(),
    );
    let membership = Membership::new(
        identity,
        MembershipConfig::default(),
        SmallRng::seed_from_u64(id),
        0,
    )
    .unwrap();
    let (membership, events) =
        membership_driver::spawn(membership, transport.clone(), channels.datagrams, seeds);

    let config = ReplicationConfig {
        ae_period_ms: 500,
        ..ReplicationConfig::default()
    };
    let hlc = Arc::new(Mutex::new(Hlc::new(me, 60_000)));
    let clock = hlc.lock().now(wall_ms());
    let mut replicator =
        Replicator::new(me, config.clone(), SmallRng::seed_from_u64(id), 0, clock).unwrap();
    for &other in all {
        replicator.add_member(NodeId(other));
    }
    let store = Shared(Arc::new(Mutex::new(MemReplica::new(config.leaf_bits))));
    let clock_hlc = hlc.clone();
    let repl = driver::spawn(
        replicator,
        store.clone(),
        move || clock_hlc.lock().now(wall_ms()),
        transport.clone(),
        channels.messages,
        events,
    );
    Node {
        id: me,
        transport,
        _membership: membership,
        repl,
        store,
        hlc,
    }
}

impl Node {
    /// A local write, handed to replication as the node does after its commit.
    fn write(&self, key: &str, f: impl FnOnce(&mut Value, Timestamp) -> Option<Value>) {
        let ts = self.hlc.lock().now(wall_ms());
        let delta = self.store.0.lock().write(key.as_bytes(), |v| f(v, ts));
        if let Some(delta) = delta {
            assert!(self.repl.submit_delta(key.as_bytes().to_vec(), delta, ts));
        }
    }

    fn snapshot(&self) -> BTreeMap<Vec<u8>, Value> {
        self.store.0.lock().snapshot()
    }
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn identical(nodes: &[&Node]) -> bool {
    let first = nodes[0].snapshot();
    nodes.iter().all(|n| n.snapshot() == first)
}

fn counter(node: &Node, key: &str) -> Option<i128> {
    match node.store.0.lock().get(key.as_bytes())?.view()? {
        crdt::View::Counter(c) => Some(c),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_partition_and_heal() {
    let ca = CaPem::generate().unwrap();
    let ids = [1, 2, 3];
    let a = start(&ca, 1, &ids, vec![]);
    let seeds = vec![a.transport.local_addr()];
    let b = start(&ca, 2, &ids, seeds.clone());
    let c = start(&ca, 3, &ids, seeds);
    let nodes = [&a, &b, &c];
    wait_for("normal mode everywhere", || {
        nodes.iter().all(|n| n.repl.mode() == Mode::Normal)
    })
    .await;

    // Writes of every type on different nodes converge.
    a.write("reg", |v, ts| Some(v.set_register(ts, b"hello")));
    b.write("cnt", |v, ts| v.incr_by(ts, 5).ok().map(|(d, _)| d));
    c.write("cnt", |v, ts| v.incr_by(ts, 7).ok().map(|(d, _)| d));
    a.write("g", |v, ts| v.gcounter_incr_by(ts, 3).ok().map(|(d, _)| d));
    b.write("set", |v, ts| {
        v.sadd(ts, &[b"x", b"y"]).ok().map(|(d, _)| d)
    });
    c.write("set", |v, _| v.srem(&[b"x"]).ok().and_then(|(d, _)| d));
    wait_for("identical replicas", || identical(&nodes)).await;

    // Replication lag, write to visible on another node (reported, not asserted).
    let mut lags = Vec::new();
    for i in 0..50 {
        let key = format!("lag{i}");
        let t = std::time::Instant::now();
        a.write(&key, |v, ts| Some(v.set_register(ts, b"v")));
        while b.store.0.lock().get(key.as_bytes()).is_none() {
            assert!(t.elapsed() < PATIENCE, "the write never reached b");
            tokio::task::yield_now().await;
        }
        lags.push(t.elapsed());
    }
    lags.sort();
    eprintln!(
        "write-to-visible on a peer (debug build): p50 {:?}, max {:?}",
        lags[25], lags[49]
    );
    assert!(b.repl.metrics().delta_lag.count > 0);

    // Partition {a} | {b, c} at the transport, write on both sides.
    a.transport.partition(&[b.id, c.id]);
    b.transport.partition(&[a.id]);
    c.transport.partition(&[a.id]);
    wait_for("degraded mode on every side", || {
        nodes.iter().all(|n| n.repl.mode() == Mode::Degraded)
    })
    .await;
    a.write("cnt", |v, ts| v.incr_by(ts, 100).ok().map(|(d, _)| d));
    a.write("set", |v, ts| v.sadd(ts, &[b"from-a"]).ok().map(|(d, _)| d));
    b.write("cnt", |v, ts| v.incr_by(ts, 1_000).ok().map(|(d, _)| d));
    c.write("reg", |v, _| v.delete());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counter(&a, "cnt"), Some(112));
    assert_eq!(counter(&c, "cnt"), Some(1_012));

    for n in nodes {
        n.transport.heal();
    }
    wait_for("identical replicas after the heal", || identical(&nodes)).await;
    assert_eq!(counter(&a, "cnt"), Some(1_112), "no increment lost");
    assert!(
        a.store.0.lock().get(b"reg").is_none_or(|v| !v.exists()),
        "the delete won"
    );
    wait_for("normal mode after the heal", || {
        nodes.iter().all(|n| n.repl.mode() == Mode::Normal)
    })
    .await;
    for n in nodes {
        let staleness = n.repl.staleness_ms().expect("every member synced");
        assert!(staleness < 30_000, "staleness {staleness} ms");
        let m = n.repl.metrics();
        assert!(m.ae_rounds_completed > 0);
        assert_eq!(m.messages_malformed, 0);
    }
    assert!(
        nodes
            .iter()
            .map(|n| n.repl.metrics().ae_keys_repaired)
            .sum::<u64>()
            > 0
    );
}
