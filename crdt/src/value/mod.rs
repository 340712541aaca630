//! The typed value of one key.
//!
//! A key holds a [`Value`]: at most one [`Part`] per [`Kind`] (register, PN counter, G counter,
//! set, text). Normally exactly one part is non-empty and that is the key's type. The model:
//!
//! * **Product lattice.** Parts of the same kind merge with their own CRDT merge, so every law of
//!   the part types carries over to `Value`. Nothing is ever thrown away by a merge, which is what
//!   keeps merge associative even across type conflicts.
//! * **Key-level observed-remove delete.** [`Value::delete`] clears what this replica has seen in
//!   every part (each part type has an observed-remove clear). A write made concurrently on
//!   another node survives the merge; a delete never removes what it did not see. A deleted key
//!   whose parts are all empty is a *tombstone*: it exists only so its causal information can
//!   cancel late copies of what it removed, until the node's membership-driven garbage collection
//!   drops it.
//! * **Type conflicts.** If two nodes concurrently give a key different types (say `SET k v` on one
//!   and `SADD k m` on another), both parts survive the merge and the visible type is decided the
//!   same way on every node: among the non-empty parts, the one with the highest `created`
//!   timestamp wins, and equal timestamps (impossible between distinct nodes, whose HLC
//!   timestamps differ by node id) fall back to the [`Kind`] order. `created` is the HLC timestamp
//!   of the latest write that made the kind the key's type: the write that created the key, or an
//!   overwriting `SET`. So the type chosen most recently wins; the other part stays hidden (its
//!   data is not lost: if the winner is later deleted while the loser is not, the loser shows
//!   again), and any command against the hidden kind answers `WRONGTYPE` like Redis.
//! * **Deltas.** Every mutator returns the delta to ship: a `Value` holding only what changed.

mod kind;
mod ops;
pub use ops::parse_integer;
mod counter;
mod part;
mod wire;
pub use wire::{encode_state, encode_value, encode_value_to_run};

use serde::{Deserialize, Deserializer, Serialize};

pub use counter::{Counter, NodeTally};
pub use kind::Kind;
pub use part::{Data, Part};

use crate::encoding;
use crate::lww_register::LwwRegister;
use crate::merge::Merge;
use crate::or_set::OrSet;
use crate::rga::Rga;

/// The replicated state of one key.
///
/// The keyspace holds one per key, in the same allocation as the key, where every byte counts
/// a million times. So the one part a value nearly always has is held inline (a register that
/// one node wrote is its entry alone, see [`LwwRegister`]), and only a key with parts of
/// several kinds (a type conflict) has a vector. Encoded as the sequence of its parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    /// Sorted by kind, at most one per kind; usually one.
    parts: Parts,
}

/// The parts of a [`Value`]. `Many` holds at least two, so equal values are equal here too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Parts {
    #[default]
    None,
    One(Part),
    Many(Vec<Part>),
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.slice())
    }
}

