//! Grow-only counter.
//!
//! Each node counts its own increments in its own entry; merge takes the per-node maximum, and
//! the value is the sum. Two nodes incrementing concurrently never lose an increment because they
//! never write the same entry. Negative increments are refused: a node's entry only grows, which is
//! what makes max-merge correct.

use serde::{Deserialize, Serialize};

use crate::causal::VersionVector;
use crate::error::Error;
use crate::merge::Merge;
use crate::node_id::NodeId;

/// A grow-only counter: per-node contributions, max-merged.
///
/// Its lattice is exactly a version vector's (pointwise max of per-node counts), so it reuses
/// [`VersionVector`] and its canonical encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GCounter {
    counts: VersionVector,
}

impl GCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        GCounter::default()
    }

    /// The sum of every node's contribution.
    pub fn value(&self) -> u128 {
        self.counts.total()
    }

    /// The contribution of `node`.
    pub fn get(&self, node: NodeId) -> u64 {
        self.counts.get(node)
    }

    /// Per-node contributions, sorted by node.
    pub fn contributions(&self) -> impl ExactSizeIterator<Item = (NodeId, u64)> + '_ {
        self.counts.iter()
    }

    /// Adds `n` to the contribution of `node` and returns the delta (that node's new entry).
    /// Refuses with [`Error::Overflow`] if the node's own entry would pass `u64::MAX`.
    pub fn increment(&mut self, node: NodeId, n: u64) -> Result<GCounter, Error> {
        let next = self
            .counts
            .get(node)
            .checked_add(n)
            .ok_or(Error::Overflow)?;
        self.counts.raise(node, next);
        let mut delta = GCounter::new();
        delta.counts.raise(node, next);
        Ok(delta)
    }

    /// Whether every contribution of `self` is at least that of `other` (`other ≤ self`).
    pub fn dominates(&self, other: &GCounter) -> bool {
        self.counts.dominates(&other.counts)
    }
}

impl Merge for GCounter {
    fn merge(&mut self, other: Self) {
        self.counts.merge(&other.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_increments_are_all_kept() {
        let (a, b) = (NodeId(1), NodeId(2));
        let mut x = GCounter::new();
        let mut y = GCounter::new();
        let dx = x.increment(a, 3).unwrap();
        let dy = y.increment(b, 4).unwrap();
        x.merge(dy);
        y.merge(dx.clone());
        y.merge(dx);
        assert_eq!(x, y);
        assert_eq!(x.value(), 7);
    }

    #[test]
    fn overflow_of_own_entry_is_refused_and_state_kept() {
        let mut x = GCounter::new();
        x.increment(NodeId(1), u64::MAX).unwrap();
        assert_eq!(x.increment(NodeId(1), 1), Err(Error::Overflow));
        assert_eq!(x.get(NodeId(1)), u64::MAX);
    }
}
