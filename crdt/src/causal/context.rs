//! Dotted causal context: a version vector plus the dots seen beyond it.

use serde::{Deserialize, Deserializer, Serialize};
use smallvec::SmallVec;

use super::{Dot, VersionVector};
use crate::node_id::NodeId;

/// The set of events (dots) a causal CRDT has seen.
///
/// Kept compact: `vv` summarises each node's contiguous prefix, `cloud` holds the other seen
/// dots, sorted, none covered by `vv` and none directly after it (those fold into `vv`). Equal
/// sets of dots therefore have equal representations and equal encodings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct CausalContext {
    vv: VersionVector,
    cloud: Cloud,
}

/// The cloud of a context: sorted dots, usually none. One word, and no allocation while empty
/// (every register and counter of the keyspace holds a context, so this keeps a key's register
/// in a smaller allocation class); encoded like a `Vec<Dot>`. Where there is a cloud it is
/// mostly one or two dots (the delta of an overwrite names the entries it replaces), held in
/// the box itself: one allocation, as a `Vec` would make.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Cloud(Option<Box<CloudDots>>);

/// The dots of a non-empty cloud.
type CloudDots = SmallVec<[Dot; 2]>;

impl Cloud {
    fn from_dots(dots: CloudDots) -> Self {
        Cloud((!dots.is_empty()).then(|| Box::new(dots)))
    }

    /// The dots, to change in place; [`normalize`](Self::normalize) afterwards.
    fn vec_mut(&mut self) -> &mut CloudDots {
        self.0.get_or_insert_with(Box::default)
    }

    /// Frees the storage of an emptied cloud, so equal clouds are equal.
    fn normalize(&mut self) {
        if self.0.as_ref().is_some_and(|v| v.is_empty()) {
            self.0 = None;
        }
    }
}

impl std::ops::Deref for Cloud {
    type Target = [Dot];
    fn deref(&self) -> &[Dot] {
        self.0.as_deref().map_or(&[], SmallVec::as_slice)
    }
}

impl Serialize for Cloud {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        CausalContext {
            vv: VersionVector::new(),
            cloud: Cloud::default(),
        }
    }

    /// A context holding exactly the dots of `vv`.
    pub fn from_vv(vv: VersionVector) -> Self {
        CausalContext {
            vv,
            cloud: Cloud::default(),
        }
    }

    /// The contiguous part.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// The dots seen beyond the contiguous part, sorted.
    pub fn cloud(&self) -> &[Dot] {
        &self.cloud
    }

    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: Dot) -> bool {
        self.vv.contains(dot) || self.cloud.binary_search(&dot).is_ok()
    }

    /// Whether this context holds exactly the dots of `dot.node` from 1 up to `dot`.
    pub fn is_prefix_of(&self, dot: Dot) -> bool {
        self.cloud.is_empty()
            && self.vv.len() == 1
            && self.vv.get(dot.node) == dot.counter
            && dot.counter > 0
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// The highest counter of `node` seen, contiguous or not.
    pub fn max_counter(&self, node: NodeId) -> u64 {
        let in_cloud = self.cloud_of(node).last().map_or(0, |d| d.counter);
        self.vv.get(node).max(in_cloud)
    }

    /// The dot `node` uses for its next event: one past everything of `node` seen.
    pub fn next_dot(&self, node: NodeId) -> Dot {
        Dot::new(node, self.max_counter(node) + 1)
    }

    /// Creates and records the next dot of `node` as its writer. A node with no dot here starts
    /// at `floor` ([`super::fresh_floor`]) and records every lower dot of its own as seen;
    /// returns the dot and whether it was such a fresh start.
    pub fn advance(&mut self, node: NodeId, floor: u64) -> (Dot, bool) {
        if self.max_counter(node) == 0 {
            let dot = Dot::new(node, floor.max(1));
            self.insert_with_prefix(dot);
            (dot, true)
        } else {
            let dot = self.next_dot(node);
            self.insert(dot);
            (dot, false)
        }
    }

    /// Records `dot` and every lower dot of its node as seen: the context a fresh start ships,
    /// so that receivers learn the claim too.
    pub fn insert_with_prefix(&mut self, dot: Dot) {
        self.vv.raise(dot.node, dot.counter);
        if !self.cloud.is_empty() {
            self.cloud
                .vec_mut()
                .retain(|d| d.node != dot.node || d.counter > dot.counter);
            self.cloud.normalize();
        }
        self.fold_cloud(dot.node);
    }

    /// The context holding exactly `dots`, which must be sorted and unique (as a `BTreeMap<Dot, _>`
    /// yields them). Linear in their number, unlike repeated [`insert`](Self::insert).
    pub fn from_sorted_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut dots: CloudDots = dots.into_iter().collect();
        debug_assert!(dots.windows(2).all(|w| w[0] < w[1]));
        dots.retain(|d| d.counter > 0);
        let mut cc = CausalContext {
            vv: VersionVector::new(),
            cloud: Cloud::from_dots(dots),
        };
        cc.compact();
        cc
    }

    /// Records `dot` as seen.
    pub fn insert(&mut self, dot: Dot) {
        if dot.counter == 0 || self.contains(dot) {
            return;
        }
        if dot.counter == self.vv.get(dot.node) + 1 {
            self.vv.raise(dot.node, dot.counter);
            self.fold_cloud(dot.node);
        } else {
            let at = self.cloud.binary_search(&dot).unwrap_or_else(|i| i);
            self.cloud.vec_mut().insert(at, dot);
        }
    }

    /// Records every dot of `other` as seen.
    pub fn merge(&mut self, other: &CausalContext) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            self.clone_from(other);
            return;
        }
        self.vv.merge(&other.vv);
        if !other.cloud.is_empty() {
            let mut cloud = CloudDots::with_capacity(self.cloud.len() + other.cloud.len());
            let (mut i, mut j) = (0, 0);
            while i < self.cloud.len() || j < other.cloud.len() {
                let next = match (self.cloud.get(i), other.cloud.get(j)) {
                    (Some(a), Some(b)) if a == b => {
                        i += 1;
                        j += 1;
                        *a
                    }
                    (Some(a), Some(b)) if a < b => {
                        i += 1;
                        *a
                    }
                    (Some(_), Some(b)) | (None, Some(b)) => {
                        j += 1;
                        *b
                    }
                    (Some(a), None) => {
                        i += 1;
                        *a
                    }
                    (None, None) => unreachable!("loop condition"),
                };
                cloud.push(next);
            }
            self.cloud = Cloud::from_dots(cloud);
        }
        self.compact();
    }

    /// Folds every cloud dot that the (possibly raised) version vector now covers or extends.
    fn compact(&mut self) {
        if self.cloud.is_empty() {
            return;
        }
        let mut kept = CloudDots::with_capacity(self.cloud.len());
        // The cloud is sorted by (node, counter), so each node's dots are visited in order and a
        // run continuing the node's prefix folds in one pass.
        for &dot in self.cloud.iter() {
            let prefix = self.vv.get(dot.node);
            if dot.counter <= prefix {
                continue;
            }
            if dot.counter == prefix + 1 {
                self.vv.raise(dot.node, dot.counter);
            } else {
                kept.push(dot);
            }
        }
        self.cloud = Cloud::from_dots(kept);
    }

    fn fold_cloud(&mut self, node: NodeId) {
        let start = self.cloud.partition_point(|d| d.node < node);
        let mut end = start;
        let mut prefix = self.vv.get(node);
        while let Some(d) = self.cloud.get(end) {
            if d.node != node || d.counter != prefix + 1 {
                break;
            }
            prefix = d.counter;
            end += 1;
        }
        if end > start {
            self.vv.raise(node, prefix);
            self.cloud.vec_mut().drain(start..end);
            self.cloud.normalize();
        }
    }

    fn cloud_of(&self, node: NodeId) -> &[Dot] {
        let start = self.cloud.partition_point(|d| d.node < node);
        let end = self.cloud.partition_point(|d| d.node <= node);
        &self.cloud[start..end]
    }
}

