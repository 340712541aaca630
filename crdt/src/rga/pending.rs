//! Operations a replica holds but cannot place yet.
//!
//! Deltas arrive in any order, so a replica may receive an insert before the character it was
//! typed after (its origin), or a delete before the insert it deletes. Both are kept, because
//! the state is the *set* of operations and merging must be a union whatever the order:
//!
//! * [`Pending`] inserts wait, keyed by their first id, until their origin is integrated. Each
//!   run is uniformly deleted or visible; an index by origin finds the runs an integration
//!   unblocks in O(log n), so a replica holding many pending runs still merges a delta in time
//!   proportional to the delta.
//! * [`Deletes`] are ids deleted but not (yet) inserted here, as sorted, disjoint,
//!   non-adjacent ranges per node; they are consumed when the inserts arrive.

use std::collections::BTreeSet;

use smallvec::SmallVec;

use super::sorted_map::SortedMap;

use crate::node_id::NodeId;

/// A character id: the inserting node and its sequence number.
pub(crate) type Id = (NodeId, u64);

/// UTF-8 text stored inline when short (the usual delta carries one typed character), so a
/// delta holding it needs no allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Text(SmallVec<[u8; 16]>);

impl Text {
    pub(crate) fn as_str(&self) -> &str {
        // Only ever built from `&str`, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        if self.0.spilled() {
            self.0.capacity()
        } else {
            0
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(SmallVec::from_slice(s.as_bytes()))
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// An insert run waiting for its origin (or that can never be placed, see the module docs of
/// `rga`). Characters have ids `seq..seq + len`, Lamport numbers `lamport..lamport + len`,
/// and each after the first has the previous one as origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingRun {
    pub lamport: u64,
    /// Pending runs always have an origin: one at the document start is always placeable.
    pub origin: Id,
    pub len: u64,
    /// The text, empty exactly when the run is deleted.
    pub text: Text,
}

impl PendingRun {
    /// Whether `next` (starting at id `next_first`) continues this run (starting at `first`).
    pub(crate) fn continues(&self, first: Id, next_first: Id, next: &PendingRun) -> bool {
        let end = first.1 + self.len;
        next_first == (first.0, end)
            && next.lamport == self.lamport + self.len
            && next.origin == (first.0, end - 1)
            && next.text.is_empty() == self.text.is_empty()
    }
}

/// Pending inserts keyed by first id, plus which runs wait on which origin.
///
/// Runs are stored as they arrived (split only to keep deletedness uniform); the canonical
/// view joins runs that continue each other, so storing never copies text around.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    runs: SortedMap<Id, PendingRun>,
    /// Kept once there are many runs (a few are simply scanned); boxed so a delta, which
    /// holds one run, stays small.
    index: Option<Box<PendingIndex>>,
}

