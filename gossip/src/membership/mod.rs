//! SWIM membership: who is in the cluster, who is alive, who is down, who left.
//!
//! ## Model
//! [`Membership`] is a sans-IO state machine around [foca](https://docs.rs/foca) (SWIM with
//! suspicion, piggybacked dissemination and periodic gossip). It owns no socket, clock or
//! thread: a caller feeds it inputs — [`Membership::join`], [`Membership::handle_datagram`],
//! [`Membership::handle_timer`], [`Membership::leave`] — each with the current time `now_ms`
//! (milliseconds on any monotonic clock the caller chooses), and then drains
//! [`Membership::poll_effect`] for what to do: send a datagram, schedule a timer, report a
//! membership event. Randomness is an RNG passed at construction. The same inputs in the same
//! order give the same effects, so tests and the cluster simulation run it on virtual time with
//! an in-memory network; [`driver`] is the tokio shell that runs it over the QUIC transport.
//!
//! ## Identities
//! A member is a [`MemberIdentity`] `{ node_id, addr, generation }`; foca keys members by node
//! id, and a higher generation replaces a lower one. A restarted node starts with a higher
//! generation and replaces its old identity; a running node that the cluster declared down
//! (for example after a partition) renews itself to the next generation and rejoins on its own.
//!
//! ## Authentication
//! The transport delivers each datagram with the node id of the sender's verified certificate.
//! [`Membership::handle_datagram`] decodes the SWIM header before foca sees the packet and drops
//! it unless the identity claiming to have sent it has that same node id, so no member can speak
//! for another. (What a packet says *about* third parties is SWIM gossip, relayed by design;
//! only cluster members can send it at all.)
//!
//! ## Joining
//! Seeds are `(node id, address)` pairs: the driver learns a seed's node id from its certificate
//! by connecting to the configured address. Joining announces to the seeds; while a member has no
//! live peer (not joined yet, or cut off from everyone) it announces again every
//! `rejoin_period_ms` to its seeds and known members, because foca itself stays silent when it
//! has no live member.
//!
//! ## The member table
//! [`Membership::members`] lists every member ever seen (not this one) with its SWIM state
//! (alive / suspect / down / left), generation, incarnation, address and the time of its last
//! change: what `CLUSTER MEMBERS` shows. "Left" is told from "down" by a leave notice the
//! leaving member spreads as a foca custom broadcast, re-disseminated by every member.
//!
//! ## Wire format
//! A datagram is one version byte (1) followed by a foca packet (postcard encoding), at most
//! `packet_bytes_max` bytes in all.

mod config;
pub mod driver;
mod effect;
mod identity;
mod leave;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use crdt::NodeId;
use foca::{AccumulatingRuntime, Codec, Foca, OwnedNotification, PostcardCodec};
use parking_lot::Mutex;

pub use config::MembershipConfig;
pub use effect::{
    Effect, LocalStatus, MemberEvent, MemberInfo, MemberState, MembershipCounters, Timer,
};
pub use identity::MemberIdentity;

use crate::error::{Error, Result};
use effect::TimerKind;
use leave::{LeaveHandler, LeaveLog, LeaveNotice};

/// Version byte in front of every SWIM datagram.
pub const WIRE_VERSION: u8 = 1;

/// foca takes a `rand_core` 0.10 RNG; the workspace's RNGs are `rand` 0.9. This adapter is the
/// only place the two meet.
struct FocaRng(Box<dyn rand::RngCore + Send>);

impl rand_core_010::TryRng for FocaRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> std::result::Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> std::result::Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

type Engine = Foca<MemberIdentity, PostcardCodec, FocaRng, LeaveHandler>;

