//! RGA text: a replicated growable array of Unicode characters.
//!
//! ## The model
//! Every inserted character gets a unique id `(node, seq)`: the inserting node and that node's
//! next sequence number. It also gets a Lamport number (one more than the highest the replica
//! has seen) and an *origin*: the id of the character it was typed after, or the document
//! start. A delete names the ids it removes; the character stays as an invisible tombstone so
//! later inserts can still refer to it.
//!
//! The state is, logically, the set of insert operations plus the set of deleted ids, and
//! [`Merge`] is set union. The document order is a function of that set alone: the origins form
//! a tree, and the text is its pre-order walk with the children of a character ordered by
//! descending `(lamport, node, seq)`. Integrating an insert therefore starts right after its
//! origin and skips the characters with a greater key (see `Tree::integrate`). Because a
//! character's Lamport number always exceeds its origin's, this gives the same order on every
//! replica whatever order the inserts arrived in. Two nodes typing at the same place at the
//! same time never interleave characters of the other's word: each word is a chain of origins.
//!
//! An insert whose origin is not held yet, or a delete of an id not held yet, is kept pending
//! (module `pending`) until the missing operation arrives, so deltas may arrive in any order,
//! twice, or never (a later full-state merge repairs the gap). An insert that claims a Lamport
//! number not greater than its origin's cannot come from a correct node (it would break the
//! ordering argument above); it stays pending forever, together with everything typed after
//! it, which is still a deterministic function of the set of operations.
//!
//! ## Deltas
//! [`Rga::insert`] returns a delta holding the new run with its origin id (pending in the delta,
//! since the delta does not hold the origin); [`Rga::delete`] and [`Rga::delete_all`] return a
//! delta holding only the deleted ids. Merging a delta costs about its size. A node builds,
//! ships and drops one per keystroke, so the common ones (one run, one id range) are stored
//! inline in the `Rga` value, without allocating; everything else is a boxed `State`.
//!
//! ## Performance
//! The document is a B-tree of run-length-encoded runs with visible-character counts (module
//! `tree`), so an edit at a position costs O(log n), and a hint remembers the last leaf edited
//! so clustered edits skip the descent; typing extends the last run in place. An id index
//! (module `index`) places remote operations in O(log n). Deleted text is dropped (tombstones
//! keep only ids), and text is kept in bounded pieces per leaf, so memory is proportional to
//! runs plus visible text and no keystroke moves more than a few kilobytes.
//!
//! ## Canonical form
//! Equality and the encoding see only the sets of operations: integrated characters as maximal
//! runs in document order, then pending inserts by id, then pending deletes as id ranges. How
//! a replica happens to split runs in memory never shows.
//!
//! ## Limits
//! Sequence and Lamport numbers stay at most [`CLOCK_MAX`]; a decoded state holds at most
//! [`STATE_CHARS_MAX`] characters (tombstones have no text, so their count is not bounded by the
//! input size otherwise). Everything else a decoded state holds is bounded by its byte length.

mod canonical;
mod doc;
mod index;
mod merge;
mod pending;
mod sorted_map;
mod state;
mod tree;
mod tree_ops;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_merge;

use std::borrow::Cow;
use std::fmt;

use crate::error::Error;
use crate::merge::Merge;
use crate::node_id::NodeId;
use merge::OpRef;
use pending::{Deletes, PendingRun};
use state::State;

/// Highest sequence or Lamport number a character may have. Far above what any real history
/// reaches, and low enough that offsets and sums never overflow `u64`/`i64`.
pub const CLOCK_MAX: u64 = 1 << 62;

/// Most characters (tombstones included) one decoded state may hold.
pub const STATE_CHARS_MAX: u64 = u32::MAX as u64;

/// Replicated text. See the [module docs](self) for the model.
///
/// Most values are deltas of one local edit, built, shipped and dropped by the thousand, so
/// those are kept inline and small (no allocation); anything else is a boxed `State`.
#[derive(Clone, Default)]
pub struct Rga {
    /// The full state; when `Some`, `small` is `Small::Empty`.
    state: Option<Box<State>>,
    small: Small,
}

