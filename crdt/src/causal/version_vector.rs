//! Version vectors: per node, the highest counter of a contiguous prefix of events.

use std::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize};
use smallvec::SmallVec;

use super::Dot;
use crate::node_id::NodeId;

/// A map from node to counter, kept as a vector sorted by node with no zero entries (a missing
/// node means 0). Small (one entry per node that ever wrote), cheap to clone and canonical to
/// encode: two equal vectors always encode to the same bytes.
///
/// One entry is held inline: most keys are written by one node, and their vector (in every
/// register and set of the keyspace) then costs no allocation. It is the size of a `Vec` and
/// encodes exactly like one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct VersionVector {
    entries: SmallVec<[(NodeId, u64); 1]>,
}

impl VersionVector {
    /// The empty vector.
    pub fn new() -> Self {
        VersionVector {
            entries: SmallVec::new(),
        }
    }

    /// The counter of `node` (0 if absent).
    pub fn get(&self, node: NodeId) -> u64 {
        match self.entries.binary_search_by_key(&node, |e| e.0) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Whether `dot` is within the prefix this vector summarises.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.node)
    }

    /// Raises the counter of `node` to at least `counter`.
    pub fn raise(&mut self, node: NodeId, counter: u64) {
        if counter == 0 {
            return;
        }
        match self.entries.binary_search_by_key(&node, |e| e.0) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.max(counter),
            Err(i) => self.entries.insert(i, (node, counter)),
        }
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VersionVector) {
        if self.entries.is_empty() {
            self.entries.clone_from(&other.entries);
            return;
        }
        for &(node, counter) in &other.entries {
            self.raise(node, counter);
        }
    }

    /// Whether every counter of `self` is at least the matching counter of `other`.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|&(node, c)| self.get(node) >= c)
    }

    /// The causal order between two vectors, `None` if they are concurrent.
    pub fn partial_cmp_causal(&self, other: &VersionVector) -> Option<Ordering> {
        match (self.dominates(other), other.dominates(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }

    /// `(node, counter)` pairs sorted by node, counters non-zero.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Whether no node has a counter.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sum of all counters: the number of events summarised.
    pub fn total(&self) -> u128 {
        self.entries.iter().map(|e| u128::from(e.1)).sum()
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (node, counter) in iter {
            vv.raise(node, counter);
        }
        vv
    }
}

impl<'de> Deserialize<'de> for VersionVector {
    /// Accepts only the canonical form (sorted by node, unique, non-zero), so that decoding and
    /// re-encoding untrusted bytes is the identity and equal states have equal bytes.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = SmallVec::<[(NodeId, u64); 1]>::deserialize(deserializer)?;
        let sorted = entries.windows(2).all(|w| w[0].0 < w[1].0);
        if !sorted || entries.iter().any(|e| e.1 == 0) {
            return Err(serde::de::Error::custom(
                "version vector must be sorted by node, without duplicates or zero counters",
            ));
        }
        Ok(VersionVector { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        pairs.iter().map(|&(n, c)| (NodeId(n), c)).collect()
    }

    #[test]
    fn merge_is_pointwise_max() {
        let mut a = vv(&[(1, 3), (3, 1)]);
        a.merge(&vv(&[(1, 2), (2, 5)]));
        assert_eq!(a, vv(&[(1, 3), (2, 5), (3, 1)]));
    }

    #[test]
    fn causal_order() {
        assert_eq!(
            vv(&[(1, 2)]).partial_cmp_causal(&vv(&[(1, 1)])),
            Some(Ordering::Greater)
        );
        assert_eq!(vv(&[(1, 2)]).partial_cmp_causal(&vv(&[(2, 1)])), None);
        assert_eq!(vv(&[]).partial_cmp_causal(&vv(&[])), Some(Ordering::Equal));
    }

    #[test]
    fn zero_counters_are_not_stored() {
        let v = vv(&[(1, 0)]);
        assert!(v.is_empty());
    }
}
