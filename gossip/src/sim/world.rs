//! The simulated world: nodes, an in-memory network with loss, duplication, delay, reordering
//! and partitions, virtual time, and the event loop that drives them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use crdt::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore};

use super::node::{Boot, SimNode, addr};
use super::oracle::Oracle;
use super::{Sabotage, SimConfig};
use crate::membership::{
    Effect as MemberEffect, LocalStatus, MemberEvent, MembershipConfig, Timer,
};
use crate::replication::wire::Message;
use crate::replication::{Effect, ReplicationConfig};

/// The network's behaviour for one run.
#[derive(Clone, Debug)]
pub(crate) struct NetModel {
    pub(crate) message_loss: f64,
    pub(crate) datagram_loss: f64,
    pub(crate) duplicate: f64,
    pub(crate) delay_min_ms: u64,
    pub(crate) delay_max_ms: u64,
    /// Delay before membership events are reported when SWIM is not simulated.
    pub(crate) detect_ms: u64,
}

enum Payload {
    Datagram(Bytes),
    Message(Bytes),
}

enum Pending {
    Deliver {
        to: usize,
        to_run: u64,
        from: usize,
        from_run: u64,
        payload: Payload,
    },
    /// A membership event reported by the oracle membership (no SWIM).
    Member {
        node: usize,
        run: u64,
        event: MemberEvent,
    },
}

/// A SWIM timer: due first, then foca's order for simultaneous timers, then FIFO.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    due: u64,
    timer: Timer,
    node: usize,
    run: u64,
    seq: u64,
}

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

pub(crate) struct World {
    pub(crate) now: u64,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) rng: SmallRng,
    pub(crate) oracle: Oracle,
    pub(crate) tally: Tally,
    /// Partition group of each node; nodes talk only within a group.
    pub(crate) group: Vec<u32>,
    net: NetModel,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    pending: BTreeMap<u64, Pending>,
    timers: BinaryHeap<Reverse<TimerEntry>>,
    seq: u64,
    seed: u64,
    replication: ReplicationConfig,
    membership: Option<MembershipConfig>,
    sabotage: Option<Sabotage>,
}

