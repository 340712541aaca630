//! The identity a node has in SWIM, and how foca compares two of them.

use std::net::SocketAddr;

use crdt::NodeId;
use serde::{Deserialize, Serialize};

/// A node's SWIM identity: its node id, the address peers dial, and a generation that grows
/// with every run of the process.
///
/// foca never lets an identity that was declared down come back. The generation is what makes
/// a restarted (or wrongly declared down) node a *new* identity that replaces the old one
/// cleanly: foca's address for an identity is its node id ([`foca::Identity::addr`]), so two
/// identities with the same node id conflict and the higher generation wins
/// ([`foca::Identity::win_addr_conflict`]); when a running node learns that the cluster declared
/// it down it renews itself to the next generation ([`foca::Identity::renew`]) and rejoins.
///
/// A node should start with a generation higher than any it used before, for example the wall
/// clock in milliseconds at start (`driver::generation_from_clock`) or a counter kept on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberIdentity {
    /// The node id (bound by the node's certificate).
    pub node_id: NodeId,
    /// The address peers dial to reach this node.
    pub addr: SocketAddr,
    /// Grows with every run and every rejoin of this node.
    pub generation: u64,
}

impl MemberIdentity {
    /// An identity for `node_id` at `addr` in `generation`.
    pub fn new(node_id: NodeId, addr: SocketAddr, generation: u64) -> Self {
        MemberIdentity {
            node_id,
            addr,
            generation,
        }
    }
}

impl foca::Identity for MemberIdentity {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        // Saturating: at u64::MAX there is no newer identity, and foca then reports the node
        // defunct instead of looping.
        let generation = self.generation.checked_add(1)?;
        Some(MemberIdentity {
            generation,
            ..*self
        })
    }

    fn addr(&self) -> NodeId {
        self.node_id
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // The address breaks a tie only for the misconfiguration of two processes running with
        // one node id and generation; it keeps every member's choice the same.
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn renewal_wins_over_the_old_identity_and_keeps_the_node_id() {
        let old = MemberIdentity::new(NodeId(3), "127.0.0.1:7003".parse().unwrap(), 10);
        let new = old.renew().unwrap();
        assert_eq!(new.addr(), old.addr());
        assert_eq!(new.generation, 11);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        let last = MemberIdentity {
            generation: u64::MAX,
            ..old
        };
        assert_eq!(last.renew(), None);
    }
}
