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
//! A set of at most [`FEW_MAX`] members (most deltas hold one) keeps them in a small vector
//! instead, searched by comparing bytes: building a one-member delta then costs neither a
//! hash of the member nor a table's allocation (without them, criterion's
//! `value/sadd_present_to_100k_and_encode` runs 11% faster). The table takes over when a set
//! grows past that size, and keeps its members while it holds any.
//!
//! The hash table is randomly keyed (std's `RandomState`): members come from clients, and a
//! fixed hash would let them flood one slot. Only the layout in memory depends on the key;
//! nothing observable does, since every ordered walk sorts.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use smallvec::SmallVec;

use super::DotSet;
use super::member::Member;
use crate::causal::Dot;

/// Sets of at most this many members keep them in a vector rather than a hash table.
pub(crate) const FEW_MAX: usize = 8;

/// Members and their live dots.
///
/// A `HashTable` rather than a `HashMap` for one thing the map cannot do: probe without
/// comparing keys, which is what [`slot_hints`](Self::slot_hints) needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Members {
    /// The members while `table` is empty (at most [`FEW_MAX`]).
    few: SmallVec<[(Member, DotSet); 1]>,
    /// The members once the vector overflowed, until they are all removed (then `few` is
    /// empty).
    table: HashTable<(Member, DotSet)>,
    hasher: RandomState,
}

impl Members {
    fn hash(&self, member: &[u8]) -> u64 {
        self.hasher.hash_one(member)
    }

    /// Whether the members are in `table`.
    fn hashed(&self) -> bool {
        !self.table.is_empty()
    }

    /// The slot of `member`, if present.
    fn find(&self, member: &[u8]) -> Option<&(Member, DotSet)> {
        if self.hashed() {
            self.table
                .find(self.hash(member), |(m, _)| m.as_bytes() == member)
        } else {
            self.few.iter().find(|(m, _)| m.as_bytes() == member)
        }
    }

