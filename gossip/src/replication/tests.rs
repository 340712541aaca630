//! Unit tests of the replicator: events in, effects out, on a hand-driven message pump.

use std::collections::BTreeMap;

use crdt::{Hlc, NodeId, Timestamp, Value};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::wire::Message;
use super::*;
use crate::membership::{LocalStatus, MemberEvent};

struct Node {
    r: Replicator,
    replica: MemReplica,
    hlc: Hlc,
}

/// Decides whether a message `(from, to, message)` is lost.
type DropFilter = Box<dyn FnMut(NodeId, NodeId, &Message) -> bool>;

/// Nodes connected by an instant, lossless network (unless a filter drops messages).
struct Net {
    nodes: BTreeMap<NodeId, Node>,
    now: u64,
    /// Every message delivered: (from, to, message).
    log: Vec<(NodeId, NodeId, Message)>,
    drop_if: DropFilter,
}

fn config() -> ReplicationConfig {
    ReplicationConfig {
        leaf_bits: 8,
        tombstone_gc: true,
        tombstone_gc_period_ms: 1_000,
        tombstone_gc_grace_ms: 2_000,
        ..ReplicationConfig::default()
    }
}

fn up(id: u64) -> MemberEvent {
    MemberEvent::Up {
        node_id: NodeId(id),
        addr: ([127, 0, 0, 1], 7000).into(),
        generation: 1,
    }
}

fn down(id: u64) -> MemberEvent {
    MemberEvent::Down {
        node_id: NodeId(id),
        generation: 1,
    }
}

impl Net {
    fn new(ids: &[u64]) -> Net {
        Net::with_config(ids, config())
    }

    fn with_config(ids: &[u64], config: ReplicationConfig) -> Net {
        let nodes = ids
            .iter()
            .map(|&id| {
                let me = NodeId(id);
                let mut hlc = Hlc::new(me, 60_000);
                let clock = hlc.now(1_000);
                let r = Replicator::new(me, config.clone(), SmallRng::seed_from_u64(id), 0, clock)
                    .unwrap();
                (
                    me,
                    Node {
                        r,
                        replica: MemReplica::new(8),
                        hlc,
                    },
                )
            })
            .collect();
        Net {
            nodes,
            now: 0,
            log: Vec::new(),
            drop_if: Box::new(|_, _, _| false),
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Every node learns that every other is up and the node itself is active.
    fn connect_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().map(|n| n.0).collect();
        for &a in &ids {
            let now = self.now;
            let n = self.node(a);
            n.r.handle_member_event(
                &mut n.replica,
                &MemberEvent::Local(LocalStatus::Active),
                now,
            );
            for &b in ids.iter().filter(|&&b| b != a) {
                n.r.handle_member_event(&mut n.replica, &up(b), now);
            }
        }
        self.settle();
    }

    fn event(&mut self, at: u64, event: MemberEvent) {
        let now = self.now;
        let n = self.node(at);
        n.r.handle_member_event(&mut n.replica, &event, now);
    }

    /// A local write on `id`, submitted like the driver does.
    fn write(
        &mut self,
        id: u64,
        key: &[u8],
        f: impl FnOnce(&mut Value, Timestamp) -> Option<Value>,
    ) {
        let now = self.now;
        let n = self.node(id);
        let ts = n.hlc.now(1_000 + now);
        let delta = n.replica.write(key, |v| f(v, ts));
        if let Some(delta) = delta {
            n.r.submit_delta(key.to_vec(), delta, ts, now);
        }
    }

    /// Delivers messages until none is left; every node samples its clock first.
    fn settle(&mut self) {
        loop {
            let now = self.now;
            let mut sent = Vec::new();
            for (&id, n) in &mut self.nodes {
                let clock = n.hlc.now(1_000 + now);
                n.r.set_clock(clock, now);
                while let Some(Effect::Send { to, bytes }) = n.r.poll_effect() {
                    sent.push((id, to, bytes));
                }
            }
            if sent.is_empty() {
                return;
            }
            for (from, to, bytes) in sent {
                let message = Message::decode(&bytes, &config()).unwrap();
                if (self.drop_if)(from, to, &message) {
                    continue;
                }
                self.log.push((from, to, message));
                if let Some(n) = self.nodes.get_mut(&to) {
                    n.r.handle_message(&mut n.replica, from, &bytes, now)
                        .unwrap();
                }
            }
        }
    }

    /// Advances time in `step` increments, running timers and delivering messages.
    fn run(&mut self, ms: u64, step: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += step;
            let now = self.now;
            for n in self.nodes.values_mut() {
                if n.r.poll_timeout().is_some_and(|t| t <= now) {
                    n.r.handle_timeout(&mut n.replica, now);
                }
            }
            self.settle();
        }
    }

