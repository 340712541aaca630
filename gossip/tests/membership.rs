//! SWIM membership as a sans-IO state machine: members wired by a tiny deterministic in-memory
//! network on virtual time (no sockets, no clock). Every run is seeded; the seed is in every
//! failure message and replays the run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;

use bytes::Bytes;
use crdt::NodeId;
use gossip::Error;
use gossip::membership::{
    Effect, LocalStatus, MemberEvent, MemberIdentity, MemberState, Membership, MembershipConfig,
    Timer,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn addr(id: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16))
}

enum Pending {
    Deliver {
        to: NodeId,
        from: NodeId,
        bytes: Bytes,
    },
    Timer {
        node: NodeId,
        run: u64,
        timer: Timer,
    },
}

struct Node {
    membership: Membership,
    /// Which run of the process this is: timers of a crashed run die with it.
    run: u64,
}

/// The in-memory network: one-way latency of 1 to 5 ms, drops between cut pairs and to
/// stopped nodes, and the sender's node id passed as the authenticated `from`.
struct Sim {
    seed: u64,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    pending: BTreeMap<u64, Pending>,
    nodes: BTreeMap<NodeId, Node>,
    cut: BTreeSet<(NodeId, NodeId)>,
    rng: SmallRng,
    runs: u64,
    /// (time, observer, event)
    log: Vec<(u64, NodeId, MemberEvent)>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        Sim {
            seed,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            runs: 0,
            log: Vec::new(),
        }
    }

    fn push(&mut self, at: u64, item: Pending) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.pending.insert(self.seq, item);
    }

    /// Starts node `id` in `generation` and joins it through `seeds`.
    fn start(&mut self, id: u64, generation: u64, seeds: &[u64]) {
        let identity = MemberIdentity::new(NodeId(id), addr(id), generation);
        let rng = SmallRng::seed_from_u64(self.seed ^ (id << 32) ^ generation);
        let membership =
            Membership::new(identity, MembershipConfig::default(), rng, self.now_ms).unwrap();
        self.runs += 1;
        self.nodes.insert(
            NodeId(id),
            Node {
                membership,
                run: self.runs,
            },
        );
        let seeds: Vec<_> = seeds.iter().map(|&s| (NodeId(s), addr(s))).collect();
        let now = self.now_ms;
        self.with(NodeId(id), |m| m.join(&seeds, now));
    }

    /// Stops node `id` as a crash would: no goodbye, its timers and inbound packets vanish.
    fn crash(&mut self, id: u64) {
        self.nodes.remove(&NodeId(id));
    }

    fn leave(&mut self, id: u64) {
        let now = self.now_ms;
        self.with(NodeId(id), |m| m.leave(now));
    }

    fn split(&mut self, left: &[u64], right: &[u64]) {
        for &a in left {
            for &b in right {
                self.cut.insert((NodeId(a), NodeId(b)));
                self.cut.insert((NodeId(b), NodeId(a)));
            }
        }
    }

    /// Runs `f` on a node's state machine and carries out its effects.
    fn with(&mut self, id: NodeId, f: impl FnOnce(&mut Membership)) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        f(&mut node.membership);
        let run = node.run;
        let mut effects = Vec::new();
        while let Some(effect) = node.membership.poll_effect() {
            effects.push(effect);
        }
        for effect in effects {
            match effect {
                Effect::SendDatagram {
                    to,
                    addr: dst,
                    bytes,
                } => {
                    assert_eq!(dst, addr(to.get()), "seed {}: address of {to}", self.seed);
                    let latency = self.rng.random_range(1..=5);
                    self.push(
                        self.now_ms + latency,
                        Pending::Deliver {
                            to,
                            from: id,
                            bytes,
                        },
                    );
                }
                Effect::ScheduleTimer { after_ms, timer } => {
                    self.push(
                        self.now_ms + after_ms,
                        Pending::Timer {
                            node: id,
                            run,
                            timer,
                        },
                    );
                }
                Effect::Event(event) => self.log.push((self.now_ms, id, event)),
            }
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, seq))) = self.queue.pop() else {
            return false;
        };
        self.now_ms = at;
        let now = at;
        match self.pending.remove(&seq).expect("queued item") {
            Pending::Deliver { to, from, bytes } => {
                if !self.cut.contains(&(from, to)) {
                    self.with(to, |m| {
                        let _ = m.handle_datagram(from, &bytes, now);
                    });
                }
            }
            Pending::Timer { node, run, timer } => {
                if self.nodes.get(&node).is_some_and(|n| n.run == run) {
                    self.with(node, |m| m.handle_timer(timer, now));
                }
            }
        }
        true
    }

    /// Runs until `done` holds, at most `limit_ms` of virtual time; returns the time it took.
    fn run_until(&mut self, what: &str, limit_ms: u64, done: impl Fn(&Sim) -> bool) -> u64 {
        let start = self.now_ms;
        while !done(self) {
            assert!(
                self.step(),
                "seed {}: nothing left to run before {what}",
                self.seed
            );
            assert!(
                self.now_ms - start <= limit_ms,
                "seed {}: {what} not reached within {limit_ms} ms of virtual time",
                self.seed
            );
        }
        self.now_ms - start
    }

    fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while self
            .queue
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= until)
        {
            self.step();
        }
        self.now_ms = until;
    }

    fn state(&self, observer: u64, of: u64) -> Option<(MemberState, u64)> {
        let m = self
            .nodes
            .get(&NodeId(observer))?
            .membership
            .member(NodeId(of))?;
        Some((m.state, m.generation))
    }

    fn running(&self) -> Vec<u64> {
        self.nodes.keys().map(|n| n.get()).collect()
    }

    /// Every running node other than `of` sees `of` in `state` (and `generation`, if given).
    fn all_see(&self, of: u64, state: MemberState, generation: Option<u64>) -> bool {
        self.running().into_iter().filter(|&o| o != of).all(|o| {
            self.state(o, of)
                .is_some_and(|(s, g)| s == state && generation.is_none_or(|want| g == want))
        })
    }

    fn converged(&self) -> bool {
        let running = self.running();
        running.iter().all(|&n| {
            self.nodes[&NodeId(n)].membership.status() == LocalStatus::Active
                && self.all_see(n, MemberState::Alive, None)
        })
    }

    fn observed(&self, observer: u64, pred: impl Fn(&MemberEvent) -> bool) -> bool {
        self.log
            .iter()
            .any(|(_, o, e)| *o == NodeId(observer) && pred(e))
    }
}