    /// The slot of `member`, to change, if present.
    fn find_mut(&mut self, member: &[u8]) -> Option<&mut (Member, DotSet)> {
        if self.hashed() {
            let hash = self.hash(member);
            self.table.find_mut(hash, |(m, _)| m.as_bytes() == member)
        } else {
            self.few.iter_mut().find(|(m, _)| m.as_bytes() == member)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.few.len() + self.table.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// slot: every slot whose hash tag matches is passed. A set of few members passes them
    /// all.
    pub(super) fn slot_hints(&self, member: &[u8], mut fetch: impl FnMut(*const u8, usize)) {
        let size = size_of::<(Member, DotSet)>();
        if !self.hashed() {
            for slot in &self.few {
                fetch(std::ptr::from_ref(slot).cast(), size);
            }
            return;
        }
        let _ = self.table.find(self.hash(member), |slot| {
            fetch(std::ptr::from_ref(slot).cast(), size);
            false
        });
    }

    /// Inserts `member` with `dots`, replacing its dots if present; returns the old ones.
    pub(super) fn insert(&mut self, member: Member, dots: DotSet) -> Option<DotSet> {
        let (slot, inserted) = self.entry(member);
        let old = std::mem::replace(slot, dots);
        (!inserted).then_some(old)
    }

    /// The dots of `member`, inserted empty if absent (the caller fills them).
    pub(super) fn dots_or_insert(&mut self, member: Member) -> &mut DotSet {
        self.entry(member).0
    }

    /// The dots of `member`, inserted empty if absent, and whether it was: one search (one
    /// hash in the table). The members move into the table when the vector is full.
    fn entry(&mut self, member: Member) -> (&mut DotSet, bool) {
        if !self.hashed() {
            if let Some(at) = self.few.iter().position(|(m, _)| *m == member) {
                return (&mut self.few[at].1, false);
            }
            if self.few.len() < FEW_MAX {
                self.few.push((member, DotSet::new()));
                return (&mut self.few.last_mut().expect("just pushed").1, true);
            }
            self.spill();
        }
        let hasher = &self.hasher;
        let rehash = |(m, _): &(Member, DotSet)| hasher.hash_one(m.as_bytes());
        match self.table.entry(
            hasher.hash_one(member.as_bytes()),
            |(m, _)| *m == member,
            rehash,
        ) {
            Entry::Occupied(slot) => (&mut slot.into_mut().1, false),
            Entry::Vacant(slot) => (&mut slot.insert((member, DotSet::new())).into_mut().1, true),
        }
    }

    /// Moves the members of the (full) vector into the table, freeing the vector's buffer.
    fn spill(&mut self) {
        let hasher = &self.hasher;
        let rehash = |(m, _): &(Member, DotSet)| hasher.hash_one(m.as_bytes());
        let few = std::mem::take(&mut self.few);
        self.table.reserve(few.len() + 1, rehash);
        for slot in few {
            self.table
                .insert_unique(hasher.hash_one(slot.0.as_bytes()), slot, rehash);
        }
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> Option<DotSet> {
        if !self.hashed() {
            let at = self.few.iter().position(|(m, _)| m.as_bytes() == member)?;
            return Some(self.few.swap_remove(at).1);
        }
        let hash = self.hash(member);
        self.table
            .find_entry(hash, |(m, _)| m.as_bytes() == member)
            .ok()
            .map(|slot| slot.remove().0.1)
    }

    pub(super) fn clear(&mut self) {
        self.few.clear();
        self.table.clear();
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
            Canonical::Few(self.few.iter().chain(self.table.iter()))
        } else {
            Canonical::Sorted(self.sorted().into_iter())
        }
    }

    /// Every live dot of every member, sorted (duplicates kept: a consistent set has none).
    pub(super) fn dots_sorted(&self) -> Vec<Dot> {
        let mut dots: Vec<Dot> = self
            .iter_unordered()
            .flat_map(|(_, dots)| dots.iter().copied())
            .collect();
        dots.sort_unstable();
        dots
    }

    /// Members and their dots in no particular order (cheaper than [`sorted`](Self::sorted)).
    pub(crate) fn iter_unordered(&self) -> impl Iterator<Item = (&Member, &DotSet)> + '_ {
        self.few
            .iter()
            .chain(self.table.iter())
            .map(|(m, dots)| (m, dots))
    }

    /// Members and their dots, consumed, in no particular order.
    pub(super) fn into_unordered(self) -> impl Iterator<Item = (Member, DotSet)> {
        self.few.into_iter().chain(self.table)
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

/// Every slot of a [`Members`], the vector's then the table's (one of them empty).
type Slots<'a> = std::iter::Chain<
    std::slice::Iter<'a, (Member, DotSet)>,
    hashbrown::hash_table::Iter<'a, (Member, DotSet)>,
>;

/// The iterator of [`Members::canonical`].
pub(crate) enum Canonical<'a> {
    /// At most one member: in order as it is.
    Few(Slots<'a>),
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

    #[test]
    fn a_few_members_take_a_vector_and_more_the_table() {
        let mut members = filled(0..FEW_MAX as u64);
        assert!(!members.hashed() && members.len() == FEW_MAX);
        let mut hints = 0;
        members.slot_hints(b"m0", |_, _| hints += 1);
        assert_eq!(hints, FEW_MAX, "a set of few members hints every slot");
        *members.dots_or_insert(Member::from(&b"grow"[..])) = smallvec::smallvec![dot(99)];
        assert!(members.hashed() && members.len() == FEW_MAX + 1);
        assert_eq!(members.get(b"grow"), Some(&smallvec::smallvec![dot(99)]));
        assert!((0..FEW_MAX).all(|i| members.contains(format!("m{i}").as_bytes())));
        let mut few = filled(0..FEW_MAX as u64);
        few.remove(b"m3");
        assert!(!few.hashed());
        members.remove(b"grow");
        members.remove(b"m3");
        assert!(
            members.hashed(),
            "a table stays a table while it holds members"
        );
        assert_eq!(members, few, "equal whichever form holds them");
    }

    proptest::proptest! {
        /// Every operation agrees with a plain map, as a set grows past [`FEW_MAX`] members
        /// into its table and shrinks again.
        #[test]
        fn members_behave_like_a_map(ops in proptest::collection::vec((0u8..4, 0u8..24), 0..200)) {
            let mut members = Members::default();
            let mut model = std::collections::HashMap::<Vec<u8>, DotSet>::new();
            for (i, (op, m)) in ops.into_iter().enumerate() {
                let name = vec![b'm', m];
                let d = dot(i as u64 + 1);
                match op {
                    0 => proptest::prop_assert_eq!(
                        members.insert(Member::from(name.as_slice()), smallvec::smallvec![d]),
                        model.insert(name.clone(), smallvec::smallvec![d])
                    ),
                    1 => proptest::prop_assert_eq!(members.remove(&name), model.remove(&name)),
                    2 => {
                        members.dots_or_insert(Member::from(name.as_slice())).push(d);
                        model.entry(name.clone()).or_default().push(d);
                    }
                    _ => proptest::prop_assert_eq!(members.get(&name), model.get(&name)),
                }
                proptest::prop_assert_eq!(members.len(), model.len());
            }
            let listed: Vec<(Vec<u8>, DotSet)> = members
                .sorted()
                .into_iter()
                .map(|(m, dots)| (m.as_bytes().to_vec(), dots.clone()))
                .collect();
            let mut expected: Vec<(Vec<u8>, DotSet)> = model.into_iter().collect();
            expected.sort();
            proptest::prop_assert_eq!(&listed, &expected);
            // Emptied by removes, a set holds its next members in the vector again, and
            // overflows into the table as before.
            let mut emptied = members.clone();
            for (name, _) in &listed {
                proptest::prop_assert!(emptied.remove(name).is_some());
            }
            proptest::prop_assert!(emptied.is_empty() && !emptied.hashed());
            for i in 0..=FEW_MAX as u64 {
                proptest::prop_assert_eq!(emptied.insert(Member::from(format!("r{i}").as_bytes()), smallvec::smallvec![dot(i + 1)]), None);
                proptest::prop_assert_eq!(emptied.hashed(), i == FEW_MAX as u64);
            }
            let refilled = (0..=FEW_MAX).all(|i| emptied.contains(format!("r{i}").as_bytes()));
            proptest::prop_assert!(refilled);
            let mut unordered: Vec<Vec<u8>> = members
                .into_unordered()
                .map(|(m, _)| m.as_bytes().to_vec())
                .collect();
            unordered.sort();
            proptest::prop_assert_eq!(unordered, expected.into_iter().map(|(m, _)| m).collect::<Vec<_>>());
        }
    }
}