/// A read-only view of a key's visible type.
#[derive(Debug, Clone, Copy)]
pub enum View<'a> {
    /// The winning bytes of a register.
    Register(&'a [u8]),
    /// A counter's value (PN or G counter).
    Counter(i128),
    /// The members of a set.
    Set(&'a OrSet),
    /// A text.
    Text(&'a Rga),
}

impl Value {
    /// A key that has never been written.
    pub fn new() -> Self {
        Value::default()
    }

    /// The part that decides the key's type: the non-empty part with the highest `created`, ties
    /// broken by kind order. `None` if the key does not exist.
    pub fn visible(&self) -> Option<&Part> {
        self.slice()
            .iter()
            .filter(|p| !p.data.is_empty())
            .max_by_key(|p| (p.created, p.kind()))
    }

    /// The key's type, `None` if it does not exist.
    pub fn kind(&self) -> Option<Kind> {
        self.visible().map(Part::kind)
    }

    /// The address of the heap memory that reading or changing this value touches first, if
    /// its first part keeps any there: for a caller that wants to prefetch it. An address only,
    /// never read through here; `None` when the data is inline or behind a second pointer.
    pub fn heap_hint(&self) -> Option<*const u8> {
        self.slice().first().and_then(|p| p.data.heap_hint())
    }

    /// The set of this value, if its visible type is a set (what `SADD` and `SISMEMBER` look
    /// members up in): for a caller that prefetches them ([`OrSet::member_hints`]).
    pub fn set(&self) -> Option<&OrSet> {
        match self.view()? {
            View::Set(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the key exists (some part is non-empty).
    pub fn exists(&self) -> bool {
        self.slice().iter().any(|p| !p.data.is_empty())
    }

    /// Whether this is a tombstone: state is kept but the key does not exist.
    pub fn is_tombstone(&self) -> bool {
        !matches!(self.parts, Parts::None) && !self.exists()
    }

    /// A view of the visible type.
    pub fn view(&self) -> Option<View<'_>> {
        Some(match &self.visible()?.data {
            Data::Register(r) => View::Register(r.get()?),
            Data::PnCounter(c) => View::Counter(c.value()),
            Data::GCounter(c) => View::Counter(c.value()),
            Data::Set(s) => View::Set(s),
            Data::Text(t) => View::Text(t),
        })
    }

    /// Every part, visible or not, sorted by kind (for `CRDT.INFO`).
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &Part> + '_ {
        self.slice().iter()
    }

    /// The register part, if the key's visible type is a register.
    pub fn register(&self) -> Option<&LwwRegister> {
        match &self.visible()?.data {
            Data::Register(r) => Some(r),
            _ => None,
        }
    }

    /// A stable 128-bit fingerprint of the canonical encoding: equal on every replica holding
    /// the same state. Anti-entropy compares these.
    pub fn fingerprint(&self) -> u128 {
        encoding::fingerprint(self)
    }

    /// The part of `kind`, if present.
    fn part(&self, kind: Kind) -> Option<&Part> {
        self.slice().iter().find(|p| p.kind() == kind)
    }

    /// Adds `part` to this value, merging with a part of the same kind if present.
    fn merge_part(&mut self, part: Part) {
        match self.slice().binary_search_by_key(&part.kind(), Part::kind) {
            Ok(i) => self.slice_mut()[i].merge(part),
            Err(i) => self.insert_part(i, part),
        }
    }

    /// The parts, sorted by kind.
    fn slice(&self) -> &[Part] {
        match &self.parts {
            Parts::None => &[],
            Parts::One(p) => std::slice::from_ref(p),
            Parts::Many(v) => v,
        }
    }

    /// The parts, to change in place (not to add or remove one).
    fn slice_mut(&mut self) -> &mut [Part] {
        match &mut self.parts {
            Parts::None => &mut [],
            Parts::One(p) => std::slice::from_mut(p),
            Parts::Many(v) => v,
        }
    }

    /// Inserts `part` at `i` of the parts.
    fn insert_part(&mut self, i: usize, part: Part) {
        self.parts = match std::mem::take(&mut self.parts) {
            Parts::None => Parts::One(part),
            Parts::One(first) if i == 0 => Parts::Many(vec![part, first]),
            Parts::One(first) => Parts::Many(vec![first, part]),
            Parts::Many(mut v) => {
                v.insert(i, part);
                Parts::Many(v)
            }
        };
    }

    /// A value of `parts`, which must be sorted by kind and unique.
    fn from_parts(parts: impl IntoIterator<Item = Part>) -> Value {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Value::default();
        };
        let Some(second) = parts.next() else {
            return Value::single(first);
        };
        let mut all = vec![first, second];
        all.extend(parts);
        debug_assert!(all.windows(2).all(|w| w[0].kind() < w[1].kind()));
        Value {
            parts: Parts::Many(all),
        }
    }

    /// A value of one part.
    fn single(part: Part) -> Value {
        Value {
            parts: Parts::One(part),
        }
    }
}

impl Merge for Value {
    fn merge(&mut self, other: Value) {
        match other.parts {
            Parts::None => {}
            Parts::One(part) => self.merge_part(part),
            Parts::Many(parts) => parts.into_iter().for_each(|p| self.merge_part(p)),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Refuses duplicate or unsorted parts, so the encoding stays canonical.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parts = Vec::<Part>::deserialize(deserializer)?;
        if !parts.windows(2).all(|w| w[0].kind() < w[1].kind()) {
            return Err(serde::de::Error::custom(
                "value parts must be sorted by kind and unique",
            ));
        }
        Ok(Value::from_parts(parts))
    }
}