/// The sans-IO SWIM state machine of one member (see the module docs).
pub struct Membership {
    foca: Engine,
    runtime: AccumulatingRuntime<MemberIdentity>,
    config: MembershipConfig,
    members: BTreeMap<NodeId, MemberInfo>,
    seeds: Vec<(NodeId, SocketAddr)>,
    effects: VecDeque<Effect>,
    status: LocalStatus,
    leaves: Arc<Mutex<LeaveLog>>,
    rejoin_token: u64,
    rejoin_pending: bool,
    rejoin_cursor: usize,
    counters: MembershipCounters,
    now_ms: u64,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("identity", self.foca.identity())
            .field("status", &self.status)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A member with `identity` that has joined nothing yet. `rng` drives every random choice
    /// (whom to probe, whom to gossip to); seed it for reproducible runs.
    pub fn new(
        identity: MemberIdentity,
        config: MembershipConfig,
        rng: impl rand::RngCore + Send + 'static,
        now_ms: u64,
    ) -> Result<Self> {
        config.validate()?;
        let leaves = Arc::new(Mutex::new(LeaveLog::default()));
        let foca = Foca::with_custom_broadcast(
            identity,
            config.to_foca(),
            FocaRng(Box::new(rng)),
            PostcardCodec,
            LeaveHandler {
                log: leaves.clone(),
            },
        );
        let mut membership = Membership {
            foca,
            runtime: AccumulatingRuntime::new(),
            config,
            members: BTreeMap::new(),
            seeds: Vec::new(),
            effects: VecDeque::new(),
            status: LocalStatus::Joining,
            leaves,
            rejoin_token: 0,
            rejoin_pending: false,
            rejoin_cursor: 0,
            counters: MembershipCounters::default(),
            now_ms,
        };
        membership.drain();
        Ok(membership)
    }

    /// This member's current identity (its generation grows when it renews itself).
    pub fn identity(&self) -> MemberIdentity {
        *self.foca.identity()
    }

    /// This member's status.
    pub fn status(&self) -> LocalStatus {
        self.status
    }

    /// Whether at least one live member knows this one.
    pub fn is_active(&self) -> bool {
        self.status == LocalStatus::Active
    }