    fn synced_at(&mut self, at: u64, of: u64) -> Option<Timestamp> {
        self.node(at)
            .r
            .peers()
            .into_iter()
            .find(|p| p.node_id == NodeId(of))
            .and_then(|p| p.synced_at)
    }

    fn count(&self, pred: impl Fn(&Message) -> bool) -> usize {
        self.log.iter().filter(|(_, _, m)| pred(m)).count()
    }
}

fn set(v: &mut Value, ts: Timestamp, x: &[u8]) -> Option<Value> {
    Some(v.set_register(ts, x))
}

#[test]
fn equal_replicas_exchange_only_the_root() {
    let mut net = Net::new(&[1, 2]);
    net.connect_all();
    for i in 0..200u32 {
        net.write(1, format!("k{i}").as_bytes(), |v, ts| set(v, ts, b"x"));
    }
    net.settle();
    assert_eq!(
        net.node(1).replica.snapshot(),
        net.node(2).replica.snapshot()
    );
    net.log.clear();
    let in_sync_before = net.node(1).r.metrics().ae_rounds_in_sync;
    net.event(1, up(2));
    net.event(2, up(1));
    net.settle();
    let ae = net.count(|m| m.session().is_some());
    let roots = net.count(|m| {
        matches!(
            m,
            Message::AeStart { .. } | Message::AeAccept { in_sync: true, .. }
        )
    });
    assert_eq!(ae, 4, "two sessions of two messages: {:?}", net.log);
    assert_eq!(roots, 4);
    let in_sync = net.node(1).r.metrics().ae_rounds_in_sync - in_sync_before;
    assert_eq!(
        in_sync, 2,
        "as initiator of one session and responder of the other"
    );
}

#[test]
fn a_single_differing_key_is_found_and_shipped_both_ways() {
    let mut net = Net::new(&[1, 2]);
    net.connect_all();
    for i in 0..500u32 {
        net.write(1, format!("k{i}").as_bytes(), |v, ts| set(v, ts, b"x"));
    }
    net.settle();
    // Divergence that deltas never carried: written straight into each replica.
    let ts1 = net.node(1).hlc.now(5_000);
    net.node(1)
        .replica
        .write(b"k7", |v| Some(v.set_register(ts1, b"from-1")));
    let ts2 = net.node(2).hlc.now(5_000);
    net.node(2)
        .replica
        .write(b"only-on-2", |v| Some(v.set_register(ts2, b"y")));
    net.log.clear();
    net.event(1, up(2));
    net.settle();
    assert_eq!(
        net.node(1).replica.snapshot(),
        net.node(2).replica.snapshot()
    );
    let pages: usize = net
        .log
        .iter()
        .map(|(_, _, m)| match m {
            Message::AeKeys { pages, .. } => pages.len(),
            _ => 0,
        })
        .sum();
    assert!(pages <= 2, "only the differing buckets are listed: {pages}");
    let shipped: Vec<(usize, usize)> = net
        .log
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::AeStates { states, want, .. } => Some((states.len(), want.len())),
            _ => None,
        })
        .collect();
    // The differing key goes both ways (neither side knows whose state is larger), plus the
    // key only node 2 has.
    assert_eq!(shipped, vec![(1, 2)], "one state pushed, two wanted");
    let replied: Vec<usize> = net
        .log
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::AeStatesReply { states, .. } => Some(states.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        replied,
        vec![1],
        "node 2's k7 merged into node 1's equals it: not sent back"
    );
    assert_eq!(net.node(1).r.metrics().ae_keys_repaired, 1);
    assert_eq!(net.node(2).r.metrics().ae_keys_repaired, 1);
}

