//! The in-memory document: a B-tree of runs in document order.
//!
//! * **Runs.** A run is a stretch of characters typed one after the other by one node:
//!   consecutive sequence numbers and Lamport numbers, each character's origin the one before,
//!   all deleted or all visible. Text is mostly typed that way, so a run stores one origin and
//!   one length instead of per-character metadata.
//! * **B-tree with counts.** Leaves hold up to [`LEAF_CAP`] runs; inner nodes hold up to
//!   [`NODE_CAP`] children and, per child, the number of *visible* characters below it. Finding
//!   the character at a visible position descends once: O(log n) instead of a document scan.
//! * **Arena.** Leaves and inner nodes live in two `Vec`s and point at each other with `u32`
//!   indices: no allocation per node, clone is a memcpy, and parent links let an edit found by
//!   id (through the [`IdIndex`]) fix the counts above it. Leaves are linked in document order
//!   for scans (RGA integration, encoding, display). Nodes are never freed: runs are never
//!   removed (deleted text stays as a tombstone), so the tree only grows.
//! * **Text in the leaves.** Each leaf keeps the visible text of its runs, concatenated in order,
//!   in one `String`: the leaves double as a rope of the document, deleted characters cost no
//!   text, and typing into a leaf is a short `memmove`.

use super::index::IdIndex;

/// Runs per leaf.
pub(crate) const LEAF_CAP: usize = 32;
/// Children per inner node.
pub(crate) const NODE_CAP: usize = 16;
/// The null arena index (no parent, no next leaf, root origin).
pub(crate) const NIL: u32 = u32::MAX;
/// Most characters, and most bytes of text, one in-memory run holds. Longer inserts are stored
/// as several runs that continue each other (the canonical encoding joins them again), so
/// lengths fit in `u32` and sums never overflow.
pub(crate) const RUN_MAX: u32 = 1 << 30;
/// Most bytes of visible text one run entry holds, and (unless a single run is larger) one
/// leaf: typing into a leaf moves the text after the cursor within it, so a pasted megabyte
/// must not sit in one piece. Split runs continue each other and the encoding joins them.
pub(crate) const RUN_TEXT_MAX: u32 = 512;
/// See [`RUN_TEXT_MAX`].
pub(crate) const LEAF_TEXT_MAX: usize = 2048;

/// One run entry. `origin_agent == NIL` means the run starts at the beginning of the document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Run {
    /// Sequence number of the first character.
    pub seq: u64,
    /// Lamport number of the first character; the k-th has `lamport + k`.
    pub lamport: u64,
    /// Sequence number of the first character's origin (meaningless for the root origin).
    pub origin_seq: u64,
    /// Agent of the first character's origin, or [`NIL`] for the document start.
    pub origin_agent: u32,
    /// Agent (index into the node table) that inserted the run.
    pub agent: u32,
    /// Characters in the run.
    pub len: u32,
    /// Bytes of visible text in the leaf; zero exactly when the run is deleted (every visible
    /// character takes at least one byte).
    pub bytes: u32,
}

impl Run {
    #[inline]
    pub(crate) fn live(&self) -> bool {
        self.bytes != 0
    }

    #[inline]
    pub(crate) fn visible(&self) -> u64 {
        if self.live() { u64::from(self.len) } else { 0 }
    }

    /// One past the last sequence number.
    #[inline]
    pub(crate) fn end(&self) -> u64 {
        self.seq + u64::from(self.len)
    }

    /// Whether `next` continues this run character by character, so both can be one entry.
    #[inline]
    pub(crate) fn continues_with(&self, next: &Run) -> bool {
        next.agent == self.agent
            && next.seq == self.end()
            && next.lamport == self.lamport + u64::from(self.len)
            && next.origin_agent == self.agent
            && next.origin_seq == self.end() - 1
            && next.live() == self.live()
            && self.len + next.len <= RUN_MAX
            && self.bytes + next.bytes <= RUN_TEXT_MAX
    }
}

/// A leaf: runs in document order and their visible text.
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    pub runs: [Run; LEAF_CAP],
    pub len: usize,
    pub text: String,
    pub visible: u64,
    pub parent: u32,
    /// Position among the parent's children, so count updates need no search.
    pub slot: u32,
    pub next: u32,
}