fn came_up(event: &MemberEvent, id: u64, want: Option<u64>) -> bool {
    matches!(event, MemberEvent::Up { node_id, generation, .. }
        if *node_id == NodeId(id) && want.is_none_or(|g| g == *generation))
}

const SEEDS: std::ops::Range<u64> = 0..8;
/// Bounds on virtual time. Detection with the defaults takes two probe periods plus
/// `suspect_to_down_ms` in the usual case; the bounds leave room for unlucky probe order.
const JOIN_LIMIT_MS: u64 = 10_000;
const DETECT_LIMIT_MS: u64 = 15_000;

fn five_node_cluster(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    sim.start(1, 100, &[]);
    for id in 2..=5 {
        sim.start(id, 100, &[1]);
    }
    sim.run_until("all five up", JOIN_LIMIT_MS, Sim::converged);
    sim
}

#[test]
fn members_join_through_one_seed_and_all_see_each_other_up() {
    for seed in SEEDS {
        let sim = five_node_cluster(seed);
        for observer in 1..=5u64 {
            let members: Vec<_> = sim.nodes[&NodeId(observer)].membership.members().collect();
            assert_eq!(members.len(), 4, "seed {seed}: node {observer}");
            for m in members {
                assert_eq!(m.addr, addr(m.node_id.get()), "seed {seed}");
                assert_eq!(m.generation, 100, "seed {seed}");
            }
            for other in (1..=5u64).filter(|o| *o != observer) {
                assert!(
                    sim.observed(observer, |e| came_up(e, other, None)),
                    "seed {seed}: node {observer} never reported {other} up"
                );
            }
        }
    }
}

