//! Merging: the union of two sets of operations.
//!
//! The smaller side's operations are applied to the larger side, so merging a delta into a big
//! state costs about the delta's size. Inserts are applied in ascending Lamport order: an
//! insert's origin has a smaller Lamport number, so it is already placed when the insert
//! comes, and the RGA scan after the origin finds (almost) nothing to skip, because the
//! characters placed so far have smaller keys. Merging a whole state into an empty one is thus
//! O(n log n). Ids already held are skipped (only their deletion is carried over), so merging
//! is idempotent and duplicates are harmless.

use std::cmp::{Reverse, min};
use std::collections::BinaryHeap;

use super::State;
use super::doc::chunk_bytes;
use super::pending::{Id, PendingRun, char_byte};
use super::tree::{NIL, RUN_MAX, Run};
use crate::node_id::NodeId;

/// An insert run as merging sees it, borrowed from wherever it is stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpRef<'a> {
    pub node: NodeId,
    pub seq: u64,
    pub lamport: u64,
    pub origin: Option<Id>,
    pub len: u64,
    /// The text, empty exactly when the characters are deleted.
    pub text: &'a str,
}

impl OpRef<'_> {
    fn deleted(&self) -> bool {
        self.text.is_empty()
    }
}

/// Splits off the first `n` characters of `text` (nothing of a tombstone's empty text).
fn split_chars(text: &str, n: u64) -> (&str, &str) {
    text.split_at(char_byte(text, n))
}

impl State {
    /// Joins `other` into `self` (see the module docs).
    pub(super) fn merge_state(&mut self, mut other: State) {
        if other.is_bottom() {
            return;
        }
        if self.is_bottom() {
            *self = other;
            return;
        }
        if other.weight() > self.weight() {
            std::mem::swap(self, &mut other);
        }
        let mut ops = other.ops();
        ops.sort_unstable_by_key(|o| (o.lamport, o.node, o.seq));
        for op in &ops {
            self.apply_insert(op);
        }
        for (node, s, e) in other.deletes.iter() {
            self.apply_delete(node, s, e);
        }
        self.settle();
    }
}

impl State {
    /// Adds one insert run received as a delta.
    pub(super) fn merge_op(&mut self, op: &OpRef<'_>) {
        self.apply_insert(op);
        self.settle();
    }

    /// Roughly how many operations this holds, to merge the smaller side into the larger.
    fn weight(&self) -> u64 {
        self.tree()
            .map_or(0, |t| t.total)
            .saturating_add(self.pending.chars())
    }

