//! Bookkeeping of tombstone garbage collection: per member, which of this node's refresh epochs
//! anti-entropy proved it holds, and long enough ago; and the tombstones recently dropped here,
//! refused if peers send them back. The safety argument is in [`super`] ("Tombstone GC").

use std::collections::{HashMap, VecDeque};

use crdt::{Merge, Value};

use crate::digest::entry_hash;

/// Completed proofs waiting for the grace period; older ones are folded conservatively.
const PENDING_PROOFS_MAX: usize = 64;

/// The epochs of this node proved held by one member: after a completed anti-entropy session
/// that started at local epoch `e`, the member holds (at least) every state this node had at
/// `e`. A proof counts for GC only `grace` after it completed.
#[derive(Clone, Debug, Default)]
pub(crate) struct EpochHistory {
    /// The highest epoch whose proof is older than the grace period.
    safe: Option<u64>,
    /// `(epoch, completed at ms)` of younger proofs, by completion time.
    pending: VecDeque<(u64, u64)>,
}

impl EpochHistory {
    pub(crate) fn record(&mut self, epoch: u64, now_ms: u64) {
        if self.pending.len() >= PENDING_PROOFS_MAX {
            // Merge the two oldest into one that claims less: the smaller epoch, proved at the
            // later time.
            let (e1, _) = self.pending.pop_front().expect("non-empty");
            let (e2, t2) = self.pending.pop_front().expect("at least two");
            self.pending.push_front((e1.min(e2), t2));
        }
        self.pending.push_back((epoch, now_ms));
    }

    /// The highest epoch proved at least `grace_ms` ago.
    pub(crate) fn safe_epoch(&mut self, now_ms: u64, grace_ms: u64) -> Option<u64> {
        while let Some(&(epoch, at)) = self.pending.front() {
            if at.saturating_add(grace_ms) > now_ms {
                break;
            }
            self.pending.pop_front();
            self.safe = Some(self.safe.map_or(epoch, |s| s.max(epoch)));
        }
        self.safe
    }

    /// Forgets every proof (the member restarted and may hold older state than it proved).
    pub(crate) fn reset(&mut self) {
        *self = EpochHistory::default();
    }
}

/// Tombstones dropped here recently, refused when peers send them (or anything they cover)
/// back before they have dropped them too.
#[derive(Debug, Default)]
pub(crate) struct Dropped {
    /// Key to (tombstone, its entry hash, refused until).
    by_key: HashMap<Vec<u8>, (Value, u64, u64)>,
    expiry: VecDeque<(u64, Vec<u8>)>,
}

impl Dropped {
    pub(crate) fn insert(&mut self, key: Vec<u8>, value: Value, until_ms: u64) {
        let hash = entry_hash(&key, value.fingerprint());
        self.by_key.insert(key.clone(), (value, hash, until_ms));
        self.expiry.push_back((until_ms, key));
    }

    pub(crate) fn expire(&mut self, now_ms: u64) {
        while let Some((until, _)) = self.expiry.front() {
            if *until > now_ms {
                break;
            }
            let (_, key) = self.expiry.pop_front().expect("checked");
            // A key dropped again later has a later expiry queued behind this one.
            if self.by_key.get(&key).is_some_and(|e| e.2 <= now_ms) {
                self.by_key.remove(&key);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether `value` for `key` adds nothing to a tombstone dropped here: it is one of the
    /// states the tombstone cancelled, or the tombstone itself.
    pub(crate) fn covers(&self, key: &[u8], value: &Value) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|(t, _, _)| t.clone().merged(value.clone()) == *t)
    }

    /// Whether a peer's entry hash for `key` is exactly a tombstone dropped here.
    pub(crate) fn is_dropped_hash(&self, key: &[u8], hash: u64) -> bool {
        self.by_key.get(key).is_some_and(|(_, h, _)| *h == hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{NodeId, Timestamp};

    #[test]
    fn proofs_count_only_after_the_grace_period() {
        let mut h = EpochHistory::default();
        h.record(3, 100);
        h.record(7, 200);
        assert_eq!(h.safe_epoch(150, 100), None);
        assert_eq!(h.safe_epoch(250, 100), Some(3));
        assert_eq!(h.safe_epoch(300, 100), Some(7));
        h.reset();
        assert_eq!(h.safe_epoch(10_000, 100), None);
    }

    #[test]
    fn folding_old_proofs_never_claims_more() {
        let mut h = EpochHistory::default();
        for i in 0..200u64 {
            h.record(1000 - i, i);
        }
        // Every recorded epoch ≥ 801; folding may only lower what is claimed.
        let safe = h.safe_epoch(10_000, 0).unwrap();
        assert!(safe <= 1000);
        assert!(h.pending.is_empty());
    }

    #[test]
    fn dropped_tombstones_cover_what_they_cancelled() {
        let ts = |ms| Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(1),
        };
        let mut v = Value::new();
        let old = v.set_register(ts(1), b"x");
        v.delete().unwrap();
        let tomb = v.clone();
        let mut d = Dropped::default();
        d.insert(b"k".to_vec(), tomb.clone(), 50);
        assert!(d.covers(b"k", &old));
        assert!(d.covers(b"k", &tomb));
        assert!(d.is_dropped_hash(b"k", entry_hash(b"k", tomb.fingerprint())));
        let mut newer = tomb.clone();
        let w = newer.set_register(ts(2), b"y");
        assert!(!d.covers(b"k", &w), "a later write is new information");
        d.expire(50);
        assert_eq!(d.len(), 0);
        assert!(!d.covers(b"k", &old));
    }
}
