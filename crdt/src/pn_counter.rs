//! Positive-negative counter: two grow-only counters, one for increments and one for decrements.
//!
//! The value is `P - N`. Each side only grows, so max-merge per node is correct and concurrent
//! `INCRBY` / `DECRBY` on different nodes all count, in any order, with duplicates.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::g_counter::GCounter;
use crate::merge::Merge;
use crate::node_id::NodeId;

/// A counter that can go up and down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    p: GCounter,
    n: GCounter,
}

impl PnCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        PnCounter::default()
    }

    /// `P - N`. Wide enough that no sequence of `i64` increments can overflow it.
    pub fn value(&self) -> i128 {
        // Each side is at most nodes × u64::MAX; with fewer than 2^63 nodes the difference fits.
        self.p.value() as i128 - self.n.value() as i128
    }

    /// Increments (or decrements, when `by < 0`) the contribution of `node`; returns the delta.
    /// Refuses with [`Error::Overflow`] if that node's running total of increments or of
    /// decrements would pass `u64::MAX`; the state is unchanged then.
    pub fn increment(&mut self, node: NodeId, by: i64) -> Result<PnCounter, Error> {
        let mut delta = PnCounter::new();
        if by >= 0 {
            delta.p = self.p.increment(node, by.unsigned_abs())?;
        } else {
            delta.n = self.n.increment(node, by.unsigned_abs())?;
        }
        Ok(delta)
    }

    /// Per-node `(node, increments, decrements)`, sorted by node.
    pub fn contributions(&self) -> Vec<(NodeId, u64, u64)> {
        let mut out: Vec<(NodeId, u64, u64)> =
            self.p.contributions().map(|(n, c)| (n, c, 0)).collect();
        for (node, c) in self.n.contributions() {
            match out.binary_search_by_key(&node, |e| e.0) {
                Ok(i) => out[i].2 = c,
                Err(i) => out.insert(i, (node, 0, c)),
            }
        }
        out
    }

    /// Whether `other ≤ self` in the lattice.
    pub fn dominates(&self, other: &PnCounter) -> bool {
        self.p.dominates(&other.p) && self.n.dominates(&other.n)
    }
}

impl Merge for PnCounter {
    fn merge(&mut self, other: Self) {
        self.p.merge(other.p);
        self.n.merge(other.n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_and_decrements_from_many_nodes() {
        let mut x = PnCounter::new();
        let mut y = PnCounter::new();
        let d1 = x.increment(NodeId(1), 10).unwrap();
        let d2 = y.increment(NodeId(2), -3).unwrap();
        let d3 = y.increment(NodeId(2), i64::MIN).unwrap();
        x.merge(d2);
        x.merge(d3);
        y.merge(d1);
        assert_eq!(x, y);
        assert_eq!(x.value(), 10 - 3 + i128::from(i64::MIN));
        assert_eq!(
            x.contributions(),
            vec![(NodeId(1), 10, 0), (NodeId(2), 0, 3 + (1u64 << 63))]
        );
    }
}