    /// The configuration in force.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// Every other member ever seen, by node id.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &MemberInfo> {
        self.members.values()
    }

    /// One member's row.
    pub fn member(&self, node_id: NodeId) -> Option<&MemberInfo> {
        self.members.get(&node_id)
    }

    /// Counters of rejected and handled datagrams.
    pub fn counters(&self) -> MembershipCounters {
        self.counters
    }

    /// The next effect to carry out, in order. Drain it after every input.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Joins through `seeds` (node id and address; this member itself is skipped): announces to
    /// each, and remembers them for rejoining. Can be called again as more seeds resolve.
    pub fn join(&mut self, seeds: &[(NodeId, SocketAddr)], now_ms: u64) {
        self.now_ms = now_ms;
        if self.status == LocalStatus::Left {
            return;
        }
        let me = self.identity().node_id;
        for &(node_id, addr) in seeds.iter().filter(|(id, _)| *id != me) {
            match self.seeds.iter_mut().find(|(id, _)| *id == node_id) {
                Some(seed) => seed.1 = addr,
                None => self.seeds.push((node_id, addr)),
            }
            // Generation 0 stands for "whatever generation it is now": foca accepts an
            // announce addressed to any identity with its node id.
            let target = MemberIdentity::new(node_id, addr, 0);
            if let Err(e) = self.foca.announce(target, &mut self.runtime) {
                tracing::debug!(error = %e, %node_id, "announce to seed failed");
            }
        }
        self.drain();
    }

    /// Handles a datagram that the transport authenticated as coming from node `from`.
    ///
    /// Rejected (and counted), without touching state, when the SWIM sender inside is another
    /// node ([`Error::Impersonation`]) or the packet is not a crdtkv SWIM packet
    /// ([`Error::Swim`]).
    pub fn handle_datagram(&mut self, from: NodeId, bytes: &[u8], now_ms: u64) -> Result<()> {
        self.now_ms = now_ms;
        if self.status == LocalStatus::Left {
            return Err(Error::Left);
        }
        let packet = match bytes.split_first() {
            Some((&WIRE_VERSION, packet)) => packet,
            Some((version, _)) => {
                self.counters.rejected_malformed += 1;
                return Err(Error::Swim(format!("unknown wire version {version}")));
            }
            None => {
                self.counters.rejected_malformed += 1;
                return Err(Error::Swim("empty datagram".into()));
            }
        };
        let header =
            Codec::<MemberIdentity>::decode_header(&mut PostcardCodec, packet).map_err(|e| {
                self.counters.rejected_malformed += 1;
                Error::Swim(format!("bad header: {e}"))
            })?;
        if header.src.node_id != from {
            self.counters.rejected_impersonation += 1;
            return Err(Error::Impersonation {
                claimed: header.src.node_id,
                authenticated: from,
            });
        }
        let handled = self.foca.handle_data(packet, &mut self.runtime);
        self.drain();
        match handled {
            Ok(()) => {
                self.counters.datagrams_handled += 1;
                Ok(())
            }
            Err(e) => {
                self.counters.rejected_malformed += 1;
                Err(Error::Swim(e.to_string()))
            }
        }
    }

    /// Handles a timer scheduled by an earlier [`Effect::ScheduleTimer`].
    pub fn handle_timer(&mut self, timer: Timer, now_ms: u64) {
        self.now_ms = now_ms;
        if self.status == LocalStatus::Left {
            return;
        }
        match timer.0 {
            TimerKind::Swim(timer) => {
                if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                    tracing::debug!(error = %e, "SWIM timer");
                }
            }
            TimerKind::Rejoin(token) if token == self.rejoin_token => {
                self.rejoin_pending = false;
                if matches!(self.status, LocalStatus::Joining | LocalStatus::Isolated) {
                    self.announce_rejoin();
                }
            }
            TimerKind::Rejoin(_) => {}
        }
        self.drain();
    }

    /// Leaves the cluster: spreads a leave notice and declares this identity down to a few
    /// live members, which spread it further. Further inputs are ignored.
    pub fn leave(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        if self.status == LocalStatus::Left {
            return;
        }
        let me = self.identity();
        let notice = LeaveNotice {
            node_id: me.node_id,
            generation: me.generation,
        };
        if let Err(e) = self.foca.add_broadcast(&notice.encode()) {
            tracing::debug!(error = %e, "leave notice");
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(error = %e, "leave");
        }
        // A second round to other random members: datagrams get lost, and a leave is sent once.
        if let Err(e) = self.foca.gossip(&mut self.runtime) {
            tracing::debug!(error = %e, "leave gossip");
        }
        self.set_status(LocalStatus::Left);
        self.drain();
    }

    fn announce_rejoin(&mut self) {
        let me = self.identity().node_id;
        let mut targets: Vec<MemberIdentity> = self
            .members
            .values()
            .filter(|m| m.state != MemberState::Left)
            .map(MemberInfo::identity)
            .collect();
        for &(node_id, addr) in &self.seeds {
            if !targets.iter().any(|t| t.node_id == node_id) {
                targets.push(MemberIdentity::new(node_id, addr, 0));
            }
        }
        targets.retain(|t| t.node_id != me);
        if targets.is_empty() {
            return;
        }
        // Rotate through targets so that a large member list is covered over a few rounds.
        let count = targets.len().min(self.config.rejoin_targets_max);
        for i in 0..count {
            let target = targets[(self.rejoin_cursor + i) % targets.len()];
            if let Err(e) = self.foca.announce(target, &mut self.runtime) {
                tracing::debug!(error = %e, "rejoin announce");
            }
        }
        self.rejoin_cursor = self.rejoin_cursor.wrapping_add(count);
    }

    fn emit(&mut self, event: MemberEvent) {
        self.effects.push_back(Effect::Event(event));
    }

    fn set_status(&mut self, status: LocalStatus) {
        if self.status != status {
            self.status = status;
            self.emit(MemberEvent::Local(status));
        }
    }

    /// Turns what foca produced into effects and keeps the member table in step.
    fn drain(&mut self) {
        loop {
            let fresh = self.leaves.lock().take_fresh();
            for notice in fresh {
                self.on_leave_notice(notice);
            }
            if self.runtime.backlog() == 0 {
                break;
            }
            while let Some(notification) = self.runtime.to_notify() {
                self.on_notification(notification);
            }
            while let Some((to, data)) = self.runtime.to_send() {
                let mut bytes = BytesMut::with_capacity(data.len() + 1);
                bytes.put_u8(WIRE_VERSION);
                bytes.extend_from_slice(&data);
                self.effects.push_back(Effect::SendDatagram {
                    to: to.node_id,
                    addr: to.addr,
                    bytes: bytes.freeze(),
                });
            }
            while let Some((after, timer)) = self.runtime.to_schedule() {
                self.effects.push_back(Effect::ScheduleTimer {
                    after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                    timer: Timer(TimerKind::Swim(timer)),
                });
            }
        }
        self.sync_states();
        let waiting = matches!(self.status, LocalStatus::Joining | LocalStatus::Isolated);
        if waiting && !self.rejoin_pending {
            self.rejoin_pending = true;
            self.rejoin_token += 1;
            self.effects.push_back(Effect::ScheduleTimer {
                after_ms: self.config.rejoin_period_ms,
                timer: Timer(TimerKind::Rejoin(self.rejoin_token)),
            });
        }
    }

    fn on_leave_notice(&mut self, notice: LeaveNotice) {
        let now = self.now_ms;
        let Some(row) = self.members.get_mut(&notice.node_id) else {
            return;
        };
        if row.state == MemberState::Down && notice.covers(&row.identity()) {
            row.state = MemberState::Left;
            row.changed_at_ms = now;
            let (node_id, generation) = (row.node_id, row.generation);
            self.emit(MemberEvent::Left {
                node_id,
                generation,
            });
        }
    }

    fn on_notification(&mut self, notification: OwnedNotification<MemberIdentity>) {
        let now = self.now_ms;
        match notification {
            OwnedNotification::MemberUp(id) => {
                self.members.insert(
                    id.node_id,
                    MemberInfo {
                        node_id: id.node_id,
                        addr: id.addr,
                        generation: id.generation,
                        incarnation: 0,
                        state: MemberState::Alive,
                        changed_at_ms: now,
                    },
                );
                self.emit(MemberEvent::Up {
                    node_id: id.node_id,
                    addr: id.addr,
                    generation: id.generation,
                });
            }
            OwnedNotification::MemberDown(id) => {
                let left = self
                    .leaves
                    .lock()
                    .latest(id.node_id)
                    .is_some_and(|notice| notice.covers(&id));
                let Some(row) = self.members.get_mut(&id.node_id) else {
                    return;
                };
                // A newer generation may already have replaced this identity.
                if row.generation != id.generation || !row.state.is_live() {
                    return;
                }
                row.state = if left {
                    MemberState::Left
                } else {
                    MemberState::Down
                };
                row.changed_at_ms = now;
                let (node_id, generation) = (id.node_id, id.generation);
                self.emit(if left {
                    MemberEvent::Left {
                        node_id,
                        generation,
                    }
                } else {
                    MemberEvent::Down {
                        node_id,
                        generation,
                    }
                });
            }
            OwnedNotification::Rename(_old, new) => {
                let row = self.members.entry(new.node_id).or_insert(MemberInfo {
                    node_id: new.node_id,
                    addr: new.addr,
                    generation: new.generation,
                    incarnation: 0,
                    state: MemberState::Down,
                    changed_at_ms: now,
                });
                row.addr = new.addr;
                row.generation = new.generation;
                // If it was down, the MemberUp that follows reports it; if it stayed up, this
                // is the only trace of its restart.
                if row.state.is_live() {
                    self.emit(MemberEvent::Renewed {
                        node_id: new.node_id,
                        addr: new.addr,
                        generation: new.generation,
                    });
                }
            }
            OwnedNotification::Active => self.set_status(LocalStatus::Active),
            OwnedNotification::Idle => self.set_status(LocalStatus::Isolated),
            OwnedNotification::Rejoin(id) => {
                self.emit(MemberEvent::LocalRenewed {
                    generation: id.generation,
                });
                self.set_status(LocalStatus::Joining);
            }
            OwnedNotification::Defunct => {
                if self.status != LocalStatus::Left {
                    // Declared down and foca could not renew (generation exhausted): nothing
                    // more can be done by this process.
                    tracing::error!("this member was declared down and cannot renew itself");
                    self.set_status(LocalStatus::Isolated);
                }
            }
        }
    }

    /// Copies suspicion and incarnations from foca, which reports neither as notifications.
    fn sync_states(&mut self) {
        let now = self.now_ms;
        for member in self.foca.iter_membership_state() {
            let id = member.id();
            let Some(row) = self.members.get_mut(&id.node_id) else {
                continue;
            };
            if row.generation != id.generation {
                continue;
            }
            row.incarnation = member.incarnation();
            let state = match member.state() {
                foca::State::Alive => MemberState::Alive,
                foca::State::Suspect => MemberState::Suspect,
                foca::State::Down => continue,
            };
            if row.state.is_live() && row.state != state {
                row.state = state;
                row.changed_at_ms = now;
            }
        }
    }
}