#[derive(Clone, Debug, Default)]
struct PendingIndex {
    /// `(origin, run)` for every run: finds the runs an integration may unblock without
    /// looking at the others.
    waiting: BTreeSet<(Id, Id)>,
    /// Pending characters.
    chars: u64,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Id, &PendingRun)> + '_ {
        self.runs.iter()
    }

    /// Number of pending characters.
    pub(crate) fn chars(&self) -> u64 {
        match &self.index {
            Some(ix) => ix.chars,
            None => self
                .runs
                .iter()
                .map(|(_, r)| r.len)
                .fold(0, u64::saturating_add),
        }
    }

    /// The pending run containing `(node, seq)`: its first id and one past its last seq.
    pub(crate) fn find(&self, node: NodeId, seq: u64) -> Option<(Id, u64)> {
        let (&id, run) = self.runs.pred(&(node, seq))?;
        (id.0 == node && seq < id.1 + run.len).then_some((id, id.1 + run.len))
    }

    /// The first pending seq of `node` greater than `seq`.
    pub(crate) fn next_start(&self, node: NodeId, seq: u64) -> Option<u64> {
        let (&(n, s), _) = self.runs.succ(&(node, seq.checked_add(1)?))?;
        (n == node).then_some(s)
    }

    /// One past the highest pending seq of `node`.
    pub(crate) fn max_end(&self, node: NodeId) -> Option<u64> {
        let (&(n, s), run) = self.runs.pred(&(node, u64::MAX))?;
        (n == node).then_some(s + run.len)
    }

    /// Adds a run whose ids are not yet held anywhere in the replica.
    pub(crate) fn insert(&mut self, id: Id, run: PendingRun) {
        debug_assert!(run.len > 0 && self.runs.get(&id).is_none());
        let (origin, len) = (run.origin, run.len);
        self.runs.insert(id, run);
        if let Some(ix) = &mut self.index {
            ix.waiting.insert((origin, id));
            ix.chars = ix.chars.saturating_add(len);
        } else if self.runs.is_large() {
            let waiting = self.runs.iter().map(|(&id, r)| (r.origin, id)).collect();
            let chars = self
                .runs
                .iter()
                .map(|(_, r)| r.len)
                .fold(0, u64::saturating_add);
            self.index = Some(Box::new(PendingIndex { waiting, chars }));
        }
    }

    /// Removes the run starting at `id`.
    pub(crate) fn remove(&mut self, id: Id) -> Option<PendingRun> {
        let run = self.runs.remove(&id)?;
        if !self.runs.is_large() {
            self.index = None;
        } else if let Some(ix) = &mut self.index {
            ix.waiting.remove(&(run.origin, id));
            ix.chars = ix.chars.saturating_sub(run.len);
        }
        Some(run)
    }

    /// The run starting at `id`.
    pub(crate) fn get(&self, id: Id) -> Option<&PendingRun> {
        self.runs.get(&id)
    }

    /// Runs whose origin is one of the ids `[s, e)` of `node`.
    pub(crate) fn waiting_on(&self, node: NodeId, s: u64, e: u64) -> Vec<Id> {
        match &self.index {
            Some(ix) => {
                let lo = ((node, s), (NodeId(0), 0));
                let hi = ((node, e), (NodeId(0), 0));
                ix.waiting.range(lo..hi).map(|&(_, id)| id).collect()
            }
            None => self
                .runs
                .iter()
                .filter(|(_, r)| r.origin.0 == node && (s..e).contains(&r.origin.1))
                .map(|(&id, _)| id)
                .collect(),
        }
    }

    /// Marks `[s, e)` of the pending run starting at `id` deleted, splitting it as needed.
    pub(crate) fn mark_deleted(&mut self, id: Id, s: u64, e: u64) {
        if self.runs.get(&id).is_none_or(|r| r.text.is_empty()) {
            return;
        }
        let Some(run) = self.remove(id) else { return };
        let (node, first) = id;
        let a = s - first;
        let b = e - first;
        let text = run.text.as_str();
        let cut_a = char_byte(text, a);
        let cut_b = char_byte(text, b);
        if a > 0 {
            let left = PendingRun {
                lamport: run.lamport,
                origin: run.origin,
                len: a,
                text: text[..cut_a].into(),
            };
            self.insert(id, left);
        }
        let mid_origin = if a > 0 { (node, s - 1) } else { run.origin };
        self.insert(
            (node, s),
            PendingRun {
                lamport: run.lamport + a,
                origin: mid_origin,
                len: b - a,
                text: Text::default(),
            },
        );
        if b < run.len {
            let right = PendingRun {
                lamport: run.lamport + b,
                origin: (node, e - 1),
                len: run.len - b,
                text: text[cut_b..].into(),
            };
            self.insert((node, e), right);
        }
    }
}

/// Byte offset of character `n` of `s` (or its length).
pub(crate) fn char_byte(s: &str, n: u64) -> usize {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n >= s.len() {
        // At least as many characters as bytes asked for: all of it.
        s.len()
    } else if s.as_bytes()[..n].is_ascii() {
        // Only the prefix is looked at, so walking a long text piece by piece stays linear.
        n
    } else {
        s.char_indices().nth(n).map_or(s.len(), |(b, _)| b)
    }
}

/// Deleted ids whose inserts are not held: disjoint, non-adjacent ranges `[start, end)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deletes {
    ranges: SortedMap<Id, u64>,
}

impl PartialEq for Deletes {
    fn eq(&self, other: &Self) -> bool {
        self.ranges.len() == other.ranges.len() && self.ranges.iter().eq(other.ranges.iter())
    }
}

impl Eq for Deletes {}