/// The states that need no box: nothing, one pending insert run, one deleted id range.
#[derive(Clone, Debug, Default)]
enum Small {
    #[default]
    Empty,
    Insert(NodeId, u64, PendingRun),
    Delete(NodeId, u64, u64),
}

/// Figures about one text value, for `CRDT.INFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RgaStats {
    /// Visible characters.
    pub visible_chars: u64,
    /// Integrated characters including tombstones.
    pub total_chars: u64,
    /// Run entries in memory (runs of consecutive typing; the encoding may join a few more).
    pub runs: u64,
    /// Inserted characters waiting for their origin.
    pub pending_inserts: u64,
    /// Deleted ids whose insert has not arrived.
    pub pending_deletes: u64,
    /// Characters inserted by each node (integrated or pending, deleted or not), by node id.
    pub chars_by_node: Vec<(NodeId, u64)>,
    /// Approximate heap bytes held.
    pub heap_bytes: u64,
}

impl Rga {
    /// Empty text. Does not allocate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of visible characters (Unicode scalar values).
    pub fn len(&self) -> u64 {
        self.state.as_deref().map_or(0, State::len)
    }

    /// Whether no character is visible.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visible characters `[start, end)`, both clamped to the length.
    pub fn slice(&self, start: u64, end: u64) -> String {
        let end = end.min(self.len());
        let start = start.min(end);
        let mut out = String::new();
        if let Some(tree) = self.state.as_deref().and_then(State::tree)
            && start < end
        {
            tree.write_slice(start, end, &mut out);
        }
        out
    }

    /// Inserts `text` so that its first character ends up at visible position `index`,
    /// creating ids for `node`. Returns the delta to ship.
    ///
    /// Fails with [`Error::IndexOutOfRange`] if `index > len`, or [`Error::Overflow`] if the
    /// sequence or Lamport numbers would pass [`CLOCK_MAX`]; the text is then unchanged. An
    /// empty `text` changes nothing and returns an empty delta.
    pub fn insert(&mut self, node: NodeId, index: u64, text: &str) -> Result<Rga, Error> {
        self.insert_from(node, 1, index, text)
    }

    /// [`insert`](Self::insert) as the node of `ts`, whose ids start at
    /// [`fresh_floor`](crate::causal::fresh_floor) if it holds no id here yet, so a text
    /// re-created after its tombstone was collected never reuses an id a slower replica still
    /// holds (see [`crate::causal`] on fresh starts).
    pub fn insert_at(
        &mut self,
        ts: crate::Timestamp,
        index: u64,
        text: &str,
    ) -> Result<Rga, Error> {
        self.insert_from(ts.node, crate::causal::fresh_floor(ts), index, text)
    }

    fn insert_from(
        &mut self,
        node: NodeId,
        floor: u64,
        index: u64,
        text: &str,
    ) -> Result<Rga, Error> {
        let len = self.len();
        if index > len {
            return Err(Error::IndexOutOfRange { index, len });
        }
        if text.is_empty() {
            return Ok(Rga::new());
        }
        self.state_mut().insert(node, floor, index, text)
    }

    /// Deletes up to `count` visible characters starting at `index` (clamped to the end).
    /// Returns the delta to ship: the deleted ids. `node` is the deleting replica; deletes are
    /// identified by the ids they remove, so it is not recorded.
    ///
    /// Fails with [`Error::IndexOutOfRange`] if `index > len`; the text is then unchanged.
    pub fn delete(&mut self, node: NodeId, index: u64, count: u64) -> Result<Rga, Error> {
        let _ = node;
        match self.state.as_deref_mut() {
            Some(state) => state.delete(index, count),
            None if index == 0 => Ok(Rga::new()),
            None => Err(Error::IndexOutOfRange { index, len: 0 }),
        }
    }

    /// Marks every visible character deleted: the key-level observed-remove `DEL`. Characters
    /// inserted concurrently elsewhere survive the merge. Returns the delta (the deleted ids).
    pub fn delete_all(&mut self) -> Rga {
        self.state
            .as_deref_mut()
            .map_or_else(Rga::new, State::delete_all)
    }