#[test]
fn watermarks_advance_and_a_gap_stalls_synced_at_until_anti_entropy() {
    let config = ReplicationConfig {
        ae_period_ms: 5_000,
        ..config()
    };
    let mut net = Net::with_config(&[1, 2], config);
    net.connect_all();
    let first = net.synced_at(2, 1).expect("anchored by the first session");
    net.run(300, 10);
    let later = net.synced_at(2, 1).unwrap();
    assert!(later > first, "heartbeats advance an idle stream");

    // Lose exactly one batch from 1 to 2.
    let mut lost = false;
    net.drop_if = Box::new(move |from, _, m| {
        let drop = !lost && from == NodeId(1) && matches!(m, Message::Deltas { .. });
        lost |= drop;
        drop
    });
    net.run(10, 10);
    net.write(1, b"a", |v, ts| set(v, ts, b"1"));
    net.run(10, 10);
    net.write(1, b"b", |v, ts| set(v, ts, b"2"));
    net.run(10, 10);
    let stalled = net.synced_at(2, 1).unwrap();
    net.run(500, 10);
    assert_eq!(net.synced_at(2, 1), Some(stalled), "a gap stalls synced_at");
    assert!(net.node(2).replica.get(b"a").is_none());
    assert_eq!(
        net.node(2).r.mode(),
        Mode::Normal,
        "a young gap may be reordering"
    );
    net.run(600, 10);
    assert_eq!(net.node(2).r.mode(), Mode::CatchUp);
    // Anti-entropy at the next period repairs the key and re-anchors the stream.
    net.run(4_000, 10);
    assert!(net.node(2).replica.get(b"a").is_some());
    assert!(net.synced_at(2, 1).unwrap() > stalled);
    assert_eq!(net.node(2).r.mode(), Mode::Normal);
}

#[test]
fn freshness_and_mode_follow_membership() {
    let mut net = Net::new(&[1, 2]);
    assert_eq!(net.node(1).r.mode(), Mode::Normal, "alone");
    assert_eq!(net.node(1).r.staleness_ms(), Some(0));
    net.event(1, up(2));
    assert_eq!(
        net.node(1).r.mode(),
        Mode::CatchUp,
        "up, anti-entropy not done"
    );
    assert_eq!(net.node(1).r.staleness_ms(), None);
    net.event(2, up(1));
    net.settle();
    assert_eq!(net.node(1).r.mode(), Mode::Normal);
    net.event(1, down(2));
    net.drop_if = Box::new(|_, _, _| true);
    assert_eq!(net.node(1).r.mode(), Mode::Degraded);
    net.run(1_000, 100);
    assert!(
        net.node(1).r.staleness_ms().unwrap() >= 900,
        "a down peer's lag grows"
    );
    net.event(
        1,
        MemberEvent::Left {
            node_id: NodeId(2),
            generation: 1,
        },
    );
    assert_eq!(net.node(1).r.mode(), Mode::Normal);
    assert!(net.node(1).r.peers().is_empty());
}

#[test]
fn tombstone_gc_waits_for_every_member_then_drops_everywhere() {
    let mut net = Net::new(&[1, 2, 3]);
    net.connect_all();
    net.write(1, b"k", |v, ts| set(v, ts, b"x"));
    net.settle();
    // Node 3 goes down before the delete and misses it.
    net.event(1, down(3));
    net.event(2, down(3));
    net.drop_if = Box::new(|from, to, _| from == NodeId(3) || to == NodeId(3));
    net.write(1, b"k", |v, _| v.delete());
    net.run(10_000, 50);
    for id in [1, 2] {
        let v = net.node(id).replica.get(b"k").cloned();
        assert!(
            v.is_some_and(|v| v.is_tombstone()),
            "node {id} keeps the tombstone while 3 has not seen it"
        );
    }
    assert!(net.node(3).replica.get(b"k").is_some_and(|v| v.exists()));

    // 3 comes back: anti-entropy gives it the tombstone; after the grace period all drop it.
    net.drop_if = Box::new(|_, _, _| false);
    net.event(1, up(3));
    net.event(2, up(3));
    net.event(3, up(1));
    net.event(3, up(2));
    net.run(12_000, 50);
    for id in [1, 2, 3] {
        assert!(
            net.node(id).replica.get(b"k").is_none(),
            "node {id} dropped the tombstone"
        );
        assert_eq!(net.node(id).r.metrics().tombstones_dropped, 1);
    }
}

