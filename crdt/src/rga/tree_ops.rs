//! Edits on the [`Tree`] beyond placing runs: deleting by position and by id, integrating
//! remote runs with the RGA rule, and reading text back.

use std::cmp::min;

use super::tree::{LEAF_CAP, NIL, NODE_CAP, Place, Run, Tree};
use crate::node_id::NodeId;

impl Tree {
    /// Deletes up to `count` characters of the live run at `at`, starting at `at.off`.
    /// Returns the agent, first sequence number and number of characters deleted.
    pub(crate) fn delete_at(&mut self, mut at: Place, count: u64) -> (u32, u64, u32) {
        let r = self.run(at);
        debug_assert!(r.live() && at.off < r.len);
        let n = min(count, u64::from(r.len - at.off)) as u32;
        let extra = usize::from(at.off > 0) + usize::from(at.off + n < r.len);
        if self.leaves[at.leaf as usize].len + extra > LEAF_CAP {
            at = self.split_leaf_around(at);
        }
        if at.off + n < r.len {
            self.split_run(at.leaf, at.idx, at.off + n);
        }
        if at.off > 0 {
            self.split_run(at.leaf, at.idx, at.off);
            at.idx += 1;
        }
        let lf = &mut self.leaves[at.leaf as usize];
        let piece = lf.runs[at.idx];
        let b = lf.byte_offset(at.idx);
        lf.text.replace_range(b..b + piece.bytes as usize, "");
        lf.runs[at.idx].bytes = 0;
        self.coalesce(at.leaf, at.idx);
        self.add_visible(at.leaf, -i64::from(n));
        (piece.agent, piece.seq, n)
    }

    /// Marks integrated ids `[start, end)` of `agent` deleted. Every id must be integrated.
    pub(crate) fn delete_ids(&mut self, agent: u32, start: u64, end: u64) {
        let mut s = start;
        while s < end {
            let Some(at) = self.find_id(agent, s) else {
                debug_assert!(false, "deleting an id that is not integrated");
                return;
            };
            let r = self.run(at);
            let n = min(end, r.end()) - s;
            if r.live() {
                self.delete_at(at, n);
            }
            s += n;
        }
    }

    /// Marks every visible character deleted; returns the deleted ids as
    /// `(agent, first seq, count)`.
    pub(crate) fn delete_all(&mut self) -> Vec<(u32, u64, u64)> {
        let mut out = Vec::new();
        for lf in &mut self.leaves {
            for r in &mut lf.runs[..lf.len] {
                if r.live() {
                    out.push((r.agent, r.seq, u64::from(r.len)));
                    r.bytes = 0;
                }
            }
            lf.text = String::new();
            lf.visible = 0;
            // Neighbouring tombstones that continue each other become one entry again.
            let mut w = 0;
            for i in 0..lf.len {
                let r = lf.runs[i];
                if w > 0 && lf.runs[w - 1].continues_with(&r) {
                    lf.runs[w - 1].len += r.len;
                } else {
                    lf.runs[w] = r;
                    w += 1;
                }
            }
            lf.len = w;
        }
        for node in &mut self.nodes {
            node.visible = [0; NODE_CAP];
        }
        self.visible = 0;
        self.hint = None;
        out
    }

    /// RGA integration of a remote run whose origin is integrated (or the document start):
    /// start right after the origin and skip every following character whose
    /// `(lamport, node, seq)` is greater than the new run's first character's. Such characters
    /// are the origin's other children that win the tie, and their descendants (a descendant's
    /// Lamport number exceeds its ancestor's); the scan stops at the first smaller one, which
    /// lies after the new run in the order every replica computes. Within a run the keys grow,
    /// so one comparison decides a whole run.
    pub(crate) fn integrate(&mut self, run: Run, text: &str, nodes: &[NodeId]) {
        let mut at = if run.origin_agent == NIL {
            self.start()
        } else {
            match self.find_id(run.origin_agent, run.origin_seq) {
                Some(p) => Place {
                    off: p.off + 1,
                    ..p
                },
                None => {
                    debug_assert!(false, "integrating a run whose origin is not integrated");
                    return;
                }
            }
        };
        if !self.is_empty() {
            let key = (run.lamport, nodes[run.agent as usize], run.seq);
            loop {
                let lf = &self.leaves[at.leaf as usize];
                if at.idx < lf.len && at.off >= lf.runs[at.idx].len {
                    at.idx += 1;
                    at.off = 0;
                }
                if at.idx >= lf.len {
                    if lf.next == NIL {
                        break;
                    }
                    at = Place {
                        leaf: lf.next,
                        idx: 0,
                        off: 0,
                    };
                    continue;
                }
                let r = &lf.runs[at.idx];
                let o = u64::from(at.off);
                if (r.lamport + o, nodes[r.agent as usize], r.seq + o) < key {
                    break;
                }
                at.off = r.len;
            }
        }
        self.insert_at(at, run, text);
    }