impl Leaf {
    fn new(parent: u32, next: u32) -> Self {
        Leaf {
            runs: [Run::default(); LEAF_CAP],
            len: 0,
            text: String::new(),
            visible: 0,
            parent,
            slot: 0,
            next,
        }
    }

    #[inline]
    pub(crate) fn runs(&self) -> &[Run] {
        &self.runs[..self.len]
    }

    /// Byte offset in `text` where run `idx` starts, summed from the nearer end of the leaf.
    #[inline]
    pub(crate) fn byte_offset(&self, idx: usize) -> usize {
        if idx <= self.len / 2 {
            self.runs[..idx].iter().map(|r| r.bytes as usize).sum()
        } else {
            self.text.len()
                - self.runs[idx..self.len]
                    .iter()
                    .map(|r| r.bytes as usize)
                    .sum::<usize>()
        }
    }

    /// Bytes taken by the first `chars` characters of live run `run` whose text starts at
    /// byte `start`.
    #[inline]
    fn char_bytes(&self, run: &Run, start: usize, chars: u32) -> usize {
        if run.bytes == run.len {
            // All one-byte characters: positions are byte offsets.
            chars as usize
        } else {
            let text = &self.text[start..start + run.bytes as usize];
            text.char_indices()
                .nth(chars as usize)
                .map_or(text.len(), |(b, _)| b)
        }
    }
}

/// An inner node: children and the visible characters below each.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub len: usize,
    pub children: [u32; NODE_CAP],
    pub visible: [u64; NODE_CAP],
    pub parent: u32,
    pub slot: u32,
}

/// A place in the document: before character `off` of run `idx` of `leaf`. `off == len` means
/// after the run; `idx == leaf.len` means the end of the leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub leaf: u32,
    pub idx: usize,
    pub off: u32,
}

/// The document tree plus its id index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tree {
    pub leaves: Vec<Leaf>,
    pub nodes: Vec<Node>,
    /// Root: a leaf when `height == 0`, else an inner node. Meaningless while `leaves` is empty.
    pub root: u32,
    pub height: u32,
    pub first_leaf: u32,
    /// Visible characters in the document.
    pub visible: u64,
    /// Characters including tombstones.
    pub total: u64,
    pub index: IdIndex,
    /// The leaf of the last positional lookup and the visible characters before it. Edits
    /// cluster, so the next lookup usually lands in the same leaf and skips the descent. Only
    /// a count change in another leaf can move the leaf's start; that drops the hint.
    pub(super) hint: Option<(u32, u64)>,
}

impl Tree {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The run at `at`.
    #[inline]
    pub(crate) fn run(&self, at: Place) -> Run {
        self.leaves[at.leaf as usize].runs[at.idx]
    }

    /// The place of the document start.
    pub(crate) fn start(&self) -> Place {
        Place {
            leaf: if self.is_empty() { 0 } else { self.first_leaf },
            idx: 0,
            off: 0,
        }
    }

