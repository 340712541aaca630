//! The counter of a key: per-node contributions with observed-remove reset and per-node epochs.
//!
//! Each node owns one [`NodeTally`]: what it added (`p`), what it subtracted (`n`) and how many
//! writes it made (`writes`, so that `INCRBY k 0` still creates the key), each next to the part
//! of it that `DEL` removed (`rp`, `rn`, `rwrites`). A node only ever raises its own numbers, so
//! max-merge loses no increment; `DEL` copies the totals it has *observed* into the removed
//! half, so increments it did not see — concurrent ones on other nodes — survive it exactly.
//! The value is `Σ (p − rp) − (n − rn)`; the key exists while some node has a write not removed.
//!
//! **Epochs.** Once a deleted counter's tombstone is garbage-collected, a node may count the key
//! again from zero; a replica still holding the old tombstone would max-merge the new, smaller
//! numbers into the old removed ones and lose them. So a node that holds no tally of its own
//! opens a new epoch ([`fresh_floor`] of its HLC time, above any earlier epoch of that node),
//! and tallies compare by epoch first: a higher epoch replaces a lower one wholesale, equal epochs
//! merge pointwise. (A node lacks its own tally only when no replica holds a live one: see
//! [`crate::causal`] on fresh starts.) The standalone [`GCounter`](crate::GCounter) and
//! [`PnCounter`](crate::PnCounter) are the classic types this generalises.

use serde::{Deserialize, Deserializer, Serialize};

use crate::causal::fresh_floor;
use crate::error::Error;
use crate::hlc::Timestamp;
use crate::merge::Merge;
use crate::node_id::NodeId;

/// One node's contribution to a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeTally {
    /// When this node (re)started counting the key; a higher epoch replaces a lower one.
    pub epoch: u64,
    /// Sum of its increments.
    pub p: u64,
    /// Sum of its decrements.
    pub n: u64,
    /// Number of its writes.
    pub writes: u64,
    /// The part of `p` removed by `DEL`.
    pub rp: u64,
    /// The part of `n` removed by `DEL`.
    pub rn: u64,
    /// The part of `writes` removed by `DEL`.
    pub rwrites: u64,
}

impl NodeTally {
    /// This node's live contribution.
    pub fn value(&self) -> i128 {
        i128::from(self.p - self.rp) - i128::from(self.n - self.rn)
    }

    fn is_removed(&self) -> bool {
        (self.p, self.n, self.writes) == (self.rp, self.rn, self.rwrites)
    }

    fn consistent(&self) -> bool {
        self.rp <= self.p && self.rn <= self.n && self.rwrites <= self.writes
    }

    fn join(&mut self, other: &NodeTally) {
        if other.epoch > self.epoch {
            *self = *other;
        } else if other.epoch == self.epoch {
            self.p = self.p.max(other.p);
            self.n = self.n.max(other.n);
            self.writes = self.writes.max(other.writes);
            self.rp = self.rp.max(other.rp);
            self.rn = self.rn.max(other.rn);
            self.rwrites = self.rwrites.max(other.rwrites);
        }
    }
}

/// A counter with observed-remove reset; the state of both counter kinds of a key (a G counter
/// is one that is never decremented).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Counter {
    /// Sorted by node.
    tallies: Vec<(NodeId, NodeTally)>,
}

impl Counter {
    /// The tallies' memory, if any (see [`Value::heap_hint`](super::Value::heap_hint)).
    pub(crate) fn heap_hint(&self) -> Option<*const u8> {
        (!self.tallies.is_empty()).then(|| self.tallies.as_ptr().cast())
    }

    /// The live value.
    pub fn value(&self) -> i128 {
        self.tallies.iter().map(|(_, t)| t.value()).sum()
    }

    /// Whether every write has been removed (the key holds no counter).
    pub fn is_empty(&self) -> bool {
        self.tallies.iter().all(|(_, t)| t.is_removed())
    }

    /// Per-node tallies, sorted by node.
    pub fn tallies(&self) -> &[(NodeId, NodeTally)] {
        &self.tallies
    }

    /// Adds `by` (subtracts when negative) as the node of `ts`; returns the delta (that node's
    /// tally). Refuses with [`Error::Overflow`], changing nothing, if a running total of the
    /// node would pass `u64::MAX`.
    pub(crate) fn increment(&mut self, ts: Timestamp, by: i64) -> Result<Counter, Error> {
        let slot = self.tallies.binary_search_by_key(&ts.node, |e| e.0);
        let mut tally = match slot {
            Ok(i) => self.tallies[i].1,
            Err(_) => NodeTally {
                epoch: fresh_floor(ts),
                ..NodeTally::default()
            },
        };
        let side = if by >= 0 { &mut tally.p } else { &mut tally.n };
        *side = side.checked_add(by.unsigned_abs()).ok_or(Error::Overflow)?;
        tally.writes = tally.writes.checked_add(1).ok_or(Error::Overflow)?;
        match slot {
            Ok(i) => self.tallies[i].1 = tally,
            Err(i) => self.tallies.insert(i, (ts.node, tally)),
        }
        Ok(Counter {
            tallies: vec![(ts.node, tally)],
        })
    }

    /// Removes everything observed (key-level `DEL`); returns the delta.
    pub(crate) fn clear(&mut self) -> Counter {
        for (_, t) in &mut self.tallies {
            (t.rp, t.rn, t.rwrites) = (t.p, t.n, t.writes);
        }
        self.clone()
    }
}

impl Merge for Counter {
    fn merge(&mut self, other: Counter) {
        for (node, theirs) in other.tallies {
            match self.tallies.binary_search_by_key(&node, |e| e.0) {
                Ok(i) => self.tallies[i].1.join(&theirs),
                Err(i) => self.tallies.insert(i, (node, theirs)),
            }
        }
    }
}

impl<'de> Deserialize<'de> for Counter {
    /// Refuses unsorted or duplicate nodes and tallies that removed more than they counted.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tallies = Vec::<(NodeId, NodeTally)>::deserialize(deserializer)?;
        let sorted = tallies.windows(2).all(|w| w[0].0 < w[1].0);
        if !sorted || !tallies.iter().all(|(_, t)| t.consistent()) {
            return Err(serde::de::Error::custom(
                "counter tallies must be sorted by node and remove no more than they counted",
            ));
        }
        Ok(Counter { tallies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: u64, node: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(node),
        }
    }

    #[test]
    fn a_new_epoch_is_not_swallowed_by_an_old_tombstone() {
        // A long-lived counter reaches 1000 on node 1, is deleted, and a slow replica keeps the
        // tombstone while node 1 forgets the key (its tombstone was collected).
        let mut old = Counter::default();
        old.increment(ts(10, 1), 1000).unwrap();
        old.clear();
        let mut reborn = Counter::default();
        let delta = reborn.increment(ts(90_000, 1), 3).unwrap();
        old.merge(delta);
        assert_eq!(old.value(), 3);
        assert!(!old.is_empty());
        assert_eq!(old, reborn);
    }

    #[test]
    fn overflow_changes_nothing() {
        let mut c = Counter::default();
        c.increment(ts(1, 1), i64::MAX).unwrap();
        c.increment(ts(1, 1), i64::MAX).unwrap();
        let before = c.clone();
        assert_eq!(c.increment(ts(1, 1), i64::MAX), Err(Error::Overflow));
        assert_eq!(c, before);
        let mut empty = Counter::default();
        assert!(empty.increment(ts(1, 2), 0).is_ok());
        assert_eq!(empty.value(), 0);
        assert!(!empty.is_empty());
    }
}