    /// Figures for introspection.
    pub fn stats(&self) -> RgaStats {
        self.as_state().stats()
    }

    /// A delta holding one pending insert run.
    fn one_insert(node: NodeId, seq: u64, run: PendingRun) -> Rga {
        Rga {
            state: None,
            small: Small::Insert(node, seq, run),
        }
    }

    /// A delta deleting ids `[start, end)` of `node`.
    fn from_deletes_one(node: NodeId, start: u64, end: u64) -> Rga {
        Rga {
            state: None,
            small: Small::Delete(node, start, end),
        }
    }

    /// A delta holding deleted ids.
    fn from_deletes(deletes: Deletes) -> Rga {
        match deletes.single() {
            _ if deletes.is_empty() => Rga::new(),
            Some((node, start, end)) => Rga {
                state: None,
                small: Small::Delete(node, start, end),
            },
            None => Rga::from_state(State {
                deletes,
                ..State::default()
            }),
        }
    }

    /// Wraps a full state.
    fn from_state(state: State) -> Rga {
        if state.is_bottom() {
            Rga::new()
        } else {
            Rga {
                state: Some(Box::new(state)),
                small: Small::Empty,
            }
        }
    }

    /// This value as a full state (built on the fly for the small forms).
    fn as_state(&self) -> Cow<'_, State> {
        match &self.state {
            Some(state) => Cow::Borrowed(state),
            None => Cow::Owned(small_state(self.small.clone())),
        }
    }

    /// The full state, boxing the small forms first.
    fn state_mut(&mut self) -> &mut State {
        let small = &mut self.small;
        self.state
            .get_or_insert_with(|| Box::new(small_state(std::mem::take(small))))
    }
}

/// The full state of a small form.
fn small_state(small: Small) -> State {
    let mut state = State::default();
    match small {
        Small::Empty => {}
        Small::Insert(node, seq, run) => {
            state.max_lamport = run.lamport + run.len - 1;
            state.pending.insert((node, seq), run);
        }
        Small::Delete(node, start, end) => state.deletes.add(node, start, end),
    }
    state
}

impl Merge for Rga {
    fn merge(&mut self, other: Rga) {
        if let Some(state) = self.state.as_deref_mut() {
            // The common cases: a delta arriving at a full replica.
            match other {
                Rga { state: Some(o), .. } => state.merge_state(*o),
                Rga {
                    small: Small::Empty,
                    ..
                } => {}
                Rga {
                    small: Small::Insert(node, seq, run),
                    ..
                } => {
                    let (lamport, origin, len, text) =
                        (run.lamport, Some(run.origin), run.len, run.text.as_str());
                    state.merge_op(&OpRef {
                        node,
                        seq,
                        lamport,
                        origin,
                        len,
                        text,
                    });
                }
                Rga {
                    small: Small::Delete(node, start, end),
                    ..
                } => state.apply_delete(node, start, end),
            }
            return;
        }
        if matches!(self.small, Small::Empty) {
            *self = other;
            return;
        }
        if other.state.is_none() && matches!(other.small, Small::Empty) {
            return;
        }
        let state = self.state_mut();
        match other.state {
            Some(o) => state.merge_state(*o),
            None => state.merge_state(small_state(other.small)),
        }
        if state.is_bottom() {
            *self = Rga::new();
        }
    }
}

impl PartialEq for Rga {
    fn eq(&self, other: &Self) -> bool {
        *self.as_state() == *other.as_state()
    }
}

impl Eq for Rga {}

impl fmt::Display for Rga {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(tree) = self.state.as_deref().and_then(State::tree) {
            for leaf in tree.leaves_in_order() {
                f.write_str(&leaf.text)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Rga {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.as_state();
        f.debug_struct("Rga")
            .field("text", &self.to_string())
            .field("runs", &canonical::runs(&state).collect::<Vec<_>>())
            .field("pending", &canonical::pending(&state).collect::<Vec<_>>())
            .field("deletes", &state.deletes)
            .finish()
    }
}