#[test]
fn a_member_that_left_does_not_block_gc() {
    let mut net = Net::new(&[1, 2, 3]);
    net.connect_all();
    net.write(1, b"k", |v, ts| set(v, ts, b"x"));
    net.settle();
    net.event(1, down(3));
    net.event(2, down(3));
    net.drop_if = Box::new(|from, to, _| from == NodeId(3) || to == NodeId(3));
    net.write(1, b"k", |v, _| v.delete());
    net.run(3_000, 50);
    assert!(net.node(1).replica.get(b"k").is_some());
    net.event(
        1,
        MemberEvent::Left {
            node_id: NodeId(3),
            generation: 1,
        },
    );
    net.event(
        2,
        MemberEvent::Left {
            node_id: NodeId(3),
            generation: 1,
        },
    );
    net.run(8_000, 50);
    assert!(net.node(1).replica.get(b"k").is_none());
    assert!(net.node(2).replica.get(b"k").is_none());
}

#[test]
fn malformed_messages_are_counted_and_change_nothing() {
    let mut net = Net::new(&[1, 2]);
    net.connect_all();
    let before = net.node(2).replica.snapshot();
    let n = net.node(2);
    assert!(
        n.r.handle_message(&mut n.replica, NodeId(1), b"garbage", 5)
            .is_err()
    );
    let mut bytes = Message::AeDone { session: 1 }.encode();
    bytes.push(0);
    assert!(
        n.r.handle_message(&mut n.replica, NodeId(1), &bytes, 5)
            .is_err()
    );
    assert_eq!(n.r.metrics().messages_malformed, 2);
    assert_eq!(net.node(2).replica.snapshot(), before);
}

#[test]
fn a_restarted_peer_is_trusted_only_after_anti_entropy() {
    let mut net = Net::new(&[1, 2]);
    net.connect_all();
    net.run(300, 10);
    let before = net.synced_at(2, 1).unwrap();
    // Node 1 restarts empty with a new stream; node 2 has not seen it come back yet.
    let clock = net.node(1).hlc.now(10_000);
    let fresh = Replicator::new(
        NodeId(1),
        config(),
        SmallRng::seed_from_u64(99),
        net.now,
        clock,
    )
    .unwrap();
    net.node(1).r = fresh;
    net.node(1).replica = MemReplica::new(8);
    net.event(1, up(2));
    net.drop_if = Box::new(|_, _, m| m.session().is_some());
    net.run(300, 10);
    assert_eq!(
        net.synced_at(2, 1),
        Some(before),
        "heartbeats of an unanchored stream prove nothing"
    );
    net.drop_if = Box::new(|_, _, _| false);
    net.event(
        2,
        MemberEvent::Renewed {
            node_id: NodeId(1),
            addr: ([127, 0, 0, 1], 7000).into(),
            generation: 2,
        },
    );
    net.settle();
    assert!(net.synced_at(2, 1).unwrap() > before);
}

#[test]
fn a_session_whose_peer_vanishes_times_out_and_is_retried() {
    let mut net = Net::new(&[1, 2]);
    net.connect_all();
    let ts = net.node(1).hlc.now(5_000);
    net.node(1)
        .replica
        .write(b"x", |v| Some(v.set_register(ts, b"1")));
    // Node 2 answers the root, then vanishes mid-exchange.
    net.drop_if =
        Box::new(|from, _, m| from == NodeId(2) && !matches!(m, Message::AeAccept { .. }));
    net.event(1, up(2));
    net.settle();
    let failed = net.node(1).r.metrics().ae_rounds_failed;
    let timeout = config().ae_session_timeout_ms;
    net.run(timeout + 100, 50);
    assert!(
        net.node(1).r.metrics().ae_rounds_failed > failed,
        "the session timed out"
    );
    // Back again: the next period repairs the key.
    net.drop_if = Box::new(|_, _, _| false);
    net.run(2 * config().ae_period_ms, 50);
    assert!(net.node(2).replica.get(b"x").is_some());
}
