//! [`Replicator`]: the sans-IO state machine of one node's replication (see [`super`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use crdt::{NodeId, Timestamp, Value};
use rand::RngCore;

use super::Effect;
use super::ae::{AntiEntropy, Completed, Ctx};
use super::config::ReplicationConfig;
use super::gc::{Dropped, EpochHistory};
use super::link::Link;
use super::metrics::{Mode, PeerStatus, ReplicationMetrics};
use super::outbox::Outbox;
use super::replica::Replica;
use super::wire::{Message, WireError};
use crate::error::Result;
use crate::membership::{LocalStatus, MemberEvent};

/// What this node knows about one member.
struct Peer {
    reachable: bool,
    link: Option<Link>,
    synced_at: Option<Timestamp>,
    /// Set while a new stream of the peer waits for proof about its earlier runs.
    barrier: Option<Barrier>,
    /// Came (back) up and no anti-entropy has completed since.
    catch_up: bool,
    /// Some anti-entropy session with it completed in this run.
    synced_this_run: bool,
    /// Proofs that the member holds this node's states (tombstone GC).
    proofs: EpochHistory,
}

/// A peer started a new run (or this node sees its stream for the first time). Its new stream
/// and anti-entropy with it prove what it holds *now*; writes it acknowledged in an earlier run
/// and then lost (restarted empty, or from an older copy of its data) may survive only on other
/// members. So `synced_at` may move past what this node knew of the earlier runs only once this
/// node has completed anti-entropy, started after the new stream appeared, with every other
/// member: then it holds whatever of those writes survives anywhere.
struct Barrier {
    since_ms: u64,
    waiting: BTreeSet<NodeId>,
    /// The best `synced_at` the new stream proved meanwhile.
    pending: Option<Timestamp>,
}

impl Peer {
    fn new() -> Self {
        Peer {
            reachable: false,
            link: None,
            synced_at: None,
            barrier: None,
            catch_up: true,
            synced_this_run: false,
            proofs: EpochHistory::default(),
        }
    }

    fn in_sync(&self, now_ms: u64, gap_ms: u64) -> bool {
        self.reachable
            && !self.catch_up
            && self.barrier.is_none()
            && self.synced_at.is_some()
            && self
                .link
                .as_ref()
                .is_some_and(|l| !l.is_stalled(now_ms, gap_ms))
    }

    /// A proved lower bound for `synced_at` (held back by a barrier).
    fn offer(&mut self, w: Timestamp) {
        let slot = match &mut self.barrier {
            Some(b) => &mut b.pending,
            None => &mut self.synced_at,
        };
        *slot = Some(slot.map_or(w, |s| s.max(w)));
    }

    /// `member` completed anti-entropy started at `started_ms`, or is gone.
    fn cleared(&mut self, member: NodeId, started_ms: u64) {
        let Some(b) = &mut self.barrier else { return };
        if started_ms >= b.since_ms {
            b.waiting.remove(&member);
        }
        if b.waiting.is_empty() {
            let pending = b.pending;
            self.barrier = None;
            if let Some(w) = pending {
                self.offer(w);
            }
        }
    }
}

/// Builds an anti-entropy context from disjoint fields of the replicator.
macro_rules! ctx {
    ($self:ident, $replica:expr) => {
        Ctx {
            replica: &mut *$replica,
            config: &$self.config,
            effects: &mut $self.effects,
            metrics: &mut $self.metrics,
            epoch: &mut $self.epoch,
            dropped: &$self.dropped,
            point: $self.outbox.point(),
            now_ms: $self.now_ms,
        }
    };
}

