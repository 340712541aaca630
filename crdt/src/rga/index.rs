//! The id index: which leaf of the tree holds a given character id.
//!
//! Remote operations name characters by id (`(node, seq)`), not by position, so integrating one
//! must find the id's place without scanning the document. The tree cannot be searched by id
//! (it is ordered by document position), so this side table maps, per agent, ranges of
//! consecutive sequence numbers to the leaf that holds them. A range covers as many consecutive
//! ids as sit in the same leaf, so a run typed in one place is one entry however long it is,
//! and splitting runs inside a leaf never touches the index; only runs moved to another leaf by
//! a leaf split are re-pointed.
//!
//! Each agent's spans are a sorted sequence stored in chunks of at most [`CHUNK_MAX`] spans,
//! with the first key of every chunk in a separate array: a lookup is two binary searches over
//! contiguous memory, and an insert or removal moves at most one chunk's spans (and, when a
//! chunk splits or empties, the chunk list). That is O(log n) to find and O(√n)-ish to edit
//! in the worst case, and in practice cheaper than a pointer-chasing tree for the frequent
//! re-pointing leaf splits cause. Local typing (ids always growing) extends the last span.

/// Spans per chunk before it splits in two.
const CHUNK_MAX: usize = 64;

/// Consecutive sequence numbers `[start, end)` held by one leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
    leaf: u32,
}

/// One agent's spans, sorted and disjoint. `firsts[c] == chunks[c][0].start`; no chunk is
/// empty.
#[derive(Clone, Debug, Default)]
struct AgentIndex {
    chunks: Vec<Vec<Span>>,
    firsts: Vec<u64>,
}

/// A position in an [`AgentIndex`]: chunk and offset. `(chunks.len(), 0)` is the end.
type Pos = (usize, usize);

impl AgentIndex {
    /// The position of the last span starting at or before `seq`, if any.
    fn locate(&self, seq: u64) -> Option<Pos> {
        let c = self.firsts.partition_point(|&f| f <= seq).checked_sub(1)?;
        let i = self.chunks[c].partition_point(|s| s.start <= seq) - 1;
        Some((c, i))
    }

    fn span(&self, (c, i): Pos) -> Option<Span> {
        self.chunks.get(c)?.get(i).copied()
    }

    /// The position after `p`.
    fn next(&self, (c, i): Pos) -> Pos {
        if i + 1 < self.chunks[c].len() {
            (c, i + 1)
        } else {
            (c + 1, 0)
        }
    }

    fn lookup(&self, seq: u64) -> Option<(u32, u64)> {
        let span = self.span(self.locate(seq)?)?;
        (seq < span.end).then_some((span.leaf, span.end))
    }

    fn next_start(&self, seq: u64) -> Option<u64> {
        let p = match self.locate(seq) {
            Some(p) => self.next(p),
            None => (0, 0),
        };
        self.span(p).map(|s| s.start)
    }

    /// Removes the span at `p`; returns the position of the span that followed it.
    fn remove(&mut self, (c, i): Pos) -> Pos {
        let chunk = &mut self.chunks[c];
        chunk.remove(i);
        if chunk.is_empty() {
            self.chunks.remove(c);
            self.firsts.remove(c);
            return (c, 0);
        }
        if i == 0 {
            self.firsts[c] = chunk[0].start;
        }
        if i == chunk.len() { (c + 1, 0) } else { (c, i) }
    }

    /// Inserts `span` before position `p`; returns the position after the inserted span.
    fn insert(&mut self, (c, i): Pos, span: Span) -> Pos {
        if self.chunks.is_empty() {
            self.chunks.push(vec![span]);
            self.firsts.push(span.start);
            return (1, 0);
        }
        // The end of one chunk and the start of the next are the same place; prefer the end
        // of the earlier chunk so appends grow the last chunk.
        let (c, i) = if i == 0 && c > 0 {
            (c - 1, self.chunks[c - 1].len())
        } else {
            (c, i)
        };
        let chunk = &mut self.chunks[c];
        chunk.insert(i, span);
        if i == 0 {
            self.firsts[c] = span.start;
        }
        if chunk.len() > CHUNK_MAX {
            let tail = chunk.split_off(CHUNK_MAX / 2);
            self.firsts.insert(c + 1, tail[0].start);
            self.chunks.insert(c + 1, tail);
            if i >= CHUNK_MAX / 2 {
                return self.next((c + 1, i - CHUNK_MAX / 2));
            }
        }
        self.next((c, i))
    }

