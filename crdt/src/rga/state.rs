//! The full state of a text: integrated characters, pending inserts, pending deletes.
//!
//! [`Rga`] wraps it; the algorithms (local edits here, merging in `merge`, the canonical view
//! in `canonical`, the encoding in `wire`) work on this type.

use std::collections::BTreeMap;

use super::doc::Doc;
use super::merge::OpRef;
use super::pending::{Deletes, Pending, PendingRun};
use super::tree::Tree;
use super::{CLOCK_MAX, Rga, RgaStats};
use crate::error::Error;
use crate::node_id::NodeId;

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct State {
    /// The integrated characters; `None` while there are none.
    pub doc: Option<Box<Doc>>,
    pub pending: Pending,
    pub deletes: Deletes,
    /// Highest Lamport number of any insert held (integrated or pending).
    pub max_lamport: u64,
}

impl State {
    /// The tree of integrated characters, if any.
    pub(crate) fn tree(&self) -> Option<&Tree> {
        self.doc.as_deref().map(|d| &d.tree)
    }

    /// The integrated part, created on first use.
    pub(crate) fn doc_mut(&mut self) -> &mut Doc {
        self.doc.get_or_insert_with(Box::default)
    }

    pub(crate) fn len(&self) -> u64 {
        self.tree().map_or(0, |t| t.visible)
    }

    /// Whether this holds no operation at all (the bottom of the lattice).
    pub(crate) fn is_bottom(&self) -> bool {
        self.tree().is_none_or(Tree::is_empty) && self.pending.is_empty() && self.deletes.is_empty()
    }

    /// See [`Rga::insert`], which has checked that `index` is within the text and `text` is
    /// not empty (before turning a small form into this state).
    pub(crate) fn insert(
        &mut self,
        node: NodeId,
        floor: u64,
        index: u64,
        text: &str,
    ) -> Result<Rga, Error> {
        let n = if text.is_ascii() {
            text.len() as u64
        } else {
            text.chars().count() as u64
        };
        let seq = self.next_seq_for(node, floor);
        let lamport = self.max_lamport + 1;
        if seq.checked_add(n).is_none_or(|e| e > CLOCK_MAX) || lamport + n > CLOCK_MAX {
            return Err(Error::Overflow);
        }
        let origin = self
            .doc_mut()
            .insert_local(node, index, seq, lamport, text, n);
        self.max_lamport = lamport + n - 1;
        Ok(match origin {
            Some(origin) => Rga::one_insert(
                node,
                seq,
                PendingRun {
                    lamport,
                    origin,
                    len: n,
                    text: text.into(),
                },
            ),
            // At the document start the run is placeable on its own.
            None => {
                let mut delta = State::default();
                delta.insert_new(&OpRef {
                    node,
                    seq,
                    lamport,
                    origin,
                    len: n,
                    text,
                });
                Rga::from_state(delta)
            }
        })
    }

    /// See [`Rga::delete`].
    pub(crate) fn delete(&mut self, index: u64, count: u64) -> Result<Rga, Error> {
        let len = self.len();
        if index > len {
            return Err(Error::IndexOutOfRange { index, len });
        }
        let count = count.min(len - index);
        let Some(doc) = self.doc.as_deref_mut() else {
            return Ok(Rga::new());
        };
        if count == 0 {
            return Ok(Rga::new());
        }
        let mut first = None;
        let mut more = Vec::new();
        doc.delete_local(index, count, |n, s, e| match first {
            None => first = Some((n, s, e)),
            Some(_) => more.push((n, s, e)),
        });
        Ok(match (first, more.is_empty()) {
            // The usual case (a backspace, a selection within one typed run): no allocation.
            (Some((node, s, e)), true) => Rga::from_deletes_one(node, s, e),
            (first, _) => {
                more.extend(first);
                Rga::from_deletes(Deletes::from_ranges(more))
            }
        })
    }

    /// See [`Rga::delete_all`].
    pub(crate) fn delete_all(&mut self) -> Rga {
        let Some(doc) = self.doc.as_deref_mut() else {
            return Rga::new();
        };
        let ranges = doc.tree.delete_all().into_iter();
        let ranges = ranges.map(|(agent, seq, n)| (doc.nodes[agent as usize], seq, seq + n));
        Rga::from_deletes(Deletes::from_ranges(ranges.collect()))
    }

    /// See [`Rga::stats`].
    pub(crate) fn stats(&self) -> RgaStats {
        let mut by_node: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut stats = RgaStats::default();
        if let Some(doc) = self.doc.as_deref() {
            for lf in &doc.tree.leaves {
                for r in lf.runs() {
                    *by_node.entry(doc.nodes[r.agent as usize]).or_default() += u64::from(r.len);
                }
            }
            stats.visible_chars = doc.tree.visible;
            stats.total_chars = doc.tree.total;
            stats.runs = doc.tree.entries();
            stats.heap_bytes = (size_of::<Doc>() + doc.tree.heap_bytes()) as u64;
        }
        for (&(node, _), run) in self.pending.iter() {
            let e = by_node.entry(node).or_default();
            *e = e.saturating_add(run.len);
            stats.heap_bytes += run.text.heap_bytes() as u64;
        }
        stats.pending_inserts = self.pending.chars();
        stats.pending_deletes = self.deletes.ids();
        stats.chars_by_node = by_node.into_iter().collect();
        stats
    }

    /// The sequence number `node`'s next character gets: past every id of `node` held here,
    /// integrated, pending or deleted, so a new id never collides with one already known; at
    /// least `floor` when none is held.
    fn next_seq_for(&self, node: NodeId, floor: u64) -> u64 {
        let mut s = 0;
        if let Some(doc) = self.doc.as_deref()
            && let Some(a) = doc.agent_of(node)
        {
            s = s.max(doc.next_seq[a as usize]);
        }
        if let Some(e) = self.pending.max_end(node) {
            s = s.max(e);
        }
        if let Some(e) = self.deletes.max_end(node) {
            s = s.max(e);
        }
        if s == 0 { floor.max(1) } else { s }
    }
}