impl World {
    pub(crate) fn new(config: &SimConfig, n: usize, mut rng: SmallRng, net: NetModel) -> World {
        let replication = config.replication.clone();
        let membership = config.swim.then(|| config.membership.clone());
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let boot = Boot {
                replication: &replication,
                membership: membership.as_ref(),
                seed: config.seed,
                now_ms: 0,
            };
            let skew = rng.random_range(0..20);
            nodes.push(SimNode::start(NodeId(i as u64 + 1), skew, &boot));
        }
        let mut world = World {
            now: 0,
            nodes,
            rng,
            oracle: Oracle::default(),
            tally: Tally::default(),
            group: vec![0; n],
            net,
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            seed: config.seed,
            replication,
            membership,
            sabotage: config.sabotage,
        };
        for i in 0..n {
            world.join(i);
        }
        world
    }

    fn boot(&self) -> Boot<'_> {
        Boot {
            replication: &self.replication,
            membership: self.membership.as_ref(),
            seed: self.seed,
            now_ms: self.now,
        }
    }

    /// Announces node `i` (just started) to the cluster.
    fn join(&mut self, i: usize) {
        let now = self.now;
        // The members a node knows of at start (a real node persists them or has them as seeds).
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        for id in ids {
            self.nodes[i].replicator.add_member(id);
        }
        if self.nodes[i].membership.is_some() {
            let seeds: Vec<(NodeId, std::net::SocketAddr)> = self
                .nodes
                .iter()
                .filter(|n| n.id != self.nodes[i].id)
                .map(|n| (n.id, addr(n.id)))
                .collect();
            if let Some(m) = self.nodes[i].membership.as_mut() {
                m.join(&seeds, now);
            }
        } else {
            self.notify(i, MemberEvent::Local(LocalStatus::Active), 0);
            for j in 0..self.nodes.len() {
                if j != i && self.nodes[j].up && self.connected(i, j) {
                    let (gi, gj) = (self.nodes[i].generation, self.nodes[j].generation);
                    self.notify(i, up(self.nodes[j].id, gj), 0);
                    self.notify(j, up(self.nodes[i].id, gi), self.net.detect_ms);
                }
            }
        }
        self.pump(i);
    }

    pub(crate) fn connected(&self, a: usize, b: usize) -> bool {
        self.group[a] == self.group[b]
    }

    fn push(&mut self, at: u64, item: Pending) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.pending.insert(self.seq, item);
    }

    /// Reports a membership event to node `i` after `delay` (oracle membership only).
    fn notify(&mut self, i: usize, event: MemberEvent, delay: u64) {
        let run = self.nodes[i].run;
        self.push(
            self.now + delay,
            Pending::Member {
                node: i,
                run,
                event,
            },
        );
    }

    /// Changes partition groups; with oracle membership, reports who became (un)reachable.
    pub(crate) fn set_groups(&mut self, group: Vec<u32>) {
        let before = std::mem::replace(&mut self.group, group);
        if self.membership.is_some() {
            return;
        }
        let n = self.nodes.len();
        for a in 0..n {
            for b in 0..n {
                let was = before[a] == before[b];
                let is = self.group[a] == self.group[b];
                if a == b || was == is || !self.nodes[a].up || !self.nodes[b].up {
                    continue;
                }
                let (id, generation) = (self.nodes[b].id, self.nodes[b].generation);
                let event = if is {
                    up(id, generation)
                } else {
                    MemberEvent::Down {
                        node_id: id,
                        generation,
                    }
                };
                self.notify(a, event, self.net.detect_ms);
            }
        }
    }

    /// Crashes node `i`: it stops, and whatever it had in flight is lost with its connections.
    pub(crate) fn crash(&mut self, i: usize) {
        self.nodes[i].up = false;
        if self.membership.is_none() {
            let (id, generation) = (self.nodes[i].id, self.nodes[i].generation);
            for j in 0..self.nodes.len() {
                if j != i && self.nodes[j].up && self.connected(i, j) {
                    self.notify(
                        j,
                        MemberEvent::Down {
                            node_id: id,
                            generation,
                        },
                        self.net.detect_ms,
                    );
                }
            }
        }
    }

    /// Restarts node `i` with its keyspace as is, empty, or from an older snapshot.
    pub(crate) fn restart(&mut self, i: usize, keyspace: Option<crate::replication::MemReplica>) {
        if let Some(mem) = keyspace {
            self.nodes[i].replica.mem = mem;
            self.nodes[i].gated = true;
            let lost = self.oracle.mark_lost(&self.nodes);
            tracing::debug!(node = %self.nodes[i].id, lost, "restored");
        }
        let boot = self.boot();
        let (replication, membership, seed, now) = (
            boot.replication.clone(),
            boot.membership.cloned(),
            boot.seed,
            boot.now_ms,
        );
        let boot = Boot {
            replication: &replication,
            membership: membership.as_ref(),
            seed,
            now_ms: now,
        };
        self.nodes[i].boot(&boot);
        self.oracle.forget_observer(self.nodes[i].id);
        self.join(i);
    }

    /// Runs node `i`'s effects to completion: replication sends, membership datagrams, timers
    /// and events (which feed replication).
    pub(crate) fn pump(&mut self, i: usize) {
        loop {
            let now = self.now;
            let node = &mut self.nodes[i];
            let mut sends = Vec::new();
            let mut events = Vec::new();
            if let Some(m) = node.membership.as_mut() {
                while let Some(effect) = m.poll_effect() {
                    match effect {
                        MemberEffect::SendDatagram { to, bytes, .. } => {
                            sends.push((to, Payload::Datagram(bytes)))
                        }
                        MemberEffect::ScheduleTimer { after_ms, timer } => {
                            self.seq += 1;
                            self.timers.push(Reverse(TimerEntry {
                                due: now + after_ms,
                                timer,
                                node: i,
                                run: node.run,
                                seq: self.seq,
                            }));
                        }
                        MemberEffect::Event(event) => events.push(event),
                    }
                }
            }
            for event in &events {
                node.replicator
                    .handle_member_event(&mut node.replica, event, now);
            }
            // The driver's order: sample the clock, then hand it over (deltas were submitted).
            let clock = node.clock(now);
            node.replicator.set_clock(clock, now);
            while let Some(Effect::Send { to, bytes }) = node.replicator.poll_effect() {
                sends.push((to, Payload::Message(bytes)));
            }
            if sends.is_empty() && events.is_empty() {
                return;
            }
            for (to, payload) in sends {
                self.send(i, to, payload);
            }
        }
    }

    fn send(&mut self, from: usize, to: NodeId, payload: Payload) {
        let Some(to) = self.nodes.iter().position(|n| n.id == to) else {
            return;
        };
        let loss = match payload {
            Payload::Datagram(_) => self.net.datagram_loss,
            Payload::Message(_) => self.net.message_loss,
        };
        if !self.connected(from, to) || !self.nodes[to].up || self.rng.random_bool(loss) {
            self.tally.dropped += 1;
            return;
        }
        let copies = if self.rng.random_bool(self.net.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .random_range(self.net.delay_min_ms..=self.net.delay_max_ms);
            let payload = match &payload {
                Payload::Datagram(b) => Payload::Datagram(b.clone()),
                Payload::Message(b) => Payload::Message(b.clone()),
            };
            let item = Pending::Deliver {
                to,
                to_run: self.nodes[to].run,
                from,
                from_run: self.nodes[from].run,
                payload,
            };
            self.push(self.now + delay, item);
        }
    }

    /// The time of the next thing due: a message, a timer, or a replicator deadline.
    pub(crate) fn next_due(&self) -> Option<u64> {
        let queued = self.queue.peek().map(|Reverse((t, _))| *t);
        let timer = self.timers.peek().map(|Reverse(t)| t.due);
        let replication = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .filter_map(|n| n.replicator.poll_timeout())
            .min();
        [queued, timer, replication].into_iter().flatten().min()
    }

    /// Runs everything due up to `until` (inclusive), advancing virtual time.
    pub(crate) fn run_until(&mut self, until: u64) {
        while let Some(t) = self.next_due().filter(|&t| t <= until) {
            self.now = self.now.max(t);
            self.step();
        }
        self.now = self.now.max(until);
    }

    fn step(&mut self) {
        let now = self.now;
        if self.queue.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Reverse((_, seq)) = self.queue.pop().expect("peeked");
            let item = self.pending.remove(&seq).expect("queued");
            self.handle(item);
            return;
        }
        if self.timers.peek().is_some_and(|Reverse(t)| t.due <= now) {
            let Reverse(entry) = self.timers.pop().expect("peeked");
            let node = &mut self.nodes[entry.node];
            if node.up && node.run == entry.run {
                if let Some(m) = node.membership.as_mut() {
                    m.handle_timer(entry.timer, now);
                }
                self.pump(entry.node);
            }
            return;
        }
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if node.up && node.replicator.poll_timeout().is_some_and(|t| t <= now) {
                node.replicator.handle_timeout(&mut node.replica, now);
                self.pump(i);
            }
        }
    }

    fn handle(&mut self, item: Pending) {
        let now = self.now;
        match item {
            Pending::Member { node, run, event } => {
                let n = &mut self.nodes[node];
                if n.up && n.run == run {
                    n.replicator
                        .handle_member_event(&mut n.replica, &event, now);
                    self.pump(node);
                }
            }
            Pending::Deliver {
                to,
                to_run,
                from,
                from_run,
                payload,
            } => {
                // Connections die with either end, and a partition cuts what is in flight.
                let alive = self.nodes[to].up
                    && self.nodes[to].run == to_run
                    && self.nodes[from].run == from_run
                    && self.connected(from, to);
                if !alive {
                    self.tally.dropped += 1;
                    return;
                }
                self.tally.delivered += 1;
                let from_id = self.nodes[from].id;
                match payload {
                    Payload::Datagram(bytes) => {
                        if let Some(m) = self.nodes[to].membership.as_mut() {
                            let _ = m.handle_datagram(from_id, &bytes, now);
                        }
                    }
                    Payload::Message(bytes) => {
                        let Some(bytes) = self.sabotage(bytes) else {
                            return;
                        };
                        let n = &mut self.nodes[to];
                        if let Err(e) =
                            n.replicator
                                .handle_message(&mut n.replica, from_id, &bytes, now)
                        {
                            panic!("node {} refused a message from {from_id}: {e}", n.id);
                        }
                    }
                }
                self.pump(to);
            }
        }
    }

    /// Breaks replication on purpose, to show that the checks catch it.
    fn sabotage(&mut self, bytes: Bytes) -> Option<Bytes> {
        let Some(sabotage) = self.sabotage else {
            return Some(bytes);
        };
        let message = Message::decode(&bytes, &self.replication).expect("own encoding");
        match (sabotage, message) {
            (Sabotage::NoAntiEntropy, m) if m.session().is_some() => None,
            (
                Sabotage::InflateHeartbeats,
                Message::Heartbeat {
                    stream,
                    seq,
                    mut watermark,
                },
            ) => {
                watermark.physical_ms += 1_000;
                Some(Bytes::from(
                    Message::Heartbeat {
                        stream,
                        seq,
                        watermark,
                    }
                    .encode(),
                ))
            }
            _ => Some(bytes),
        }
    }

    /// A random index below `n`.
    pub(crate) fn pick(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }
}

fn up(node_id: NodeId, generation: u64) -> MemberEvent {
    MemberEvent::Up {
        node_id,
        addr: addr(node_id),
        generation,
    }
}
