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
//! no second cache miss. The one miss left, on the slot, is what a connection prefetches for
//! the commands it is about to run ([`Members::slot_hints`]).
//!
//! The hash table is randomly keyed (std's `RandomState`): members come from clients, and a
//! fixed hash would let them flood one slot. Only the layout in memory depends on the key;
//! nothing observable does, since every ordered walk sorts.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::DotSet;
use super::member::Member;
use crate::causal::Dot;

/// Members and their live dots.
///
/// A `HashTable` rather than a `HashMap` for one thing the map cannot do: probe without
/// comparing keys, which is what [`slot_hints`](Self::slot_hints) needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Members {
    dots: HashTable<(Member, DotSet)>,
    hasher: RandomState,
}

impl Members {
    fn hash(&self, member: &[u8]) -> u64 {
        self.hasher.hash_one(member)
    }

    /// The slot of `member`, if present.
    fn find(&self, member: &[u8]) -> Option<&(Member, DotSet)> {
        self.dots
            .find(self.hash(member), |(m, _)| m.as_bytes() == member)
    }

    /// The slot of `member`, to change, if present.
    fn find_mut(&mut self, member: &[u8]) -> Option<&mut (Member, DotSet)> {
        let hash = self.hash(member);
        self.dots.find_mut(hash, |(m, _)| m.as_bytes() == member)
    }

    pub(crate) fn len(&self) -> usize {
        self.dots.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.dots.is_empty()
    }

    pub(super) fn contains(&self, member: &[u8]) -> bool {
        self.get(member).is_some()
    }

    pub(super) fn get(&self, member: &[u8]) -> Option<&DotSet> {
        self.find(member).map(|(_, dots)| dots)
    }

    pub(super) fn get_mut(&mut self, member: &[u8]) -> Option<&mut DotSet> {
        self.get_key_mut(member).map(|(_, dots)| dots)
    }

    /// The shared key of `member` and its dots, to change, if present.
    pub(super) fn get_key_mut(&mut self, member: &[u8]) -> Option<(&Member, &mut DotSet)> {
        self.find_mut(member).map(|(m, dots)| (&*m, dots))
    }

    /// The shared key of `member`, if present.
    pub(super) fn key_of(&self, member: &[u8]) -> Option<&Member> {
        self.find(member).map(|(m, _)| m)
    }

    /// Calls `fetch` with the address and size of each slot that a lookup of `member` would
    /// compare, for a caller that prefetches them. The probe reads only the table's control
    /// bytes (one per slot: a table of a hundred thousand members has 128 KiB of them, which
    /// stay cached while the slots do not) and compares no member, so it never waits for a
    /// slot: every slot whose hash tag matches is passed.
    pub(super) fn slot_hints(&self, member: &[u8], mut fetch: impl FnMut(*const u8, usize)) {
        let _ = self.dots.find(self.hash(member), |slot| {
            fetch(
                std::ptr::from_ref(slot).cast(),
                size_of::<(Member, DotSet)>(),
            );
            false
        });
    }

    /// Inserts `member` with `dots`, replacing its dots if present; returns the old ones.
    pub(super) fn insert(&mut self, member: Member, dots: DotSet) -> Option<DotSet> {
        match self.entry(&member) {
            Entry::Occupied(mut slot) => Some(std::mem::replace(&mut slot.get_mut().1, dots)),
            Entry::Vacant(slot) => {
                slot.insert((member, dots));
                None
            }
        }
    }

    /// The dots of `member`, inserted empty if absent (the caller fills them).
    pub(super) fn dots_or_insert(&mut self, member: Member) -> &mut DotSet {
        match self.entry(&member) {
            Entry::Occupied(slot) => &mut slot.into_mut().1,
            Entry::Vacant(slot) => &mut slot.insert((member, DotSet::new())).into_mut().1,
        }
    }

    fn entry(&mut self, member: &Member) -> Entry<'_, (Member, DotSet)> {
        let hash = self.hash(member.as_bytes());
        let hasher = &self.hasher;
        self.dots.entry(
            hash,
            |(m, _)| m == member,
            |(m, _)| hasher.hash_one(m.as_bytes()),
        )
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> Option<DotSet> {
        let hash = self.hash(member);
        self.dots
            .find_entry(hash, |(m, _)| m.as_bytes() == member)
            .ok()
            .map(|slot| slot.remove().0.1)
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
        let mut all: Vec<(&Member, &DotSet)> = self.iter_unordered().collect();
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
            .iter()
            .flat_map(|(_, dots)| dots.iter().copied())
            .collect();
        dots.sort_unstable();
        dots
    }

    /// Members and their dots in no particular order (cheaper than [`sorted`](Self::sorted)).
    pub(crate) fn iter_unordered(&self) -> impl Iterator<Item = (&Member, &DotSet)> + '_ {
        self.dots.iter().map(|(m, dots)| (m, dots))
    }

    /// Members and their dots, consumed, in no particular order.
    pub(super) fn into_unordered(self) -> impl Iterator<Item = (Member, DotSet)> {
        self.dots.into_iter()
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter_unordered()
                .all(|(member, dots)| other.get(member.as_bytes()) == Some(dots))
    }
}

impl Eq for Members {}

/// The iterator of [`Members::canonical`].
pub(crate) enum Canonical<'a> {
    /// At most one member: in order as it is.
    Few(hashbrown::hash_table::Iter<'a, (Member, DotSet)>),
    Sorted(std::vec::IntoIter<(&'a Member, &'a DotSet)>),
}

impl<'a> Iterator for Canonical<'a> {
    type Item = (&'a Member, &'a DotSet);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Canonical::Few(it) => it.next().map(|(m, dots)| (m, dots)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn dot(counter: u64) -> Dot {
        Dot {
            node: NodeId(1),
            counter,
        }
    }

    fn filled(order: impl Iterator<Item = u64>) -> Members {
        let mut members = Members::default();
        for i in order {
            members.insert(
                Member::from(format!("m{i}").as_bytes()),
                smallvec::smallvec![dot(i + 1)],
            );
        }
        members
    }

    #[test]
    fn slot_hints_name_the_slot_a_lookup_compares() {
        let members = filled(0..1000);
        for i in (0..1000).step_by(37) {
            let member = format!("m{i}");
            let member = member.as_bytes();
            let slot = members.find(member).unwrap();
            let mut hints = Vec::new();
            members.slot_hints(member, |at, len| hints.push((at, len)));
            let at: *const u8 = std::ptr::from_ref(slot).cast();
            assert!(hints.contains(&(at, size_of::<(Member, DotSet)>())), "{i}");
        }
        // An absent member gets the slots whose hash tag happens to match, if any.
        members.slot_hints(b"absent", |_, _| {});
    }

    #[test]
    fn equality_is_by_members_and_dots_whatever_the_insertion_order() {
        let forward = filled(0..100);
        let backward = filled((0..100).rev());
        assert_eq!(forward, backward);
        let mut changed = filled(0..100);
        *changed.get_mut(b"m7").unwrap() = smallvec::smallvec![dot(1000)];
        assert_ne!(forward, changed);
        assert_ne!(forward, filled(0..99));
        let mut replaced = filled(0..100);
        replaced.remove(b"m7");
        replaced.insert(Member::from(&b"m7"[..]), smallvec::smallvec![dot(8)]);
        assert_eq!(forward, replaced);
    }
}