    /// Every insert held, integrated or pending, in no particular order.
    fn ops(&self) -> Vec<OpRef<'_>> {
        let mut ops = Vec::new();
        if let Some(doc) = self.doc.as_deref() {
            let nodes = &doc.nodes;
            for lf in doc.tree.leaves_in_order() {
                let mut b = 0;
                for r in lf.runs() {
                    let text = &lf.text[b..b + r.bytes as usize];
                    b += r.bytes as usize;
                    let origin = (r.origin_agent != NIL)
                        .then(|| (nodes[r.origin_agent as usize], r.origin_seq));
                    let (seq, lamport, len) = (r.seq, r.lamport, u64::from(r.len));
                    ops.push(OpRef {
                        node: nodes[r.agent as usize],
                        seq,
                        lamport,
                        origin,
                        len,
                        text,
                    });
                }
            }
        }
        for (&(node, seq), r) in self.pending.iter() {
            let (lamport, origin, len, text) = (r.lamport, Some(r.origin), r.len, r.text.as_str());
            ops.push(OpRef {
                node,
                seq,
                lamport,
                origin,
                len,
                text,
            });
        }
        ops
    }

    /// If `(node, seq)` is integrated: its agent and the end of the integrated range holding it.
    fn integrated(&self, node: NodeId, seq: u64) -> Option<(u32, u64)> {
        let doc = self.doc.as_deref()?;
        let a = doc.agent_of(node)?;
        doc.tree.index.lookup(a, seq).map(|(_, end)| (a, end))
    }

    /// Where the gap of unknown ids of `node` starting at `seq` ends (at most `end`).
    fn unknown_until(&self, node: NodeId, seq: u64, end: u64) -> u64 {
        let mut e = end;
        if let Some(doc) = self.doc.as_deref()
            && let Some(a) = doc.agent_of(node)
            && let Some(next) = doc.tree.index.next_start(a, seq)
        {
            e = min(e, next);
        }
        if let Some(next) = self.pending.next_start(node, seq) {
            e = min(e, next);
        }
        e
    }

    /// Marks integrated ids `[s, e)` of agent `a` deleted.
    fn delete_integrated(&mut self, a: u32, s: u64, e: u64) {
        if let Some(doc) = self.doc.as_deref_mut() {
            doc.tree.delete_ids(a, s, e);
        }
    }

    /// Adds an insert run that may overlap ids already held.
    fn apply_insert(&mut self, op: &OpRef<'_>) {
        let end = op.seq + op.len;
        let mut s = op.seq;
        let mut text = op.text;
        while s < end {
            if let Some((a, known_end)) = self.integrated(op.node, s) {
                let e = min(known_end, end);
                if op.deleted() {
                    self.delete_integrated(a, s, e);
                }
                text = split_chars(text, e - s).1;
                s = e;
                continue;
            }
            if let Some((id, pending_end)) = self.pending.find(op.node, s) {
                let e = min(pending_end, end);
                if op.deleted() {
                    self.pending.mark_deleted(id, s, e);
                }
                text = split_chars(text, e - s).1;
                s = e;
                continue;
            }
            let e = self.unknown_until(op.node, s, end);
            let (piece, rest) = split_chars(text, e - s);
            let origin = if s == op.seq {
                op.origin
            } else {
                Some((op.node, s - 1))
            };
            let lamport = op.lamport + (s - op.seq);
            self.insert_new(&OpRef {
                node: op.node,
                seq: s,
                lamport,
                origin,
                len: e - s,
                text: piece,
            });
            text = rest;
            s = e;
        }
    }

    /// Adds an insert run none of whose ids is held: applies pending deletes of its ids, then
    /// integrates it or keeps it pending.
    pub(super) fn insert_new(&mut self, op: &OpRef<'_>) {
        self.max_lamport = self.max_lamport.max(op.lamport + op.len - 1);
        let end = op.seq + op.len;
        let cuts = if self.deletes.is_empty() {
            Vec::new()
        } else {
            self.deletes.take(op.node, op.seq, end)
        };
        if cuts.is_empty() {
            self.insert_one(op);
            return;
        }
        // Split into segments that are deleted (already-deleted ids) or as the op says.
        let mut s = op.seq;
        let mut text = op.text;
        for (cs, ce) in cuts.into_iter().chain(std::iter::once((end, end))) {
            for (seg_end, deleted) in [(cs, op.deleted()), (ce, true)] {
                if s >= seg_end {
                    continue;
                }
                let (piece, rest) = split_chars(text, seg_end - s);
                let origin = if s == op.seq {
                    op.origin
                } else {
                    Some((op.node, s - 1))
                };
                let lamport = op.lamport + (s - op.seq);
                let text_of_seg = if deleted { "" } else { piece };
                let seg = OpRef {
                    node: op.node,
                    seq: s,
                    lamport,
                    origin,
                    len: seg_end - s,
                    text: text_of_seg,
                };
                self.insert_one(&seg);
                text = rest;
                s = seg_end;
            }
        }
    }

    /// Integrates `op` (whose ids are unknown and not pending-deleted) or keeps it pending.
    fn insert_one(&mut self, op: &OpRef<'_>) {
        if self.try_integrate(op) {
            return;
        }
        // Not placeable, so it has an origin (one at the document start always is).
        if let Some(origin) = op.origin {
            let run = PendingRun {
                lamport: op.lamport,
                origin,
                len: op.len,
                text: op.text.into(),
            };
            self.pending.insert((op.node, op.seq), run);
        }
    }

    /// Places `op` in the tree if its origin is integrated and has a smaller Lamport number.
    fn try_integrate(&mut self, op: &OpRef<'_>) -> bool {
        let origin = match op.origin {
            None => None,
            Some((origin_node, origin_seq)) => {
                let Some(doc) = self.doc.as_deref() else {
                    return false;
                };
                let Some(oa) = doc.agent_of(origin_node) else {
                    return false;
                };
                let Some(p) = doc.tree.find_id(oa, origin_seq) else {
                    return false;
                };
                if doc.tree.run(p).lamport + u64::from(p.off) >= op.lamport {
                    // Not from a correct node: see the module docs. Never placed.
                    return false;
                }
                Some((oa, origin_seq))
            }
        };
        let wake = !self.pending.is_empty();
        let doc = self.doc_mut();
        let agent = doc.intern(op.node);
        let end = op.seq + op.len;
        let next = &mut doc.next_seq[agent as usize];
        *next = (*next).max(end);
        let (mut origin_agent, mut origin_seq) = origin.unwrap_or((NIL, 0));
        let mut seq = op.seq;
        let mut lamport = op.lamport;
        let mut rest = op.text;
        while seq < end {
            let (k, b) = if op.deleted() {
                (min(end - seq, u64::from(RUN_MAX)) as u32, 0)
            } else {
                let b = chunk_bytes(rest);
                let k = if b == rest.len() {
                    end - seq
                } else {
                    rest[..b].chars().count() as u64
                };
                (k as u32, b)
            };
            let run = Run {
                seq,
                lamport,
                origin_seq,
                origin_agent,
                agent,
                len: k,
                bytes: b as u32,
            };
            doc.tree.integrate(run, &rest[..b], &doc.nodes);
            origin_agent = agent;
            origin_seq = seq + u64::from(k) - 1;
            seq += u64::from(k);
            lamport += u64::from(k);
            rest = &rest[b..];
        }
        if wake {
            // Pending inserts may wait on these ids; `settle` looks them up.
            doc.woken.push((op.node, op.seq, end));
        }
        true
    }

    /// Applies the deletion of ids `[start, end)` of `node`: integrated characters become
    /// tombstones, pending ones are marked, unknown ones are remembered.
    pub(super) fn apply_delete(&mut self, node: NodeId, start: u64, end: u64) {
        let mut s = start;
        while s < end {
            if let Some((a, known_end)) = self.integrated(node, s) {
                let e = min(known_end, end);
                self.delete_integrated(a, s, e);
                s = e;
                continue;
            }
            if let Some((id, pending_end)) = self.pending.find(node, s) {
                let e = min(pending_end, end);
                self.pending.mark_deleted(id, s, e);
                s = e;
                continue;
            }
            let e = self.unknown_until(node, s, end);
            self.deletes.add(node, s, e);
            s = e;
        }
    }

    /// After a merge: integrates the pending inserts whose origin has arrived, following
    /// chains (a placed run may unblock others), lowest Lamport number first so each RGA scan
    /// finds (almost) nothing to skip. Only runs waiting on newly integrated ids are looked at.
    pub(super) fn settle(&mut self) {
        let mut ready: BinaryHeap<Reverse<(u64, Id)>> = BinaryHeap::new();
        loop {
            while let Some((node, s, e)) = self.doc.as_deref_mut().and_then(|d| d.woken.pop()) {
                for id in self.pending.waiting_on(node, s, e) {
                    if let Some(run) = self.pending.get(id) {
                        ready.push(Reverse((run.lamport, id)));
                    }
                }
            }
            let Some(Reverse((_, id))) = ready.pop() else {
                break;
            };
            let Some(run) = self.pending.remove(id) else {
                continue;
            };
            let (lamport, origin, len, text) =
                (run.lamport, Some(run.origin), run.len, run.text.as_str());
            if !self.try_integrate(&OpRef {
                node: id.0,
                seq: id.1,
                lamport,
                origin,
                len,
                text,
            }) {
                // Its origin is placed, so its Lamport number is invalid: pending for good.
                self.pending.insert(id, run);
            }
        }
    }
}