    /// Leaves in document order.
    pub(crate) fn leaves_in_order(&self) -> impl Iterator<Item = &Leaf> + '_ {
        let mut next = if self.is_empty() {
            NIL
        } else {
            self.first_leaf
        };
        std::iter::from_fn(move || {
            let leaf = self.leaves.get(next as usize)?;
            next = leaf.next;
            Some(leaf)
        })
    }

    /// The leaf holding visible character `pos` and the number of visible characters before
    /// that leaf. Requires `pos < self.visible`.
    pub(crate) fn find_leaf(&self, mut pos: u64) -> (u32, u64) {
        debug_assert!(pos < self.visible);
        let before = pos;
        let mut n = self.root;
        for _ in 0..self.height {
            let node = &self.nodes[n as usize];
            let mut i = 0;
            while i + 1 < node.len && pos >= node.visible[i] {
                pos -= node.visible[i];
                i += 1;
            }
            n = node.children[i];
        }
        (n, before - pos)
    }

    /// The place of visible character `pos` (its run and offset). Requires `pos < self.visible`.
    pub(crate) fn find_visible(&mut self, pos: u64) -> Place {
        let (leaf, before) = match self.hint {
            Some((leaf, start))
                if pos >= start && pos - start < self.leaves[leaf as usize].visible =>
            {
                (leaf, start)
            }
            _ => {
                let found = self.find_leaf(pos);
                self.hint = Some(found);
                found
            }
        };
        let mut rel = pos - before;
        let lf = &self.leaves[leaf as usize];
        if rel < lf.visible / 2 {
            let mut idx = 0;
            while idx + 1 < lf.len {
                let v = lf.runs[idx].visible();
                if rel < v {
                    break;
                }
                rel -= v;
                idx += 1;
            }
            Place {
                leaf,
                idx,
                off: rel as u32,
            }
        } else {
            // Nearer the end: walk back from it.
            let mut after = lf.visible;
            let mut idx = lf.len;
            while idx > 0 {
                idx -= 1;
                after -= lf.runs[idx].visible();
                if rel >= after && lf.runs[idx].live() {
                    break;
                }
            }
            Place {
                leaf,
                idx,
                off: (rel - after) as u32,
            }
        }
    }

    /// The place of integrated character `(agent, seq)`.
    pub(crate) fn find_id(&self, agent: u32, seq: u64) -> Option<Place> {
        let (leaf, _) = self.index.lookup(agent, seq)?;
        let lf = &self.leaves[leaf as usize];
        let idx = lf
            .runs()
            .iter()
            .position(|r| r.agent == agent && seq >= r.seq && seq < r.end())?;
        Some(Place {
            leaf,
            idx,
            off: (seq - lf.runs[idx].seq) as u32,
        })
    }

    fn ensure_leaf(&mut self) {
        if self.leaves.is_empty() {
            self.leaves.push(Leaf::new(NIL, NIL));
            self.root = 0;
            self.height = 0;
            self.first_leaf = 0;
        }
    }

    /// Inserts `run` (with `text`, empty for a tombstone) at `at`.
    pub(crate) fn insert_at(&mut self, mut at: Place, run: Run, text: &str) {
        debug_assert_eq!(run.bytes as usize, text.len());
        self.ensure_leaf();
        let lf = &self.leaves[at.leaf as usize];
        if at.idx < lf.len && at.off == lf.runs[at.idx].len {
            at.idx += 1;
            at.off = 0;
        }
        let need = if at.off > 0 { 2 } else { 1 };
        if lf.len + need > LEAF_CAP || (lf.len >= 2 && lf.text.len() + text.len() > LEAF_TEXT_MAX) {
            at = self.split_leaf_around(at);
        }
        if at.off > 0 {
            self.split_run(at.leaf, at.idx, at.off);
            at.idx += 1;
        }
        let leaf = at.leaf;
        let lf = &mut self.leaves[leaf as usize];
        let b = lf.byte_offset(at.idx);
        lf.text.insert_str(b, text);
        lf.runs.copy_within(at.idx..lf.len, at.idx + 1);
        lf.runs[at.idx] = run;
        lf.len += 1;
        if at.idx > 0 && lf.runs[at.idx - 1].continues_with(&run) {
            lf.runs[at.idx - 1].len += run.len;
            lf.runs[at.idx - 1].bytes += run.bytes;
            lf.runs.copy_within(at.idx + 1..lf.len, at.idx);
            lf.len -= 1;
        }
        self.total += u64::from(run.len);
        self.index.assign(run.agent, run.seq, run.end(), leaf);
        self.add_visible(leaf, run.visible() as i64);
    }

    /// Local typing fast path: if `at` is just after live run `at.idx` and the new characters
    /// continue it, extends the run in place. Returns whether it did.
    #[inline]
    pub(crate) fn try_extend(
        &mut self,
        at: Place,
        agent: u32,
        seq: u64,
        lamport: u64,
        text: &str,
        n: u32,
    ) -> bool {
        let Some(lf) = self.leaves.get_mut(at.leaf as usize) else {
            return false;
        };
        if at.idx >= lf.len {
            return false;
        }
        let r = lf.runs[at.idx];
        if at.off != r.len
            || !r.live()
            || r.agent != agent
            || r.end() != seq
            || r.lamport + u64::from(r.len) != lamport
            || r.len + n > RUN_MAX
            || r.bytes as usize + text.len() > RUN_TEXT_MAX as usize
            || lf.text.len() + text.len() > LEAF_TEXT_MAX
        {
            return false;
        }
        let b = lf.byte_offset(at.idx) + r.bytes as usize;
        lf.text.insert_str(b, text);
        lf.runs[at.idx].len += n;
        lf.runs[at.idx].bytes += text.len() as u32;
        self.total += u64::from(n);
        self.index.assign(agent, seq, seq + u64::from(n), at.leaf);
        self.add_visible(at.leaf, i64::from(n));
        true
    }

    /// Adds `delta` visible characters to `leaf` and every count above it.
    pub(crate) fn add_visible(&mut self, leaf: u32, delta: i64) {
        if delta == 0 {
            return;
        }
        if self.hint.is_some_and(|(h, _)| h != leaf) {
            self.hint = None;
        }
        let lf = &mut self.leaves[leaf as usize];
        lf.visible = lf.visible.wrapping_add_signed(delta);
        let mut slot = lf.slot as usize;
        let mut p = lf.parent;
        while p != NIL {
            let node = &mut self.nodes[p as usize];
            node.visible[slot] = node.visible[slot].wrapping_add_signed(delta);
            slot = node.slot as usize;
            p = node.parent;
        }
        self.visible = self.visible.wrapping_add_signed(delta);
    }

    /// Splits run `idx` of `leaf` before character `off` (0 < off < len). The caller made room.
    pub(super) fn split_run(&mut self, leaf: u32, idx: usize, off: u32) {
        let lf = &mut self.leaves[leaf as usize];
        let r = lf.runs[idx];
        debug_assert!(off > 0 && off < r.len && lf.len < LEAF_CAP);
        let left_bytes = if r.live() {
            lf.char_bytes(&r, lf.byte_offset(idx), off) as u32
        } else {
            0
        };
        let o = u64::from(off);
        let left = Run {
            len: off,
            bytes: left_bytes,
            ..r
        };
        let right = Run {
            seq: r.seq + o,
            lamport: r.lamport + o,
            origin_agent: r.agent,
            origin_seq: r.seq + o - 1,
            agent: r.agent,
            len: r.len - off,
            bytes: r.bytes - left_bytes,
        };
        lf.runs.copy_within(idx + 1..lf.len, idx + 2);
        lf.runs[idx] = left;
        lf.runs[idx + 1] = right;
        lf.len += 1;
    }

    /// Splits the full leaf of `at` in two and returns where `at` now is.
    pub(super) fn split_leaf_around(&mut self, at: Place) -> Place {
        let mid = self.leaves[at.leaf as usize].len / 2;
        let new = self.split_leaf(at.leaf, mid);
        if at.idx >= mid {
            Place {
                leaf: new,
                idx: at.idx - mid,
                off: at.off,
            }
        } else {
            at
        }
    }

    /// Moves runs `mid..` of `leaf` to a new leaf after it; returns the new leaf.
    fn split_leaf(&mut self, leaf: u32, mid: usize) -> u32 {
        let new_id = self.leaves.len() as u32;
        let old = &mut self.leaves[leaf as usize];
        let b = old.byte_offset(mid);
        let mut nl = Leaf::new(old.parent, old.next);
        let moved = old.len - mid;
        nl.runs[..moved].copy_from_slice(&old.runs[mid..old.len]);
        nl.len = moved;
        nl.text = old.text.split_off(b);
        old.len = mid;
        let moved_vis: u64 = nl.runs().iter().map(Run::visible).sum();
        nl.visible = moved_vis;
        old.visible -= moved_vis;
        old.next = new_id;
        let parent = old.parent;
        let mut moved_ids = [(0u32, 0u64, 0u64); LEAF_CAP];
        for (slot, r) in moved_ids.iter_mut().zip(nl.runs()) {
            *slot = (r.agent, r.seq, r.end());
        }
        self.index.repoint(&mut moved_ids[..moved], new_id);
        self.leaves.push(nl);
        self.insert_child(parent, leaf, new_id, moved_vis, true);
        new_id
    }

    /// Inserts `new` (holding `new_vis` visible characters taken from `left`) right after
    /// `left` in `parent`, splitting upwards as needed.
    fn insert_child(
        &mut self,
        parent: u32,
        left: u32,
        new: u32,
        new_vis: u64,
        leaf_children: bool,
    ) {
        if parent == NIL {
            // `left` was the root: grow a level.
            let root = self.nodes.len() as u32;
            let mut node = Node {
                len: 2,
                children: [NIL; NODE_CAP],
                visible: [0; NODE_CAP],
                parent: NIL,
                slot: 0,
            };
            node.children[0] = left;
            node.children[1] = new;
            node.visible[0] = self.visible - new_vis;
            node.visible[1] = new_vis;
            self.nodes.push(node);
            self.set_parent(left, root, 0, leaf_children);
            self.set_parent(new, root, 1, leaf_children);
            self.root = root;
            self.height += 1;
            return;
        }
        let node = &mut self.nodes[parent as usize];
        let Some(slot) = node.children[..node.len].iter().position(|&c| c == left) else {
            debug_assert!(false, "child missing from its parent");
            return;
        };
        node.visible[slot] -= new_vis;
        if node.len < NODE_CAP {
            node.children.copy_within(slot + 1..node.len, slot + 2);
            node.visible.copy_within(slot + 1..node.len, slot + 2);
            node.children[slot + 1] = new;
            node.visible[slot + 1] = new_vis;
            node.len += 1;
            let (children, len) = (node.children, node.len);
            for (i, &c) in children.iter().enumerate().take(len).skip(slot + 1) {
                self.set_parent(c, parent, i, leaf_children);
            }
            return;
        }
        // Full: lay out the NODE_CAP + 1 children, keep the first half, move the rest.
        let mut children = [NIL; NODE_CAP + 1];
        let mut visible = [0u64; NODE_CAP + 1];
        children[..=slot].copy_from_slice(&node.children[..=slot]);
        visible[..=slot].copy_from_slice(&node.visible[..=slot]);
        children[slot + 1] = new;
        visible[slot + 1] = new_vis;
        children[slot + 2..].copy_from_slice(&node.children[slot + 1..]);
        visible[slot + 2..].copy_from_slice(&node.visible[slot + 1..]);
        let keep = NODE_CAP.div_ceil(2);
        let moved = NODE_CAP + 1 - keep;
        node.children[..keep].copy_from_slice(&children[..keep]);
        node.visible[..keep].copy_from_slice(&visible[..keep]);
        node.len = keep;
        let grand = node.parent;
        let sibling_id = self.nodes.len() as u32;
        let mut sibling = Node {
            len: moved,
            children: [NIL; NODE_CAP],
            visible: [0; NODE_CAP],
            parent: grand,
            slot: 0,
        };
        sibling.children[..moved].copy_from_slice(&children[keep..]);
        sibling.visible[..moved].copy_from_slice(&visible[keep..]);
        let sibling_vis: u64 = sibling.visible[..moved].iter().sum();
        self.nodes.push(sibling);
        for (i, &c) in children[..keep].iter().enumerate() {
            self.set_parent(c, parent, i, leaf_children);
        }
        for (i, &c) in children[keep..].iter().enumerate() {
            self.set_parent(c, sibling_id, i, leaf_children);
        }
        self.insert_child(grand, parent, sibling_id, sibling_vis, false);
    }

    fn set_parent(&mut self, child: u32, parent: u32, slot: usize, leaf: bool) {
        if leaf {
            let lf = &mut self.leaves[child as usize];
            lf.parent = parent;
            lf.slot = slot as u32;
        } else {
            let node = &mut self.nodes[child as usize];
            node.parent = parent;
            node.slot = slot as u32;
        }
    }

    /// Number of run entries (not canonical runs: the encoding joins entries that continue
    /// each other across leaves).
    pub(crate) fn entries(&self) -> u64 {
        self.leaves.iter().map(|l| l.len as u64).sum()
    }

    /// Approximate heap bytes used by the tree (arena capacity and leaf text).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.leaves.capacity() * size_of::<Leaf>()
            + self.nodes.capacity() * size_of::<Node>()
            + self.leaves.iter().map(|l| l.text.capacity()).sum::<usize>()
    }
}