    /// Joins run `idx` with its neighbours where they continue each other (typically
    /// tombstones of characters typed in a row and deleted one by one).
    pub(super) fn coalesce(&mut self, leaf: u32, idx: usize) {
        let lf = &mut self.leaves[leaf as usize];
        if idx + 1 < lf.len && lf.runs[idx].continues_with(&lf.runs[idx + 1]) {
            let nx = lf.runs[idx + 1];
            lf.runs[idx].len += nx.len;
            lf.runs[idx].bytes += nx.bytes;
            lf.runs.copy_within(idx + 2..lf.len, idx + 1);
            lf.len -= 1;
        }
        if idx > 0 && lf.runs[idx - 1].continues_with(&lf.runs[idx]) {
            let cur = lf.runs[idx];
            lf.runs[idx - 1].len += cur.len;
            lf.runs[idx - 1].bytes += cur.bytes;
            lf.runs.copy_within(idx + 1..lf.len, idx);
            lf.len -= 1;
        }
    }

    /// Visible characters `[start, end)` appended to `out`. Requires `start < end <= visible`.
    pub(crate) fn write_slice(&self, start: u64, end: u64, out: &mut String) {
        let (mut leaf, before) = self.find_leaf(start);
        let mut skip = start - before;
        let mut want = end - start;
        while want > 0 && leaf != NIL {
            let lf = &self.leaves[leaf as usize];
            let text = lf.text.as_str();
            let ascii = text.len() as u64 == lf.visible;
            let from = if ascii {
                skip as usize
            } else {
                nth_char_byte(text, skip)
            };
            let rest = &text[from..];
            let avail = lf.visible - skip;
            let take = min(avail, want);
            let to = if ascii {
                take as usize
            } else {
                nth_char_byte(rest, take)
            };
            out.push_str(&rest[..to]);
            want -= take;
            skip = 0;
            leaf = lf.next;
        }
    }
}

/// Byte offset of the `n`-th character of `s` (or its length).
fn nth_char_byte(s: &str, n: u64) -> usize {
    if n == 0 {
        return 0;
    }
    s.char_indices().nth(n as usize).map_or(s.len(), |(b, _)| b)
}

#[cfg(test)]
impl Tree {
    /// Checks every structural invariant; panics with a description if one is broken.
    pub(crate) fn check(&self) {
        if self.is_empty() {
            assert_eq!((self.visible, self.total), (0, 0));
            return;
        }
        let mut visible = 0;
        let mut total = 0;
        let mut count = 0;
        for (i, lf) in self.leaves.iter().enumerate() {
            let bytes: usize = lf.runs().iter().map(|r| r.bytes as usize).sum();
            assert_eq!(bytes, lf.text.len(), "leaf {i} text length");
            let vis: u64 = lf.runs().iter().map(Run::visible).sum();
            assert_eq!(vis, lf.visible, "leaf {i} visible count");
            let mut b = 0;
            for r in lf.runs() {
                assert!(r.len > 0, "empty run in leaf {i}");
                let t = &lf.text[b..b + r.bytes as usize];
                assert!(
                    r.bytes == 0 || t.chars().count() == r.len as usize,
                    "run text length"
                );
                b += r.bytes as usize;
                assert_eq!(
                    self.index.lookup(r.agent, r.seq).map(|x| x.0),
                    Some(i as u32),
                    "index of run start"
                );
                assert_eq!(
                    self.index.lookup(r.agent, r.end() - 1).map(|x| x.0),
                    Some(i as u32),
                    "index of run end"
                );
                total += u64::from(r.len);
            }
            visible += vis;
            count += 1;
            if lf.parent != NIL {
                let p = &self.nodes[lf.parent as usize];
                let slot = p.children[..p.len]
                    .iter()
                    .position(|&c| c == i as u32)
                    .expect("leaf in parent");
                assert_eq!(p.visible[slot], lf.visible, "parent count of leaf {i}");
                assert_eq!(slot, lf.slot as usize, "slot of leaf {i}");
            } else {
                assert_eq!((self.height, self.root), (0, i as u32));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.parent != NIL {
                let p = &self.nodes[n.parent as usize];
                let slot = p.children[..p.len]
                    .iter()
                    .position(|&c| c == i as u32)
                    .expect("node in parent");
                assert_eq!(
                    p.visible[slot],
                    n.visible[..n.len].iter().sum::<u64>(),
                    "parent count of node {i}"
                );
                assert_eq!(slot, n.slot as usize, "slot of node {i}");
            } else {
                assert_eq!(self.root, i as u32, "only the root has no parent");
            }
        }
        assert_eq!(self.leaves_in_order().count(), count, "leaf chain");
        assert_eq!((visible, total), (self.visible, self.total), "tree totals");
    }
}