#[test]
fn a_crashed_member_is_declared_down_then_rejoins_with_a_renewed_identity() {
    for seed in SEEDS {
        let mut sim = five_node_cluster(seed);
        sim.crash(3);
        let took = sim.run_until("3 down everywhere", DETECT_LIMIT_MS, |s| {
            s.all_see(3, MemberState::Down, Some(100))
        });
        eprintln!("seed {seed}: crash of 3 detected by all in {took} ms of virtual time");
        assert!(
            took >= 2_000,
            "seed {seed}: down after {took} ms, before any suspicion could expire"
        );
        for observer in [1, 2, 4, 5] {
            assert!(
                sim.observed(observer, |e| *e
                    == MemberEvent::Down {
                        node_id: NodeId(3),
                        generation: 100
                    }),
                "seed {seed}"
            );
            assert!(
                sim.nodes[&NodeId(observer)].membership.is_active(),
                "seed {seed}: the rest stay a cluster"
            );
        }

        // The process restarts with a higher generation and joins through node 1 again.
        sim.start(3, 101, &[1]);
        sim.run_until("3 back up", JOIN_LIMIT_MS, |s| {
            s.all_see(3, MemberState::Alive, Some(101)) && s.converged()
        });
        for observer in [1, 2, 4, 5] {
            assert!(
                sim.observed(observer, |e| came_up(e, 3, Some(101))),
                "seed {seed}: node {observer} never saw the new 3 come up"
            );
        }
        // The old generation stays buried: no more events about it, and it is never alive again.
        sim.run_for(10_000);
        assert!(sim.converged(), "seed {seed}: stable after rejoin");
    }
}

#[test]
fn a_fast_restart_replaces_the_old_identity_without_going_down() {
    for seed in SEEDS {
        let mut sim = five_node_cluster(seed);
        sim.crash(2);
        sim.start(2, 200, &[1]);
        sim.run_until("new 2 everywhere", JOIN_LIMIT_MS, |s| {
            s.all_see(2, MemberState::Alive, Some(200)) && s.converged()
        });
        for observer in [1, 3, 4, 5] {
            assert!(
                sim.observed(observer, |e| came_up(e, 2, Some(200))
                    || matches!(
                        e,
                        MemberEvent::Renewed {
                            node_id: NodeId(2),
                            generation: 200,
                            ..
                        }
                    )),
                "seed {seed}: node {observer}"
            );
        }
    }
}

