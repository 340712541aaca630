//! What the membership state machine asks of the world, and what it reports about the cluster.

use std::cmp::Ordering;
use std::net::SocketAddr;

use bytes::Bytes;
use crdt::NodeId;

use super::MemberIdentity;

/// An effect of feeding the state machine, taken with [`super::Membership::poll_effect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send `bytes` as one datagram to node `to`, reachable at `addr`.
    SendDatagram {
        /// The destination node.
        to: NodeId,
        /// Where it is reachable.
        addr: SocketAddr,
        /// The packet (wire version byte included).
        bytes: Bytes,
    },
    /// Call [`super::Membership::handle_timer`] with `timer` once `after_ms` have passed.
    /// Every timer must be delivered (late is fine, never is not).
    ScheduleTimer {
        /// Delay from the `now_ms` of the call that produced this effect.
        after_ms: u64,
        /// The timer to hand back.
        timer: Timer,
    },
    /// Something changed in the cluster as this member sees it.
    Event(MemberEvent),
}

/// A change in membership, for the layers above (replication, anti-entropy, admin commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member is reachable: it joined, or came back after being down or partitioned away.
    Up {
        /// The member.
        node_id: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Its generation (grows with every restart or rejoin).
        generation: u64,
    },
    /// A member was declared down: it crashed, or is cut off from us.
    Down {
        /// The member.
        node_id: NodeId,
        /// The generation that went down.
        generation: u64,
    },
    /// A member left the cluster on purpose.
    Left {
        /// The member.
        node_id: NodeId,
        /// The generation that left.
        generation: u64,
    },
    /// A live member restarted or rejoined: its identity was replaced by a newer generation
    /// while it stayed reachable. It may have lost state, so it is worth an anti-entropy round.
    Renewed {
        /// The member.
        node_id: NodeId,
        /// Its (possibly new) address.
        addr: SocketAddr,
        /// The new generation.
        generation: u64,
    },
    /// This member's own status changed.
    Local(LocalStatus),
    /// The cluster declared this member down (it was cut off); it took a new generation and is
    /// rejoining.
    LocalRenewed {
        /// The new generation.
        generation: u64,
    },
}

/// This member's own view of its place in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalStatus {
    /// Not (or no longer) known to be part of a cluster: started, or renewed and rejoining.
    Joining,
    /// At least one live member knows this member.
    Active,
    /// Every member this one knew is down or gone: alone, or cut off.
    Isolated,
    /// Left the cluster; inputs are ignored from now on.
    Left,
}

/// The SWIM state of a member, as shown by `CLUSTER MEMBERS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; declared down unless it refutes in time. Still treated as live.
    Suspect,
    /// Declared down: crashed, or cut off.
    Down,
    /// Left on purpose.
    Left,
}

impl MemberState {
    /// Alive or suspect: treated as part of the cluster.
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }

    /// The lower-case name used by admin commands.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }
}

/// One row of the member table (this member itself is not in it; see
/// [`super::Membership::identity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member.
    pub node_id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// Its generation (restart/rejoin counter).
    pub generation: u64,
    /// Its SWIM incarnation within the generation (grows as it refutes suspicion).
    pub incarnation: u16,
    /// Its state.
    pub state: MemberState,
    /// The `now_ms` at which `state` last changed.
    pub changed_at_ms: u64,
}

impl MemberInfo {
    /// The identity this row describes.
    pub fn identity(&self) -> MemberIdentity {
        MemberIdentity::new(self.node_id, self.addr, self.generation)
    }
}

/// Counters of the membership state machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipCounters {
    /// Datagrams accepted and handed to foca.
    pub datagrams_handled: u64,
    /// Datagrams whose SWIM sender is not the node authenticated by TLS.
    pub rejected_impersonation: u64,
    /// Datagrams that could not be decoded, had an unknown wire version, or that foca refused.
    pub rejected_malformed: u64,
}

/// A timer to hand back to [`super::Membership::handle_timer`]. Opaque: drivers only store and
/// return it. Timers due at the same instant should be delivered in [`Ord`] order (foca's
/// probe cycle expects its indirect-probe step before the next probe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer(pub(crate) TimerKind);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    Swim(foca::Timer<MemberIdentity>),
    /// Announce again while not active; the token invalidates timers from before a change.
    Rejoin(u64),
}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (TimerKind::Swim(a), TimerKind::Swim(b)) => a.cmp(b),
            (TimerKind::Swim(_), TimerKind::Rejoin(_)) => Ordering::Less,
            (TimerKind::Rejoin(_), TimerKind::Swim(_)) => Ordering::Greater,
            (TimerKind::Rejoin(a), TimerKind::Rejoin(b)) => a.cmp(b),
        }
    }
}
