//! The canonical view of a text: what equality and the encoding see.
//!
//! Two replicas holding the same operations must compare equal and encode to the same bytes,
//! whatever their history. In memory they may differ: run entries are split at leaf boundaries,
//! at [`RUN_MAX`](super::tree::RUN_MAX), or where a split was never joined back, and node ids are
//! interned in arrival order. The canonical view walks the document and joins every pair of
//! neighbouring entries that continue each other into maximal runs, naming nodes by id.

use std::borrow::Cow;

use super::State;
use super::pending::Id;
use super::tree::{NIL, Run};
use crate::node_id::NodeId;

/// One maximal run: consecutive characters of one node with consecutive sequence and Lamport
/// numbers, each the origin of the next, all deleted (empty `text`) or all visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CanonRun<'a> {
    pub node: NodeId,
    pub seq: u64,
    pub lamport: u64,
    pub origin: Option<Id>,
    pub len: u64,
    pub text: Cow<'a, str>,
}

/// Whether `b` continues `a` (as [`Run::continues_with`] without the size cap of one entry).
fn follows(a: &Run, b: &Run) -> bool {
    b.agent == a.agent
        && b.seq == a.end()
        && b.lamport == a.lamport + u64::from(a.len)
        && b.origin_agent == a.agent
        && b.origin_seq == a.end() - 1
        && b.live() == a.live()
}

/// The integrated characters as maximal runs in document order.
pub(crate) fn runs(rga: &State) -> impl Iterator<Item = CanonRun<'_>> + '_ {
    let doc = rga.doc.as_deref();
    let nodes: &[NodeId] = doc.map_or(&[], |d| &d.nodes);
    let mut entries = doc
        .into_iter()
        .flat_map(|d| d.tree.leaves_in_order())
        .flat_map(|lf| {
            let mut b = 0;
            lf.runs().iter().map(move |r| {
                let text = &lf.text[b..b + r.bytes as usize];
                b += r.bytes as usize;
                (*r, text)
            })
        })
        .peekable();
    std::iter::from_fn(move || {
        let (first, text) = entries.next()?;
        let mut run = CanonRun {
            node: nodes[first.agent as usize],
            seq: first.seq,
            lamport: first.lamport,
            origin: (first.origin_agent != NIL)
                .then(|| (nodes[first.origin_agent as usize], first.origin_seq)),
            len: u64::from(first.len),
            text: Cow::Borrowed(text),
        };
        let mut last = first;
        while let Some(&(next, more)) = entries.peek() {
            if !follows(&last, &next) {
                break;
            }
            entries.next();
            run.len += u64::from(next.len);
            if !more.is_empty() {
                run.text.to_mut().push_str(more);
            }
            last = next;
        }
        Some(run)
    })
}

/// The pending inserts in canonical (id) order, runs that continue each other joined.
pub(crate) fn pending(rga: &State) -> impl Iterator<Item = CanonRun<'_>> + '_ {
    let mut runs = rga.pending.iter().peekable();
    std::iter::from_fn(move || {
        let (&first_id, first) = runs.next()?;
        let mut run = CanonRun {
            node: first_id.0,
            seq: first_id.1,
            lamport: first.lamport,
            origin: Some(first.origin),
            len: first.len,
            text: Cow::Borrowed(first.text.as_str()),
        };
        let (mut last_id, mut last) = (first_id, first);
        while let Some(&(&id, next)) = runs.peek() {
            if !last.continues(last_id, id, next) {
                break;
            }
            runs.next();
            run.len += next.len;
            if !next.text.is_empty() {
                run.text.to_mut().push_str(next.text.as_str());
            }
            (last_id, last) = (id, next);
        }
        Some(run)
    })
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        let counts = |r: &State| r.tree().map_or((0, 0), |t| (t.visible, t.total));
        counts(self) == counts(other)
            && self.pending.chars() == other.pending.chars()
            && self.deletes == other.deletes
            && pending(self).eq(pending(other))
            && runs(self).eq(runs(other))
    }
}

impl Eq for State {}
