//! [`Members`]: the members of an [`OrSet`](super::OrSet) and the dots supporting each.
//!
//! Looked up by hash, sorted only when asked. `SADD` of a member already present, the most
//! common write to a large set, is a hash lookup whatever the set's size; a sorted map would
//! compare the member with a key (behind a pointer) at every level of a tree, a cache miss
//! each in a set of a hundred thousand members. The byte order that the canonical encoding
//! and `SMEMBERS` need is made by sorting when they run: both walk every member anyway, and
//! a large set is encoded in full only once per many writes (see the node's `Entry`), while
//! keeping the order beside, in a sorted set, cost each new member a tree insert of those
//! same cache misses and about 20 more bytes.
//!
//! Keys are [`Member`]s: a short member's bytes sit in the table's slot, so finding it costs
//! no second cache miss.
//!
//! The hash map is randomly keyed (std's `RandomState`): members come from clients, and a
//! fixed hash would let them flood one slot. Only the layout in memory depends on the key;
//! nothing observable does, since every ordered walk sorts.

use std::hash::RandomState;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use super::DotSet;
use super::member::Member;
use crate::causal::Dot;

/// Members and their live dots.
#[derive(Clone, Debug, Default)]
pub(crate) struct Members {
    dots: HashMap<Member, DotSet, RandomState>,
}

impl Members {
    pub(crate) fn len(&self) -> usize {
        self.dots.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.dots.is_empty()
    }

    pub(super) fn contains(&self, member: &[u8]) -> bool {
        self.dots.contains_key(member)
    }

    pub(super) fn get(&self, member: &[u8]) -> Option<&DotSet> {
        self.dots.get(member)
    }

    pub(super) fn get_mut(&mut self, member: &[u8]) -> Option<&mut DotSet> {
        self.dots.get_mut(member)
    }

    /// The shared key of `member` and its dots, to change, if present.
    pub(super) fn get_key_mut(&mut self, member: &[u8]) -> Option<(&Member, &mut DotSet)> {
        self.dots.get_key_value_mut(member)
    }

    /// The shared key of `member`, if present.
    pub(super) fn key_of(&self, member: &[u8]) -> Option<&Member> {
        self.dots.get_key_value(member).map(|(k, _)| k)
    }

    /// Inserts `member` with `dots`, replacing its dots if present; returns the old ones.
    pub(super) fn insert(&mut self, member: Member, dots: DotSet) -> Option<DotSet> {
        match self.dots.entry(member) {
            Entry::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), dots)),
            Entry::Vacant(slot) => {
                slot.insert(dots);
                None
            }
        }
    }

    /// The dots of `member`, inserted empty if absent (the caller fills them).
    pub(super) fn dots_or_insert(&mut self, member: Member) -> &mut DotSet {
        match self.dots.entry(member) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => slot.insert(DotSet::new()),
        }
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> Option<DotSet> {
        self.dots.remove(member)
    }

    pub(super) fn clear(&mut self) {
        self.dots.clear();
    }

    /// Members in byte order (sorted now: O(n log n)).
    pub(super) fn keys(&self) -> impl ExactSizeIterator<Item = &Member> + '_ {
        self.sorted().into_iter().map(|(member, _)| member)
    }

    /// Members and their dots in byte order (sorted now: O(n log n)).
    pub(crate) fn sorted(&self) -> Vec<(&Member, &DotSet)> {
        let mut all: Vec<(&Member, &DotSet)> = self.dots.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Members and their dots in byte order, the order every encoding lists them in. Most
    /// deltas hold one member: that needs neither the sort nor the vector it is done in.
    pub(crate) fn canonical(&self) -> Canonical<'_> {
        if self.len() <= 1 {
            Canonical::Few(self.dots.iter())
        } else {
            Canonical::Sorted(self.sorted().into_iter())
        }
    }

    /// Every live dot of every member, sorted (duplicates kept: a consistent set has none).
    pub(super) fn dots_sorted(&self) -> Vec<Dot> {
        let mut dots: Vec<Dot> = self
            .dots
            .values()
            .flat_map(|dots| dots.iter().copied())
            .collect();
        dots.sort_unstable();
        dots
    }

    /// Members and their dots in no particular order (cheaper than [`sorted`](Self::sorted)).
    pub(crate) fn iter_unordered(&self) -> impl Iterator<Item = (&Member, &DotSet)> + '_ {
        self.dots.iter()
    }

    /// Members and their dots, consumed, in no particular order.
    pub(super) fn into_unordered(self) -> impl Iterator<Item = (Member, DotSet)> {
        self.dots.into_iter()
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        self.dots == other.dots
    }
}

impl Eq for Members {}

/// The iterator of [`Members::canonical`].
pub(crate) enum Canonical<'a> {
    /// At most one member: in order as it is.
    Few(hashbrown::hash_map::Iter<'a, Member, DotSet>),
    Sorted(std::vec::IntoIter<(&'a Member, &'a DotSet)>),
}

impl<'a> Iterator for Canonical<'a> {
    type Item = (&'a Member, &'a DotSet);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Canonical::Few(it) => it.next(),
            Canonical::Sorted(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Canonical::Few(it) => it.size_hint(),
            Canonical::Sorted(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Canonical<'_> {}
