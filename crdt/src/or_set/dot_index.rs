//! [`DotIndex`]: the member each live dot supports, so that a merge finds the members a delta
//! removes without walking the whole set.
//!
//! Only merges into a large set need it: a merge walks the dots of the other side's context in
//! this index and drops the ones the other side no longer holds. Local writes (`SADD`, `SREM`)
//! and the deltas they make never look anything up in it. So the index is kept *lazily* and
//! *loosely*:
//!
//! - **Lazily:** it is built the first time a merge into a set of more than
//!   [`SCAN_MEMBERS_MAX`] members needs it, and kept up to date from then on (a replica's sets,
//!   which merges keep changing, build it once). A delta, a small set, and a set only ever
//!   written locally never build it, which saves its memory and the B-tree insert of every add.
//! - **Loosely:** a dot that stops being live (its member re-added or removed) is left in the
//!   index as a *stale* entry instead of being searched for and removed, a cache miss per level
//!   of a B-tree of random dots. A stale entry is harmless: dropping a dot its member no longer
//!   holds changes nothing.
//!   Stale entries are counted; once they outnumber the live ones the index is dropped, to be
//!   rebuilt at the next merge that needs it. It therefore stays within about twice the live
//!   dots, and a rebuild costs O(1) amortised per write that retired a dot.

use std::collections::BTreeMap;

use super::member::Member;
use super::members::Members;
use crate::causal::Dot;

/// Merges into a set of at most this many members walk its members instead of an index.
pub(super) const SCAN_MEMBERS_MAX: usize = 64;

/// Stale entries the index may always hold, however few live ones it has (so that a small
/// index is not rebuilt over and over).
const STALE_SLACK: usize = 1024;

/// Dot → member, for the live dots of a set and possibly some stale ones.
#[derive(Clone, Debug, Default)]
pub(super) struct DotIndex {
    /// `None`: not built (or dropped).
    map: Option<BTreeMap<Dot, Member>>,
    /// Entries of `map` whose dot is no longer live.
    stale: usize,
}

impl DotIndex {
    /// `dot` now supports `member`.
    pub(super) fn added(&mut self, dot: Dot, member: &Member) {
        if let Some(map) = &mut self.map {
            map.insert(dot, member.clone());
        }
    }

    /// `count` dots stopped being live (their entries, if built, are now stale).
    pub(super) fn retired(&mut self, count: usize) {
        let Some(map) = &self.map else {
            return;
        };
        self.stale += count;
        if self.stale > STALE_SLACK && self.stale * 2 > map.len() {
            self.forget();
        }
    }

    /// Drops the index (every dot was retired, or it is to be rebuilt).
    pub(super) fn forget(&mut self) {
        self.map = None;
        self.stale = 0;
    }

    /// The index, built from `members` if it is not. Entries may be stale: check the dot
    /// against `members` before acting on one.
    pub(super) fn get(&mut self, members: &Members) -> &BTreeMap<Dot, Member> {
        self.map.get_or_insert_with(|| {
            let mut map = BTreeMap::new();
            for (member, dots) in members.iter_unordered() {
                for &dot in dots {
                    map.insert(dot, member.clone());
                }
            }
            map
        })
    }

    /// Whether the index is built (for tests).
    #[cfg(test)]
    pub(super) fn is_built(&self) -> bool {
        self.map.is_some()
    }

    /// Entries held, live and stale (for tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.map.as_ref().map_or(0, BTreeMap::len)
    }
}
