//! Last-writer-wins register with observed-remove delete.
//!
//! Reads return the value with the highest HLC [`Timestamp`] (node id breaks ties), so a write
//! that causally follows another always wins whatever the wall clocks say. Underneath it is a
//! multi-value register: each write gets a dot and replaces the entries it has *observed*; writes
//! made concurrently on different nodes both survive as entries until a later write observes
//! them, and the read picks the highest timestamp among them.
//!
//! Why not a bare `(timestamp, value)` pair: crdtkv's `DEL` is observed-remove (it removes what
//! the deleting node has seen, and a concurrent write elsewhere survives). With dots and a causal
//! context, a delete is "drop the entries I saw", so a concurrent `SET` the deleting node never
//! saw is still there after merge — regardless of which timestamp is higher. Keeping the losers of
//! a concurrent write until the next write is what makes that possible; there are at most as many
//! as there were concurrent writers.

use serde::{Deserialize, Deserializer, Serialize};

use crate::causal::{CausalContext, Dot, fresh_floor};
use crate::hlc::Timestamp;
use crate::merge::Merge;

/// One write: its dot, its timestamp and the bytes written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterEntry {
    /// The event of this write.
    pub dot: Dot,
    /// When it was written (decides the winner).
    pub ts: Timestamp,
    /// The bytes written.
    #[serde(with = "serde_bytes")]
    pub value: Box<[u8]>,
}

/// A register whose highest-timestamp write wins, with observed-remove delete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LwwRegister {
    /// Sorted by dot; usually one entry.
    entries: Entries,
    ctx: CausalContext,
}

/// The entries of a register, sorted by dot: almost always exactly one.
///
/// One entry is held inline, in the size of the entry itself (a `SmallVec` would add a word),
/// which keeps the register part of a key, and so the allocation each key holds, in a smaller
/// allocator size class. `Many` never holds exactly one entry, so equal registers are equal
/// here too. Encoded like a `Vec` of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entries {
    One(RegisterEntry),
    Many(Vec<RegisterEntry>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Many(Vec::new())
    }
}

impl Entries {
    fn from_vec(mut entries: Vec<RegisterEntry>) -> Self {
        match entries.pop() {
            Some(only) if entries.is_empty() => Entries::One(only),
            Some(last) => {
                entries.push(last);
                Entries::Many(entries)
            }
            None => Entries::default(),
        }
    }

    fn as_slice(&self) -> &[RegisterEntry] {
        match self {
            Entries::One(e) => std::slice::from_ref(e),
            Entries::Many(v) => v,
        }
    }

    /// Keeps the entries for which `keep` is true.
    fn retain(&mut self, mut keep: impl FnMut(&RegisterEntry) -> bool) {
        match self {
            Entries::One(e) => {
                if !keep(e) {
                    *self = Entries::default();
                }
            }
            Entries::Many(v) => {
                v.retain(|e| keep(e));
                if v.len() == 1 {
                    *self = Entries::from_vec(std::mem::take(v));
                }
            }
        }
    }

    /// Inserts `entry` at its place in dot order.
    fn insert(&mut self, entry: RegisterEntry) {
        match self {
            Entries::Many(v) if v.is_empty() => *self = Entries::One(entry),
            Entries::Many(v) => {
                let at = v.partition_point(|e| e.dot < entry.dot);
                v.insert(at, entry);
            }
            Entries::One(_) => {
                let Entries::One(first) = std::mem::take(self) else {
                    unreachable!("matched One")
                };
                *self = Entries::Many(if first.dot < entry.dot {
                    vec![first, entry]
                } else {
                    vec![entry, first]
                });
            }
        }
    }

    /// Calls `f` with each entry, by value, in order.
    fn for_each(self, mut f: impl FnMut(RegisterEntry)) {
        match self {
            Entries::One(e) => f(e),
            Entries::Many(v) => v.into_iter().for_each(f),
        }
    }
}

impl Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.as_slice())
    }
}

impl LwwRegister {
    /// An empty register (no value).
    pub fn new() -> Self {
        LwwRegister::default()
    }

    /// The winning entry: highest timestamp.
    pub fn winner(&self) -> Option<&RegisterEntry> {
        self.entries.as_slice().iter().max_by_key(|e| e.ts)
    }

    /// The winning value.
    pub fn get(&self) -> Option<&[u8]> {
        self.winner().map(|e| &*e.value)
    }

    /// Whether the register holds no value.
    pub fn is_empty(&self) -> bool {
        self.entries.as_slice().is_empty()
    }