impl Deletes {
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// `(node, start, end)` in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (NodeId, u64, u64)> + '_ {
        self.ranges.iter().map(|(&(n, s), &e)| (n, s, e))
    }

    /// Number of ids (saturating: hostile ranges can be huge).
    pub(crate) fn ids(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(&(_, s), &e)| e - s)
            .fold(0, u64::saturating_add)
    }

    /// The deletion of `ranges` (`(node, start, end)`, any order, may overlap).
    pub(crate) fn from_ranges(mut ranges: Vec<(NodeId, u64, u64)>) -> Self {
        ranges.sort_unstable();
        let mut joined: Vec<(Id, u64)> = Vec::with_capacity(ranges.len());
        for (node, s, e) in ranges {
            match joined.last_mut() {
                Some(((n, _), end)) if *n == node && *end >= s => *end = (*end).max(e),
                _ => joined.push(((node, s), e)),
            }
        }
        Deletes {
            ranges: SortedMap::from_sorted(joined),
        }
    }

    /// The range, if there is exactly one.
    pub(crate) fn single(&self) -> Option<(NodeId, u64, u64)> {
        let mut it = self.iter();
        let first = it.next()?;
        it.next().is_none().then_some(first)
    }

    /// One past the highest deleted seq of `node`.
    pub(crate) fn max_end(&self, node: NodeId) -> Option<u64> {
        let (&(n, _), &e) = self.ranges.pred(&(node, u64::MAX))?;
        (n == node).then_some(e)
    }

    /// Adds `[s, e)` of `node`, joining overlapping and adjacent ranges.
    pub(crate) fn add(&mut self, node: NodeId, mut s: u64, mut e: u64) {
        if s >= e {
            return;
        }
        if let Some((&(n, ps), &pe)) = self.ranges.pred(&(node, s))
            && n == node
            && pe >= s
        {
            if pe >= e {
                return;
            }
            s = ps;
            self.ranges.remove(&(n, ps));
        }
        while let Some((&(n, ns), &ne)) = self.ranges.succ(&(node, s)) {
            if n != node || ns > e {
                break;
            }
            self.ranges.remove(&(n, ns));
            e = e.max(ne);
        }
        self.ranges.insert((node, s), e);
    }

    /// Removes and returns the parts of `[s, e)` of `node` that are recorded, in order.
    pub(crate) fn take(&mut self, node: NodeId, s: u64, e: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if self.ranges.is_empty() {
            return out;
        }
        let first = match self.ranges.pred(&(node, s)) {
            Some((&(n, ps), &pe)) if n == node && pe > s => ps,
            _ => s,
        };
        let hits: Vec<(u64, u64)> = self
            .ranges
            .range((node, first), (node, e))
            .map(|(&(_, rs), &re)| (rs, re))
            .collect();
        for (rs, re) in hits {
            self.ranges.remove(&(node, rs));
            if rs < s {
                self.ranges.insert((node, rs), s);
            }
            if re > e {
                self.ranges.insert((node, e), re);
            }
            out.push((rs.max(s), re.min(e)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const C: NodeId = NodeId(3);

    #[test]
    fn deletes_join_and_take() {
        let mut d = Deletes::default();
        d.add(A, 5, 8);
        d.add(A, 8, 10);
        d.add(A, 1, 3);
        d.add(B, 1, 100);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![(A, 1, 3), (A, 5, 10), (B, 1, 100)]
        );
        d.add(A, 2, 6);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![(A, 1, 10), (B, 1, 100)]);
        assert_eq!(d.take(A, 4, 6), vec![(4, 6)]);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![(A, 1, 4), (A, 6, 10), (B, 1, 100)]
        );
        assert_eq!(d.take(A, 0, 20), vec![(1, 4), (6, 10)]);
        assert_eq!(d.take(B, 50, 51), vec![(50, 51)]);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![(B, 1, 50), (B, 51, 100)]);
        assert_eq!(d.max_end(B), Some(100));
        assert_eq!(d.max_end(A), None);
        assert_eq!(d.ids(), 98);
    }

    #[test]
    fn pending_split_and_wait() {
        let mut p = Pending::default();
        p.insert(
            (A, 1),
            PendingRun {
                lamport: 10,
                origin: (B, 7),
                len: 4,
                text: "héll".into(),
            },
        );
        assert_eq!(p.find(A, 4), Some(((A, 1), 5)));
        assert_eq!(p.find(A, 5), None);
        assert!(p.waiting_on(B, 0, 7).is_empty());
        assert_eq!(p.waiting_on(B, 7, 8), vec![(A, 1)]);
        p.mark_deleted((A, 1), 2, 4);
        let runs: Vec<_> = p
            .iter()
            .map(|(id, r)| (*id, r.len, r.text.as_str().to_owned()))
            .collect();
        assert_eq!(
            runs,
            vec![
                ((A, 1), 1, "h".into()),
                ((A, 2), 2, String::new()),
                ((A, 4), 1, "l".into())
            ]
        );
        assert_eq!(p.next_start(A, 1), Some(2));
        assert_eq!(p.waiting_on(A, 1, 2), vec![(A, 2)]);
        assert_eq!(p.chars(), 4);
        assert_eq!(p.max_end(A), Some(5));
        p.remove((A, 2));
        assert_eq!((p.chars(), p.waiting_on(A, 0, 10).len()), (2, 1));
        // Past the small size the origin index takes over; it must agree.
        for i in 0..100 {
            p.insert(
                (B, 100 + 2 * i),
                PendingRun {
                    lamport: 50 + i,
                    origin: (C, i % 10),
                    len: 2,
                    text: "xy".into(),
                },
            );
        }
        assert_eq!(p.waiting_on(C, 3, 5).len(), 20);
        assert_eq!(p.waiting_on(A, 0, 10).len(), 1);
        for i in 0..100 {
            p.remove((B, 100 + 2 * i));
        }
        assert_eq!(
            (
                p.chars(),
                p.waiting_on(A, 0, 10).len(),
                p.waiting_on(C, 0, 10).len()
            ),
            (2, 1, 0)
        );
    }
}