impl<'de> Deserialize<'de> for CausalContext {
    /// Accepts only the compact canonical form (see the type's doc).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            vv: VersionVector,
            cloud: Vec<Dot>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let sorted = raw.cloud.windows(2).all(|w| w[0] < w[1]);
        let compact = raw.cloud.iter().all(|d| d.counter > raw.vv.get(d.node) + 1);
        if !sorted || !compact {
            return Err(serde::de::Error::custom(
                "causal context cloud must be sorted, unique and not foldable into its vector",
            ));
        }
        Ok(CausalContext {
            vv: raw.vv,
            cloud: Cloud::from_dots(CloudDots::from_vec(raw.cloud)),
        })
    }
}

impl FromIterator<Dot> for CausalContext {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        let mut cc = CausalContext::new();
        for dot in iter {
            cc.insert(dot);
        }
        cc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: u64, c: u64) -> Dot {
        Dot::new(NodeId(n), c)
    }

    #[test]
    fn out_of_order_dots_fold_when_gap_closes() {
        let mut cc = CausalContext::new();
        cc.insert(d(1, 3));
        cc.insert(d(1, 2));
        assert_eq!(cc.cloud(), &[d(1, 2), d(1, 3)]);
        assert_eq!(cc.next_dot(NodeId(1)), d(1, 4));
        cc.insert(d(1, 1));
        assert!(cc.cloud().is_empty());
        assert_eq!(cc.vv().get(NodeId(1)), 3);
    }

    #[test]
    fn merge_folds_clouds_into_vectors() {
        let a: CausalContext = [d(1, 1), d(1, 3), d(2, 2)].into_iter().collect();
        let b: CausalContext = [d(1, 2), d(2, 1)].into_iter().collect();
        let m = a.clone().merged(b);
        assert_eq!(
            m,
            CausalContext::from_vv([(NodeId(1), 3), (NodeId(2), 2)].into_iter().collect())
        );
    }

    trait Merged {
        fn merged(self, other: Self) -> Self;
    }
    impl Merged for CausalContext {
        fn merged(mut self, other: Self) -> Self {
            self.merge(&other);
            self
        }
    }

    fn dots() -> impl Strategy<Value = Vec<Dot>> {
        proptest::collection::vec((1u64..4, 1u64..12).prop_map(|(n, c)| d(n, c)), 0..24)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn context_is_the_set_of_its_dots(xs in dots(), ys in dots()) {
            let a: CausalContext = xs.iter().copied().collect();
            let b: CausalContext = ys.iter().copied().collect();
            let union: CausalContext = xs.iter().chain(ys.iter()).copied().collect();
            // Merge is set union, whatever the insertion order, so representations are canonical.
            prop_assert_eq!(&a.clone().merged(b.clone()), &union);
            prop_assert_eq!(&b.merged(a), &union);
            for n in 1..4 {
                for c in 1..14 {
                    let seen = xs.contains(&d(n, c)) || ys.contains(&d(n, c));
                    prop_assert_eq!(union.contains(d(n, c)), seen);
                }
            }
        }
    }
}