    /// Typing's fast path: extends the last span when the ids continue it in the same leaf.
    #[inline]
    fn try_extend_last(&mut self, start: u64, end: u64, leaf: u32) -> bool {
        match self.chunks.last_mut().and_then(|c| c.last_mut()) {
            Some(last) if last.end == start && last.leaf == leaf => {
                last.end = end;
                true
            }
            _ => false,
        }
    }

    #[inline(never)]
    fn assign(&mut self, start: u64, end: u64, leaf: u32) {
        // Ids past every recorded one (fresh runs).
        if self
            .chunks
            .last()
            .and_then(|c| c.last())
            .is_none_or(|last| last.end <= start)
        {
            let end_pos = (self.chunks.len(), 0);
            self.insert(end_pos, Span { start, end, leaf });
            return;
        }
        // Re-pointing exactly one span.
        let located = self.locate(start);
        if let Some(p) = located
            && let Some(span) = self.span(p)
            && span.start == start
            && span.end == end
        {
            self.chunks[p.0][p.1].leaf = leaf;
            self.join_around(p);
            return;
        }
        // Carve [start, end) out of every span overlapping it, keeping what sticks out.
        let mut p = located.unwrap_or((0, 0));
        let (mut left, mut right) = (None, None);
        while let Some(span) = self.span(p) {
            if span.start >= end {
                break;
            }
            if span.end <= start {
                p = self.next(p);
                continue;
            }
            if span.start < start {
                left = Some(Span { end: start, ..span });
            }
            if span.end > end {
                right = Some(Span { start: end, ..span });
            }
            p = self.remove(p);
        }
        for span in [left, Some(Span { start, end, leaf }), right]
            .into_iter()
            .flatten()
        {
            p = self.insert(p, span);
        }
        // `p` is just after the new span (or after `right`).
        if let Some(q) = self.locate(start) {
            self.join_around(q);
        }
    }

    /// Joins the span at `p` with neighbours holding adjacent ids in the same leaf, so the
    /// index stays about as small as the number of places text was typed in.
    fn join_around(&mut self, p: Pos) {
        let Some(span) = self.span(p) else { return };
        let next = self.next(p);
        if let Some(after) = self.span(next)
            && after.start == span.end
            && after.leaf == span.leaf
        {
            self.chunks[p.0][p.1].end = after.end;
            self.remove(next);
        }
        if span.start > 0
            && let Some(q) = self.locate(span.start - 1)
            && let Some(before) = self.span(q)
            && before.end == span.start
            && before.leaf == span.leaf
        {
            let end = self.chunks[p.0][p.1].end;
            self.chunks[q.0][q.1].end = end;
            self.remove(p);
        }
    }
}

/// Per agent (index into the agent table), the leaf holding each integrated id.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    agents: Vec<AgentIndex>,
}

impl IdIndex {
    /// The leaf holding `(agent, seq)` and the end of the indexed range that contains it (every
    /// id in `[seq, end)` is integrated and lives in that leaf).
    #[inline]
    pub(crate) fn lookup(&self, agent: u32, seq: u64) -> Option<(u32, u64)> {
        self.agents.get(agent as usize)?.lookup(seq)
    }

    /// The first integrated sequence number of `agent` greater than `seq`, if any: where a gap
    /// of unknown ids starting at `seq` ends.
    pub(crate) fn next_start(&self, agent: u32, seq: u64) -> Option<u64> {
        self.agents.get(agent as usize)?.next_start(seq)
    }

    /// Records that ids `[start, end)` of `agent` live in `leaf`, replacing whatever was
    /// recorded for them before.
    #[inline]
    pub(crate) fn assign(&mut self, agent: u32, start: u64, end: u64, leaf: u32) {
        debug_assert!(start < end);
        let agent = agent as usize;
        if let Some(a) = self.agents.get_mut(agent)
            && a.try_extend_last(start, end, leaf)
        {
            return;
        }
        if self.agents.len() <= agent {
            self.agents.resize_with(agent + 1, AgentIndex::default);
        }
        self.agents[agent].assign(start, end, leaf);
    }