/// The replication state machine of one node. Feed it inputs, then drain
/// [`Replicator::poll_effect`] and sleep until [`Replicator::poll_timeout`].
pub struct Replicator {
    me: NodeId,
    config: ReplicationConfig,
    rng: Box<dyn RngCore + Send>,
    outbox: Outbox,
    peers: BTreeMap<NodeId, Peer>,
    ae: AntiEntropy,
    epoch: u64,
    local_proofs: EpochHistory,
    dropped: Dropped,
    effects: VecDeque<Effect>,
    metrics: ReplicationMetrics,
    now_ms: u64,
    last_broadcast_ms: u64,
    next_ae_ms: u64,
    next_gc_ms: u64,
    joined: bool,
    expect_peers: bool,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("node", &self.me)
            .field("stream", &self.outbox.stream())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Replicator {
    /// The replicator of node `me`, started at `now_ms` with the node's clock reading `clock`.
    /// `rng` drives every random choice (session ids, peers for anti-entropy); seed it for
    /// reproducible runs.
    pub fn new(
        me: NodeId,
        config: ReplicationConfig,
        mut rng: impl RngCore + Send + 'static,
        now_ms: u64,
        clock: Timestamp,
    ) -> Result<Self> {
        config.validate()?;
        // Later runs have larger stream ids: the HLC resumes above everything it issued.
        let stream = (clock.physical_ms << 20) | u64::from(rng.next_u32() & 0xf_ffff);
        let first_ae = now_ms.saturating_add(config.ae_period_ms);
        let first_gc = now_ms.saturating_add(config.tombstone_gc_period_ms);
        Ok(Replicator {
            me,
            rng: Box::new(rng),
            outbox: Outbox::new(stream, clock),
            peers: BTreeMap::new(),
            ae: AntiEntropy::default(),
            epoch: 0,
            local_proofs: EpochHistory::default(),
            dropped: Dropped::default(),
            effects: VecDeque::new(),
            metrics: ReplicationMetrics::default(),
            now_ms,
            last_broadcast_ms: now_ms,
            next_ae_ms: first_ae,
            next_gc_ms: first_gc,
            joined: false,
            expect_peers: true,
            config,
        })
    }

    /// Whether this node expects peers (default `true`): tombstones are then collected only
    /// after membership reported this node active at least once in this run, so a node that has
    /// not met its cluster yet does not take "no members known" for "every member has seen it".
    /// A standalone node (no seeds) sets `false`.
    pub fn set_expect_peers(&mut self, expect: bool) {
        self.expect_peers = expect;
    }

    /// This node.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// This run's delta stream id.
    pub fn stream(&self) -> u64 {
        self.outbox.stream()
    }

    /// The node's clock as last sampled by [`Self::set_clock`].
    pub fn clock(&self) -> Timestamp {
        self.outbox.clock()
    }

    /// The counters.
    pub fn metrics(&self) -> &ReplicationMetrics {
        &self.metrics
    }

    /// The next effect to carry out. Drain after every input.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// A local write's delta: `key`, the delta, and the write's HLC timestamp.
    pub fn submit_delta(&mut self, key: Vec<u8>, delta: Value, ts: Timestamp, now_ms: u64) {
        self.now_ms = now_ms;
        self.metrics.deltas_submitted += 1;
        if self.outbox.submit(key, delta, ts, &self.config) {
            self.flush();
        }
    }

    /// `count` local deltas were lost before reaching the replicator (the driver's queue was
    /// full). Peers will see a gap in the stream and repair by anti-entropy.
    pub fn local_deltas_dropped(&mut self, count: u64) {
        if count > 0 {
            self.outbox.skip();
            self.metrics.deltas_dropped += count;
        }
    }

    /// A sample of the node's clock, taken *before* the driver drained the local deltas it just
    /// submitted (see "Freshness" in [`super`]). Sends the pending batch if it is due.
    pub fn set_clock(&mut self, clock: Timestamp, now_ms: u64) {
        self.now_ms = now_ms;
        self.outbox.set_clock(clock);
        if self
            .outbox
            .flush_due(now_ms, self.config.delta_batch_delay_ms)
            .is_some_and(|due| due <= now_ms)
        {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let Some((message, keys)) = self.outbox.flush(self.now_ms) else {
            return;
        };
        let bytes = Bytes::from(message.encode());
        for (&to, _) in self.peers.iter().filter(|(_, p)| p.reachable) {
            self.metrics.delta_batches_sent += 1;
            self.metrics.delta_keys_sent += keys as u64;
            self.metrics.delta_bytes_sent += bytes.len() as u64;
            self.effects.push_back(Effect::Send {
                to,
                bytes: bytes.clone(),
            });
        }
        self.last_broadcast_ms = self.now_ms;
    }

    /// A message received from `from` (authenticated by the transport). Malformed or oversized
    /// messages are counted and refused ([`crate::Error::Replication`]) without touching state.
    pub fn handle_message<R: Replica>(
        &mut self,
        replica: &mut R,
        from: NodeId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<()> {
        self.now_ms = now_ms;
        let message = match Message::decode(bytes, &self.config) {
            Ok(m) => m,
            Err(e) => {
                match e {
                    WireError::Malformed(_) => self.metrics.messages_malformed += 1,
                    WireError::OverLimit(_) => self.metrics.messages_over_limit += 1,
                }
                return Err(e.into());
            }
        };
        if from == self.me {
            return Ok(());
        }
        match message {
            Message::Deltas {
                stream,
                seq,
                watermark,
                oldest,
                entries,
            } => {
                self.metrics.delta_batches_received += 1;
                self.metrics.delta_keys_received += entries.len() as u64;
                self.metrics.delta_bytes_received += bytes.len() as u64;
                let lag = self.clock().physical_ms.saturating_sub(oldest.physical_ms);
                self.metrics.delta_lag.observe(lag);
                let before = entries.len();
                let keep: Vec<(Vec<u8>, Value)> = entries
                    .into_iter()
                    .filter(|(k, v)| !self.dropped.covers(k, v))
                    .map(|(k, v)| (k.into_vec(), v))
                    .collect();
                self.metrics.tombstones_refused += (before - keep.len()) as u64;
                if !keep.is_empty() {
                    replica.merge(keep);
                }
                let window = self.config.reorder_window_max;
                self.on_link(from, stream, |l| l.on_batch(seq, watermark, window, now_ms));
            }
            Message::Heartbeat {
                stream,
                seq,
                watermark,
            } => {
                self.metrics.heartbeats_received += 1;
                let window = self.config.reorder_window_max;
                self.on_link(from, stream, |l| {
                    l.on_heartbeat(seq, watermark, window, now_ms)
                });
            }
            message => {
                self.metrics.ae_bytes_received += bytes.len() as u64;
                let done = self.ae.handle(&mut ctx!(self, replica), from, message);
                if let Some(done) = done {
                    self.completed(done);
                }
            }
        }
        Ok(())
    }

    /// Applies a stream event to `from`'s link (members only: others have no freshness to track).
    fn on_link(
        &mut self,
        from: NodeId,
        stream: u64,
        f: impl FnOnce(&mut Link) -> Option<Timestamp>,
    ) {
        if !self.prepare_link(from, stream) {
            return;
        }
        let peer = self.peers.get_mut(&from).expect("prepared");
        if let Some(w) = f(peer.link.as_mut().expect("prepared")) {
            peer.offer(w);
        }
    }

    /// Makes sure `peer`'s link follows `stream`: a later stream replaces the link (and sets a
    /// barrier); an earlier one (a late message of a previous run) is refused (`false`).
    fn prepare_link(&mut self, peer: NodeId, stream: u64) -> bool {
        let Some(p) = self.peers.get(&peer) else {
            return false;
        };
        match &p.link {
            Some(l) if l.accepts(stream) => return true,
            Some(l) if stream < l.stream() => return false,
            _ => {}
        }
        let waiting: BTreeSet<NodeId> = self
            .peers
            .keys()
            .filter(|&&id| id != peer)
            .copied()
            .collect();
        let now = self.now_ms;
        let p = self.peers.get_mut(&peer).expect("checked");
        p.link = Some(Link::new(stream));
        p.barrier = (!waiting.is_empty()).then_some(Barrier {
            since_ms: now,
            waiting,
            pending: None,
        });
        true
    }

    fn completed(&mut self, done: Completed) {
        let now = self.now_ms;
        let window = self.config.reorder_window_max;
        if !self.peers.contains_key(&done.peer) {
            return;
        }
        let point = done.their_point;
        // Not prepared: the peer restarted since it read its digests; the proof still holds for
        // `synced_at`, but says nothing about the new stream.
        let anchored = self.prepare_link(done.peer, point.stream);
        let peer = self.peers.get_mut(&done.peer).expect("checked");
        let w = match peer.link.as_mut() {
            Some(l) if anchored => l.anchor(point, window, now),
            _ => point.watermark,
        };
        peer.offer(w);
        peer.catch_up = false;
        peer.synced_this_run = true;
        peer.proofs.record(done.my_epoch, now);
        for (&id, p) in self.peers.iter_mut() {
            if id != done.peer {
                p.cleared(done.peer, done.started_ms);
            }
        }
    }

    /// A membership event (from [`crate::membership::Membership`]'s effects).
    pub fn handle_member_event<R: Replica>(
        &mut self,
        replica: &mut R,
        event: &MemberEvent,
        now_ms: u64,
    ) {
        self.now_ms = now_ms;
        match *event {
            MemberEvent::Up { node_id, .. } | MemberEvent::Renewed { node_id, .. } => {
                if node_id == self.me {
                    return;
                }
                self.add_member(node_id);
                let peer = self.peers.get_mut(&node_id).expect("added");
                peer.reachable = true;
                peer.catch_up = true;
                // It may have restarted from older state than it proved to hold.
                peer.proofs.reset();
                if !self.ae.is_running_with(node_id) {
                    self.start_session(replica, node_id);
                }
            }
            MemberEvent::Down { node_id, .. } => {
                if let Some(peer) = self.peers.get_mut(&node_id) {
                    peer.reachable = false;
                }
                self.ae.abort_peer(&mut self.metrics, node_id);
            }
            MemberEvent::Left { node_id, .. } => self.forget_member(node_id, now_ms),
            MemberEvent::Local(LocalStatus::Active) => self.joined = true,
            MemberEvent::Local(_) | MemberEvent::LocalRenewed { .. } => {}
        }
    }

    /// Declares a member known from elsewhere (persisted from an earlier run, or configured),
    /// unreachable until membership reports it up. Feed every member known at start: freshness
    /// and GC can only account for members this node knows of.
    pub fn add_member(&mut self, node_id: NodeId) {
        if node_id == self.me || self.peers.contains_key(&node_id) {
            return;
        }
        // A member this node did not know may hold writes the barriers wait for.
        for p in self.peers.values_mut() {
            if let Some(b) = &mut p.barrier {
                b.waiting.insert(node_id);
            }
        }
        self.peers.insert(node_id, Peer::new());
    }

    /// Forgets a member as if it had left: it no longer counts for freshness or tombstone GC.
    /// For members that are gone for good without having left (an admin command).
    pub fn forget_member(&mut self, node_id: NodeId, now_ms: u64) {
        self.now_ms = now_ms;
        self.peers.remove(&node_id);
        self.ae.abort_peer(&mut self.metrics, node_id);
        for p in self.peers.values_mut() {
            p.cleared(node_id, u64::MAX);
        }
    }

    /// A send to `to` failed: abandon the sessions with it (a lost batch shows as a gap).
    pub fn send_failed(&mut self, to: NodeId) {
        self.ae.abort_peer(&mut self.metrics, to);
    }

    fn start_session<R: Replica>(&mut self, replica: &mut R, peer: NodeId) {
        let session = self.rng.next_u64();
        self.ae.start(&mut ctx!(self, replica), peer, session);
    }

    /// When [`Self::handle_timeout`] should next be called (same clock as `now_ms`).
    pub fn poll_timeout(&self) -> Option<u64> {
        let flush = self
            .outbox
            .flush_due(self.now_ms, self.config.delta_batch_delay_ms);
        let heartbeat = self.peers.values().any(|p| p.reachable).then(|| {
            self.last_broadcast_ms
                .saturating_add(self.config.heartbeat_period_ms)
        });
        let sessions = self.ae.next_deadline(self.config.ae_session_timeout_ms);
        [
            flush,
            heartbeat,
            sessions,
            Some(self.next_ae_ms),
            Some(self.next_gc_ms),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs whatever is due at `now_ms`: batches, heartbeats, anti-entropy, GC, timeouts.
    pub fn handle_timeout<R: Replica>(&mut self, replica: &mut R, now_ms: u64) {
        self.now_ms = now_ms;
        if self
            .outbox
            .flush_due(now_ms, self.config.delta_batch_delay_ms)
            .is_some_and(|due| due <= now_ms)
        {
            self.flush();
        }
        if now_ms
            >= self
                .last_broadcast_ms
                .saturating_add(self.config.heartbeat_period_ms)
        {
            let bytes = Bytes::from(self.outbox.heartbeat().encode());
            for (&to, _) in self.peers.iter().filter(|(_, p)| p.reachable) {
                self.metrics.heartbeats_sent += 1;
                self.effects.push_back(Effect::Send {
                    to,
                    bytes: bytes.clone(),
                });
            }
            self.last_broadcast_ms = now_ms;
        }
        self.ae.expire(&mut ctx!(self, replica));
        if now_ms >= self.next_ae_ms {
            self.next_ae_ms = now_ms.saturating_add(self.config.ae_period_ms);
            self.periodic_anti_entropy(replica);
        }
        if now_ms >= self.next_gc_ms {
            self.next_gc_ms = now_ms.saturating_add(self.config.tombstone_gc_period_ms);
            self.collect_tombstones(replica);
        }
        self.dropped.expire(now_ms);
    }

    /// Starts a session with every reachable peer that is out of sync, or else with one at
    /// random.
    fn periodic_anti_entropy<R: Replica>(&mut self, replica: &mut R) {
        let (now, gap) = (self.now_ms, self.config.gap_repair_after_ms);
        let awaited: BTreeSet<NodeId> = self
            .peers
            .values()
            .filter_map(|p| p.barrier.as_ref())
            .flat_map(|b| b.waiting.iter().copied())
            .collect();
        let idle: Vec<(NodeId, bool)> = self
            .peers
            .iter()
            .filter(|(id, p)| p.reachable && !self.ae.is_running_with(**id))
            .map(|(id, p)| (*id, !p.in_sync(now, gap) || awaited.contains(id)))
            .collect();
        let needy: Vec<NodeId> = idle.iter().filter(|(_, n)| *n).map(|(id, _)| *id).collect();
        if needy.is_empty() {
            if !idle.is_empty() {
                let pick = idle[(self.rng.next_u32() as usize) % idle.len()].0;
                self.start_session(replica, pick);
            }
        } else {
            for peer in needy {
                self.start_session(replica, peer);
            }
        }
    }

    /// Drops the tombstones every member provably holds (see "Tombstone GC" in [`super`]).
    fn collect_tombstones<R: Replica>(&mut self, replica: &mut R) {
        if !self.config.tombstone_gc || (self.expect_peers && !self.joined) {
            return;
        }
        let (now, grace) = (self.now_ms, self.config.tombstone_gc_grace_ms);
        self.epoch += 1;
        replica.refresh(self.epoch);
        self.local_proofs.record(self.epoch, now);
        let Some(mut safe) = self.local_proofs.safe_epoch(now, grace) else {
            return;
        };
        for peer in self.peers.values_mut() {
            match peer.proofs.safe_epoch(now, grace) {
                Some(e) => safe = safe.min(e),
                None => return,
            }
        }
        let dropped = replica.drop_tombstones(safe, self.config.tombstone_gc_batch_max);
        self.metrics.tombstones_dropped += dropped.len() as u64;
        let until = now.saturating_add(grace);
        for (key, value) in dropped {
            self.dropped.insert(key, value, until);
        }
    }

    /// Freshness of every member not known to have left, by node id.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let clock = self.clock();
        self.peers
            .iter()
            .map(|(&node_id, p)| PeerStatus {
                node_id,
                reachable: p.reachable,
                synced_at: p.synced_at,
                lag_ms: p
                    .synced_at
                    .map(|s| clock.physical_ms.saturating_sub(s.physical_ms)),
                in_sync: p.in_sync(self.now_ms, self.config.gap_repair_after_ms),
            })
            .collect()
    }

    /// The node's mode (see "Mode" in [`super`]).
    pub fn mode(&self) -> Mode {
        let gap = self.config.gap_repair_after_ms;
        if self.peers.values().any(|p| !p.reachable) {
            Mode::Degraded
        } else if self.peers.values().any(|p| !p.in_sync(self.now_ms, gap)) {
            Mode::CatchUp
        } else {
            Mode::Normal
        }
    }

    /// The staleness bound of a local read now, ms: the largest lag over the members not known
    /// to have left (0 without members), `None` if some member's `synced_at` is unknown.
    pub fn staleness_ms(&self) -> Option<u64> {
        let clock = self.clock();
        self.peers.values().try_fold(0, |acc: u64, p| {
            let s = p.synced_at?;
            Some(acc.max(clock.physical_ms.saturating_sub(s.physical_ms)))
        })
    }

    /// Whether an anti-entropy session with `node` completed in this run: this node then holds
    /// everything `node` held when the session started.
    pub fn has_synced_with(&self, node: NodeId) -> bool {
        self.peers.get(&node).is_some_and(|p| p.synced_this_run)
    }

    /// Whether this run has completed anti-entropy with every member it knows (and, if it
    /// expects peers, has been active in the cluster).
    ///
    /// A node whose keyspace may be older than what it acknowledged before — started from an
    /// empty or restored data directory, or after a crash with a lax fsync policy — must not
    /// accept writes until this is true: its own counter entries and dots live in the CRDT
    /// state, and writing before it has them back would reuse them (lost increments, clashing
    /// dots that never converge).
    pub fn caught_up(&self) -> bool {
        (self.joined || !self.expect_peers) && self.peers.values().all(|p| p.synced_this_run)
    }

    /// Tombstones dropped here recently and still refused from peers.
    pub fn dropped_tombstones(&self) -> usize {
        self.dropped.len()
    }
}
