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

use std::borrow::Cow;

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
///
/// Nearly every register of a keyspace has only ever been written by one node: it holds one
/// entry, and its context is exactly that node's events up to the entry's dot. That state is
/// held as the entry alone ([`Repr::Single`], the size of the entry, no allocation), because a
/// keyspace holds a million of them; any other state, the empty one included, is the general
/// form behind a box. The representation is canonical (a state that fits `Single` is always
/// held as `Single`), so equal registers are equal here too, and it never shows: the encoding,
/// every accessor and every law see the same entries and context either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LwwRegister {
    repr: Repr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    /// One entry; the context holds exactly the dots of its node up to and including its dot.
    Single(RegisterEntry),
    /// Any other state; `None` is the empty register (no entry, empty context).
    General(Option<Box<Full>>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::General(None)
    }
}

/// A register's state spelled out: its entries and its causal context. The operations are
/// written once, on this form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Full {
    /// Sorted by dot; usually one entry.
    entries: Entries,
    ctx: CausalContext,
}

/// The entries of a register, sorted by dot: almost always exactly one.
///
/// One entry is held inline, so turning a [`Repr::Single`] into its [`Full`] form to change it
/// allocates nothing. `Many` never holds exactly one entry. Encoded like a `Vec` of entries.
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

impl Full {
    fn set(&mut self, ts: Timestamp, value: &[u8]) -> Full {
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
        Full {
            entries: Entries::One(entry),
            ctx,
        }
    }

    fn clear(&mut self) -> Full {
        let ctx = self.entries.as_slice().iter().map(|e| e.dot).collect();
        self.entries = Entries::default();
        Full {
            entries: Entries::default(),
            ctx,
        }
    }

    fn merge(&mut self, other: Full) {
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

/// The context of a [`Repr::Single`] register whose entry has `dot`.
fn prefix_context(dot: Dot) -> CausalContext {
    let mut ctx = CausalContext::new();
    ctx.insert_with_prefix(dot);
    ctx
}

impl LwwRegister {
    /// The bytes of the only entry, when the register is a single write (nearly always): the
    /// heap memory a read of the value touches. `None` for any other state, whose entries sit
    /// behind a second pointer.
    pub(crate) fn heap_hint(&self) -> Option<*const u8> {
        match &self.repr {
            Repr::Single(entry) if !entry.value.is_empty() => Some(entry.value.as_ptr()),
            _ => None,
        }
    }

    /// An empty register (no value).
    pub fn new() -> Self {
        LwwRegister::default()
    }

    /// The register holding `full`, in its canonical representation.
    fn pack(full: Full) -> Self {
        let repr = match full.entries {
            Entries::One(entry) if full.ctx.is_prefix_of(entry.dot) => Repr::Single(entry),
            Entries::Many(v) if v.is_empty() && full.ctx.is_empty() => Repr::General(None),
            entries => Repr::General(Some(Box::new(Full {
                entries,
                ctx: full.ctx,
            }))),
        };
        LwwRegister { repr }
    }

    /// The state spelled out, taking it out of `self` (left empty).
    fn take_full(&mut self) -> Full {
        match std::mem::take(&mut self.repr) {
            Repr::Single(entry) => Full {
                ctx: prefix_context(entry.dot),
                entries: Entries::One(entry),
            },
            Repr::General(None) => Full::default(),
            Repr::General(Some(full)) => *full,
        }
    }

    /// Runs `f` on the spelled-out state and packs both the result and the delta `f` returns.
    fn change(&mut self, f: impl FnOnce(&mut Full) -> Full) -> LwwRegister {
        let mut full = self.take_full();
        let delta = f(&mut full);
        *self = LwwRegister::pack(full);
        LwwRegister::pack(delta)
    }

    /// The winning entry: highest timestamp.
    pub fn winner(&self) -> Option<&RegisterEntry> {
        match &self.repr {
            Repr::Single(entry) => Some(entry),
            _ => self.entries().iter().max_by_key(|e| e.ts),
        }
    }

    /// The winning value.
    pub fn get(&self) -> Option<&[u8]> {
        self.winner().map(|e| &*e.value)
    }

    /// Whether the register holds no value.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// All surviving entries (more than one after concurrent writes), sorted by dot.
    pub fn entries(&self) -> &[RegisterEntry] {
        match &self.repr {
            Repr::Single(entry) => std::slice::from_ref(entry),
            Repr::General(None) => &[],
            Repr::General(Some(full)) => full.entries.as_slice(),
        }
    }

    /// Every dot this register has seen (built for a register in the single-writer form).
    pub fn context(&self) -> Cow<'_, CausalContext> {
        match &self.repr {
            Repr::Single(entry) => Cow::Owned(prefix_context(entry.dot)),
            Repr::General(None) => Cow::Owned(CausalContext::new()),
            Repr::General(Some(full)) => Cow::Borrowed(&full.ctx),
        }
    }

    /// Writes `value` at `ts` (as node `ts.node`), replacing every observed entry; returns the
    /// delta.
    ///
    /// A node with no dot here starts at [`fresh_floor`] (see [`crate::causal`] on fresh
    /// starts).
    pub fn set(&mut self, ts: Timestamp, value: &[u8]) -> LwwRegister {
        self.change(|full| full.set(ts, value))
    }

    /// Removes every observed entry (key-level `DEL`); returns the delta.
    pub fn clear(&mut self) -> LwwRegister {
        self.change(Full::clear)
    }
}

impl Serialize for LwwRegister {
    /// `[entries, context]`, whatever the representation.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Encoded<'a> {
            entries: &'a [RegisterEntry],
            ctx: &'a CausalContext,
        }
        Encoded {
            entries: self.entries(),
            ctx: &self.context(),
        }
        .serialize(serializer)
    }
}

impl Merge for LwwRegister {
    fn merge(&mut self, other: LwwRegister) {
        let mut theirs = other;
        let theirs = theirs.take_full();
        let mut full = self.take_full();
        full.merge(theirs);
        *self = LwwRegister::pack(full);
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
        Ok(LwwRegister::pack(Full {
            entries: Entries::from_vec(raw.entries),
            ctx: raw.ctx,
        }))
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
    fn a_single_writer_register_is_one_entry_and_every_other_state_is_general() {
        assert_eq!(std::mem::size_of::<LwwRegister>(), 56);
        let mut a = LwwRegister::new();
        assert!(matches!(a.repr, Repr::General(None)));
        a.set(ts(1, 1), b"x");
        a.set(ts(2, 1), b"y");
        assert!(matches!(a.repr, Repr::Single(_)), "{a:?}");
        assert_eq!(a.context().vv().get(NodeId(1)), a.entries()[0].dot.counter);
        // A write by a second node keeps the first node's events in the context.
        let mut b = a.clone();
        b.set(ts(3, 2), b"z");
        assert!(matches!(b.repr, Repr::General(Some(_))));
        assert_eq!(b.get(), Some(&b"z"[..]));
        // A delete leaves the context behind.
        a.clear();
        assert!(a.is_empty() && !a.context().is_empty());
        assert!(matches!(a.repr, Repr::General(Some(_))));
        // Decoding gives back the canonical form.
        let mut c = LwwRegister::new();
        c.set(ts(5, 3), b"w");
        let decoded: LwwRegister = crate::encoding::decode(&crate::encoding::encode(&c)).unwrap();
        assert_eq!(decoded, c);
        assert!(matches!(decoded.repr, Repr::Single(_)));
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