    /// Records that the ids of `runs` (`(agent, start, end)`, any order) now live in `leaf`.
    pub(crate) fn repoint(&mut self, runs: &mut [(u32, u64, u64)], leaf: u32) {
        runs.sort_unstable();
        let mut i = 0;
        while i < runs.len() {
            // Runs with consecutive ids move as one range.
            let (agent, start, mut end) = runs[i];
            i += 1;
            while i < runs.len() && runs[i].0 == agent && runs[i].1 == end {
                end = runs[i].2;
                i += 1;
            }
            self.assign(agent, start, end, leaf);
        }
    }

    /// Number of entries, for memory accounting in tests and stats.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.agents
            .iter()
            .flat_map(|a| &a.chunks)
            .map(Vec::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_lookup_and_repoint() {
        let mut ix = IdIndex::default();
        ix.assign(0, 1, 10, 7);
        ix.assign(0, 10, 12, 7); // extends
        assert_eq!(ix.entries(), 1);
        assert_eq!(ix.lookup(0, 11), Some((7, 12)));
        assert_eq!(ix.lookup(0, 12), None);
        assert_eq!(ix.lookup(1, 1), None);
        // Move the middle to another leaf.
        ix.assign(0, 4, 6, 9);
        assert_eq!(ix.lookup(0, 3), Some((7, 4)));
        assert_eq!(ix.lookup(0, 4), Some((9, 6)));
        assert_eq!(ix.lookup(0, 6), Some((7, 12)));
        // Move it back: the three spans join again.
        ix.assign(0, 4, 6, 7);
        assert_eq!(ix.entries(), 1);
        assert_eq!(ix.lookup(0, 1), Some((7, 12)));
        // Gaps.
        ix.assign(0, 20, 25, 3);
        assert_eq!(ix.next_start(0, 12), Some(20));
        assert_eq!(ix.next_start(0, 20), None);
        // A range spanning several spans.
        ix.assign(0, 2, 22, 5);
        assert_eq!(ix.lookup(0, 1), Some((7, 2)));
        assert_eq!(ix.lookup(0, 15), Some((5, 22)));
        assert_eq!(ix.lookup(0, 22), Some((3, 25)));
        assert_eq!(ix.lookup(0, 16), Some((5, 22)));
    }

    /// Random assignments against a model holding one leaf per id; enough of them to split
    /// and empty chunks many times.
    #[test]
    fn matches_a_per_id_model() {
        let mut x = 99u64;
        let mut rnd = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let mut ix = IdIndex::default();
        let mut model: Vec<Option<u32>> = vec![None; 3000];
        for step in 0..6000 {
            let (start, len) = if step % 4 == 0 {
                let s = model.iter().rposition(Option::is_some).map_or(0, |p| p + 1) as u64;
                (s.min(2990), 1 + rnd(8))
            } else {
                (rnd(2900), 1 + rnd(if step % 10 == 0 { 90 } else { 6 }))
            };
            let leaf = rnd(5) as u32;
            ix.assign(0, start, start + len, leaf);
            for m in &mut model[start as usize..(start + len) as usize] {
                *m = Some(leaf);
            }
        }
        for (seq, m) in model.iter().enumerate() {
            let seq = seq as u64;
            assert_eq!(ix.lookup(0, seq).map(|(l, _)| l), *m, "seq {seq}");
            if let Some((leaf, end)) = ix.lookup(0, seq) {
                assert!(
                    model[seq as usize..end as usize]
                        .iter()
                        .all(|m| *m == Some(leaf))
                );
            }
            if m.is_none() {
                let first_known = model
                    .iter()
                    .enumerate()
                    .skip(seq as usize + 1)
                    .find(|(_, m)| m.is_some())
                    .map(|(i, _)| i as u64);
                assert_eq!(ix.next_start(0, seq), first_known, "next_start {seq}");
            }
        }
        let a = &ix.agents[0];
        for (c, chunk) in a.chunks.iter().enumerate() {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK_MAX);
            assert_eq!(a.firsts[c], chunk[0].start);
        }
        let spans: Vec<Span> = a.chunks.iter().flatten().copied().collect();
        for w in spans.windows(2) {
            assert!(w[0].end <= w[1].start, "sorted and disjoint");
            assert!(
                w[0].end < w[1].start || w[0].leaf != w[1].leaf,
                "adjacent same-leaf spans are joined"
            );
        }
    }
}
