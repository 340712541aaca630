//! [`Members`]: the members of an [`OrSet`](super::OrSet) and the dots supporting each.
//!
//! Looked up by hash, iterated in byte order. `SADD` of a member already present, the most
//! common write to a large set, is a hash lookup whatever the set's size; a sorted map would
//! compare the member with a key (behind a pointer) at every level of a tree, a cache miss
//! each in a set of a hundred thousand members. The byte order that the canonical encoding
//! and `SMEMBERS` need is kept beside, in a sorted set that only adding a new member or
//! removing one changes.
//!
//! The hash map is randomly keyed (std's `RandomState`): members come from clients, and a
//! fixed hash would let them flood one slot. Only the layout in memory depends on the key;
//! nothing observable does, since every iteration goes through the sorted order.

use std::collections::BTreeSet;
use std::hash::RandomState;
use std::sync::Arc;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use super::DotSet;

/// Members and their live dots.
#[derive(Clone, Debug, Default)]
pub(super) struct Members {
    dots: HashMap<Arc<[u8]>, DotSet, RandomState>,
    order: BTreeSet<Arc<[u8]>>,
}

impl Members {
    pub(super) fn len(&self) -> usize {
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
    pub(super) fn get_key_mut(&mut self, member: &[u8]) -> Option<(&Arc<[u8]>, &mut DotSet)> {
        self.dots.get_key_value_mut(member)
    }

    /// The shared key of `member`, if present.
    pub(super) fn key_of(&self, member: &[u8]) -> Option<&Arc<[u8]>> {
        self.dots.get_key_value(member).map(|(k, _)| k)
    }

    /// Inserts `member` with `dots`, replacing its dots if present; returns the old ones.
    pub(super) fn insert(&mut self, member: Arc<[u8]>, dots: DotSet) -> Option<DotSet> {
        match self.dots.entry(member) {
            Entry::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), dots)),
            Entry::Vacant(slot) => {
                self.order.insert(slot.key().clone());
                slot.insert(dots);
                None
            }
        }
    }

    /// The dots of `member`, inserted empty if absent (the caller fills them).
    pub(super) fn dots_or_insert(&mut self, member: Arc<[u8]>) -> &mut DotSet {
        match self.dots.entry(member) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                self.order.insert(slot.key().clone());
                slot.insert(DotSet::new())
            }
        }
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> Option<DotSet> {
        let dots = self.dots.remove(member)?;
        self.order.remove(member);
        Some(dots)
    }

    pub(super) fn clear(&mut self) {
        self.dots.clear();
        self.order.clear();
    }

    /// Members in byte order.
    pub(super) fn keys(&self) -> impl ExactSizeIterator<Item = &Arc<[u8]>> + '_ {
        self.order.iter()
    }

    /// Members and their dots in byte order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Arc<[u8]>, &DotSet)> + '_ {
        self.order.iter().map(|m| {
            let dots = self.dots.get(m).expect("every ordered member has dots");
            (m, dots)
        })
    }

    /// Members and their dots in no particular order (cheaper than [`iter`](Self::iter)).
    pub(super) fn iter_unordered(&self) -> impl Iterator<Item = (&Arc<[u8]>, &DotSet)> + '_ {
        self.dots.iter()
    }

    /// Members and their dots, consumed, in no particular order.
    pub(super) fn into_unordered(self) -> impl Iterator<Item = (Arc<[u8]>, DotSet)> {
        self.dots.into_iter()
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        self.dots == other.dots
    }
}

impl Eq for Members {}
