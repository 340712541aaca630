//! Telling "left" from "down".
//!
//! In SWIM a graceful leave and a crash end the same way: the identity is declared down. crdtkv
//! needs the difference (a member that left no longer holds back tombstone collection or the
//! staleness bound; a member that is down will come back). So a leaving member also spreads a
//! small notice, `(node id, generation)`, as a foca custom broadcast: foca piggybacks it on its
//! packets and every member re-disseminates it like a membership update, so it reaches the whole
//! cluster even after the leaver is gone. A member that is declared down and has such a notice
//! for its generation (or a later one) is shown as left.
//!
//! Notices come from authenticated cluster members only, as everything foca carries does.

use std::collections::HashMap;
use std::sync::Arc;

use crdt::NodeId;
use parking_lot::Mutex;

use super::MemberIdentity;

const NOTICE_BYTES: usize = 16;

/// `node_id` left the cluster in `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaveNotice {
    pub(crate) node_id: NodeId,
    pub(crate) generation: u64,
}

impl LeaveNotice {
    pub(crate) fn encode(self) -> [u8; NOTICE_BYTES] {
        let mut out = [0u8; NOTICE_BYTES];
        out[..8].copy_from_slice(&self.node_id.get().to_be_bytes());
        out[8..].copy_from_slice(&self.generation.to_be_bytes());
        out
    }

    fn decode(data: &[u8]) -> Result<Self, BadNotice> {
        let data: &[u8; NOTICE_BYTES] = data.try_into().map_err(|_| BadNotice(data.len()))?;
        let (id, generation) = data.split_at(8);
        Ok(LeaveNotice {
            node_id: NodeId(u64::from_be_bytes(id.try_into().expect("8 bytes"))),
            generation: u64::from_be_bytes(generation.try_into().expect("8 bytes")),
        })
    }

    /// Whether this notice covers `identity` (it left in that generation or a later one).
    pub(crate) fn covers(&self, identity: &MemberIdentity) -> bool {
        self.node_id == identity.node_id && self.generation >= identity.generation
    }
}

#[derive(Debug, thiserror::Error)]
#[error("leave notice of {0} bytes, expected {NOTICE_BYTES}")]
pub(crate) struct BadNotice(usize);

/// Notices seen so far (the latest generation per node) and those not yet taken by the
/// membership state machine. Shared with the handler that foca owns, which has no accessor.
#[derive(Debug, Default)]
pub(crate) struct LeaveLog {
    latest: HashMap<NodeId, u64>,
    fresh: Vec<LeaveNotice>,
}

impl LeaveLog {
    pub(crate) fn latest(&self, node_id: NodeId) -> Option<LeaveNotice> {
        self.latest.get(&node_id).map(|&generation| LeaveNotice {
            node_id,
            generation,
        })
    }

    pub(crate) fn take_fresh(&mut self) -> Vec<LeaveNotice> {
        std::mem::take(&mut self.fresh)
    }
}

/// foca's custom broadcast handler for leave notices.
pub(crate) struct LeaveHandler {
    pub(crate) log: Arc<Mutex<LeaveLog>>,
}

impl foca::BroadcastHandler<MemberIdentity> for LeaveHandler {
    type Key = LeaveNotice;
    type Error = BadNotice;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&MemberIdentity>,
    ) -> Result<Option<LeaveNotice>, BadNotice> {
        let notice = LeaveNotice::decode(data)?;
        let mut log = self.log.lock();
        if log
            .latest
            .get(&notice.node_id)
            .is_some_and(|&seen| seen >= notice.generation)
        {
            // Old news: returning None stops foca from spreading it again.
            return Ok(None);
        }
        log.latest.insert(notice.node_id, notice.generation);
        log.fresh.push(notice);
        Ok(Some(notice))
    }
}

impl foca::Invalidates for LeaveNotice {
    fn invalidates(&self, other: &Self) -> bool {
        self.node_id == other.node_id && self.generation >= other.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::BroadcastHandler;

    #[test]
    fn notices_round_trip_and_old_news_is_not_spread() {
        let log = Arc::new(Mutex::new(LeaveLog::default()));
        let mut handler = LeaveHandler { log: log.clone() };
        let notice = LeaveNotice {
            node_id: NodeId(4),
            generation: 9,
        };
        let bytes = notice.encode();
        assert_eq!(handler.receive_item(&bytes, None).unwrap(), Some(notice));
        assert_eq!(handler.receive_item(&bytes, None).unwrap(), None);
        let older = LeaveNotice {
            generation: 8,
            ..notice
        };
        assert_eq!(handler.receive_item(&older.encode(), None).unwrap(), None);
        assert!(handler.receive_item(&bytes[..15], None).is_err());
        assert_eq!(log.lock().take_fresh(), vec![notice]);
        assert!(log.lock().take_fresh().is_empty());
    }
}