#[test]
fn a_member_that_leaves_is_seen_as_left_not_down() {
    for seed in SEEDS {
        let mut sim = five_node_cluster(seed);
        sim.leave(4);
        assert_eq!(sim.nodes[&NodeId(4)].membership.status(), LocalStatus::Left);
        sim.run_until("4 left everywhere", DETECT_LIMIT_MS, |s| {
            s.all_see(4, MemberState::Left, Some(100))
        });
        for observer in [1, 2, 3, 5] {
            assert!(
                sim.observed(observer, |e| *e
                    == MemberEvent::Left {
                        node_id: NodeId(4),
                        generation: 100
                    }),
                "seed {seed}"
            );
            assert!(
                !sim.observed(
                    observer,
                    |e| matches!(e, MemberEvent::Down { node_id, .. } if *node_id == NodeId(4))
                ),
                "seed {seed}: reported down"
            );
        }
        // A left member ignores input and the rest stay a cluster.
        sim.run_for(5_000);
        let left = &mut sim.nodes.get_mut(&NodeId(4)).unwrap().membership;
        assert!(matches!(
            left.handle_datagram(NodeId(1), &[1, 0], 0),
            Err(Error::Left)
        ));
        for observer in [1, 2, 3, 5] {
            assert!(
                sim.nodes[&NodeId(observer)].membership.is_active(),
                "seed {seed}"
            );
            assert_eq!(
                sim.state(observer, 4),
                Some((MemberState::Left, 100)),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn a_partition_is_seen_as_down_on_both_sides_and_heals_to_all_up() {
    for seed in SEEDS {
        let mut sim = five_node_cluster(seed);
        sim.split(&[1, 2, 3], &[4, 5]);
        sim.run_until("both sides see the other down", DETECT_LIMIT_MS, |s| {
            [1, 2, 3].iter().all(|&a| {
                [4, 5].iter().all(|&b| {
                    s.state(a, b).is_some_and(|(st, _)| st == MemberState::Down)
                        && s.state(b, a).is_some_and(|(st, _)| st == MemberState::Down)
                })
            })
        });
        sim.cut.clear();
        let took = sim.run_until("all up after heal", 30_000, Sim::converged);
        eprintln!("seed {seed}: all up {took} ms of virtual time after heal");
    }
}

#[test]
fn two_members_cut_from_each_other_find_each_other_again() {
    // With no third member both sides are isolated and foca alone would stay silent: the
    // rejoin announcements are what bring them back.
    for seed in SEEDS {
        let mut sim = Sim::new(seed);
        sim.start(1, 1, &[]);
        sim.start(2, 1, &[1]);
        sim.run_until("pair up", JOIN_LIMIT_MS, Sim::converged);
        sim.split(&[1], &[2]);
        sim.run_until("pair isolated", DETECT_LIMIT_MS, |s| {
            [1, 2]
                .iter()
                .all(|&n| s.nodes[&NodeId(n)].membership.status() == LocalStatus::Isolated)
        });
        sim.cut.clear();
        sim.run_until("pair back", 30_000, Sim::converged);
    }
}

#[test]
fn a_datagram_whose_sender_is_not_the_authenticated_peer_is_rejected() {
    let mut one = Membership::new(
        MemberIdentity::new(NodeId(1), addr(1), 1),
        MembershipConfig::default(),
        SmallRng::seed_from_u64(1),
        0,
    )
    .unwrap();
    let mut two = Membership::new(
        MemberIdentity::new(NodeId(2), addr(2), 1),
        MembershipConfig::default(),
        SmallRng::seed_from_u64(2),
        0,
    )
    .unwrap();
    two.join(&[(NodeId(1), addr(1))], 0);
    let announce = std::iter::from_fn(|| two.poll_effect())
        .find_map(|e| match e {
            Effect::SendDatagram {
                to: NodeId(1),
                bytes,
                ..
            } => Some(bytes),
            _ => None,
        })
        .expect("node 2 announces to its seed");

    // Node 3 (authenticated by TLS as 3) replays node 2's packet: refused, nothing learnt.
    let replayed = one.handle_datagram(NodeId(3), &announce, 1);
    assert!(
        matches!(
            replayed,
            Err(Error::Impersonation {
                claimed: NodeId(2),
                authenticated: NodeId(3)
            })
        ),
        "{replayed:?}"
    );
    assert_eq!(one.counters().rejected_impersonation, 1);
    assert_eq!(one.members().len(), 0);
    assert!(
        std::iter::from_fn(|| one.poll_effect()).all(|e| !matches!(e, Effect::SendDatagram { .. })),
        "no reply to an impostor"
    );

    // Garbage and unknown versions are refused and counted too.
    assert!(matches!(
        one.handle_datagram(NodeId(2), b"", 2),
        Err(Error::Swim(_))
    ));
    assert!(matches!(
        one.handle_datagram(NodeId(2), &[9, 1, 2, 3], 2),
        Err(Error::Swim(_))
    ));
    assert!(matches!(
        one.handle_datagram(NodeId(2), &[1, 0xff, 0xff, 0xff], 2),
        Err(Error::Swim(_))
    ));
    assert_eq!(one.counters().rejected_malformed, 3);
    assert_eq!(one.members().len(), 0);

    // The genuine sender is accepted: node 1 learns node 2 and answers it.
    one.handle_datagram(NodeId(2), &announce, 3).unwrap();
    assert_eq!(
        one.member(NodeId(2)).map(|m| m.state),
        Some(MemberState::Alive)
    );
    assert!(
        std::iter::from_fn(|| one.poll_effect())
            .any(|e| matches!(e, Effect::SendDatagram { to, .. } if to == NodeId(2)))
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = |seed| {
        let mut sim = five_node_cluster(seed);
        sim.crash(5);
        sim.run_for(8_000);
        sim.log
    };
    assert_eq!(run(42), run(42));
    assert_ne!(
        run(42),
        run(43),
        "different seeds should explore different schedules"
    );
}