    /// All surviving entries (more than one after concurrent writes), sorted by dot.
    pub fn entries(&self) -> &[RegisterEntry] {
        self.entries.as_slice()
    }

    /// Every dot this register has seen.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Writes `value` at `ts` (as node `ts.node`), replacing every observed entry; returns the
    /// delta.
    ///
    /// A node with no dot here starts at [`fresh_floor`] (see [`crate::causal`] on fresh
    /// starts).
    pub fn set(&mut self, ts: Timestamp, value: &[u8]) -> LwwRegister {
        let mut ctx: CausalContext = self.entries.as_slice().iter().map(|e| e.dot).collect();
        let (dot, fresh) = self.ctx.advance(ts.node, fresh_floor(ts));
        if fresh {
            ctx.insert_with_prefix(dot);
        } else {
            ctx.insert(dot);
        }
        let entry = RegisterEntry {
            dot,
            ts,
            value: value.into(),
        };
        self.entries = Entries::One(entry.clone());
        LwwRegister {
            entries: Entries::One(entry),
            ctx,
        }
    }

    /// Removes every observed entry (key-level `DEL`); returns the delta.
    pub fn clear(&mut self) -> LwwRegister {
        let ctx = self.entries.as_slice().iter().map(|e| e.dot).collect();
        self.entries = Entries::default();
        LwwRegister {
            entries: Entries::default(),
            ctx,
        }
    }
}

impl Merge for LwwRegister {
    fn merge(&mut self, other: LwwRegister) {
        let (theirs, their_ctx) = (other.entries, other.ctx);
        // Keep ours unless they saw it and dropped it; take theirs unless we saw it and dropped it
        // (or already hold it: a dot names one write, so equal dots are equal entries).
        self.entries.retain(|e| {
            !their_ctx.contains(e.dot) || theirs.as_slice().iter().any(|t| t.dot == e.dot)
        });
        theirs.for_each(|t| {
            if !self.ctx.contains(t.dot) {
                self.entries.insert(t);
            }
        });
        self.ctx.merge(&their_ctx);
    }
}

impl<'de> Deserialize<'de> for LwwRegister {
    /// Accepts only consistent state: entries sorted by unique dot, every dot in the context,
    /// and each timestamp issued by the node of its dot.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            entries: Vec<RegisterEntry>,
            ctx: CausalContext,
        }
        let raw = Raw::deserialize(deserializer)?;
        let sorted = raw.entries.windows(2).all(|w| w[0].dot < w[1].dot);
        let consistent = raw
            .entries
            .iter()
            .all(|e| raw.ctx.contains(e.dot) && e.ts.node == e.dot.node);
        if !sorted || !consistent {
            return Err(serde::de::Error::custom(
                "register entries must be sorted by dot, seen by the context, stamped by their node",
            ));
        }
        Ok(LwwRegister {
            entries: Entries::from_vec(raw.entries),
            ctx: raw.ctx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id::NodeId;

    fn ts(ms: u64, node: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(node),
        }
    }

    #[test]
    fn highest_timestamp_wins_after_concurrent_writes() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        let da = a.set(ts(10, 1), b"a");
        let db = b.set(ts(11, 2), b"b");
        a.merge(db);
        b.merge(da);
        assert_eq!(a, b);
        assert_eq!(a.get(), Some(&b"b"[..]));
        assert_eq!(
            a.entries().len(),
            2,
            "the loser stays until a write observes it"
        );
        a.set(ts(12, 1), b"c");
        assert_eq!(a.entries().len(), 1);
    }

    #[test]
    fn delete_spares_a_concurrent_write_even_with_lower_timestamp() {
        let mut a = LwwRegister::new();
        let d0 = a.set(ts(10, 1), b"old");
        let mut b = LwwRegister::new();
        b.merge(d0);
        let d_del = a.clear();
        let d_b = b.set(ts(5, 2), b"concurrent");
        a.merge(d_b);
        b.merge(d_del);
        assert_eq!(a, b);
        assert_eq!(a.get(), Some(&b"concurrent"[..]));
    }

    #[test]
    fn causally_later_write_wins() {
        let mut a = LwwRegister::new();
        let d1 = a.set(ts(100, 1), b"first");
        let mut b = LwwRegister::new();
        b.merge(d1);
        // b's clock is behind but its HLC observed a's write, so its timestamp is higher.
        let d2 = b.set(ts(100, 2), b"second");
        a.merge(d2);
        assert_eq!(a.get(), Some(&b"second"[..]));
        assert_eq!(a.entries().len(), 1);
    }
}
