//! The integrated part of a text: the tree of runs plus the table of nodes its runs name.
//!
//! A state holds it behind `Option<Box<_>>`, so a state made only of pending operations (merged
//! deltas) carries none.

use std::collections::BTreeMap;

use super::tree::{NIL, Place, RUN_MAX, RUN_TEXT_MAX, Run, Tree};
use crate::node_id::NodeId;

/// Above this many agents, node ids are looked up in a map instead of a linear scan.
const LINEAR_AGENTS_MAX: usize = 8;

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Doc {
    pub tree: Tree,
    /// Agent index (as stored in runs) to node id.
    pub nodes: Vec<NodeId>,
    /// Node id to agent index, filled once there are more than [`LINEAR_AGENTS_MAX`] agents.
    by_node: BTreeMap<NodeId, u32>,
    /// Per agent, one past the highest integrated sequence number.
    pub next_seq: Vec<u64>,
    /// Id ranges integrated during the current merge while inserts were pending: where
    /// `State::settle` looks for inserts to wake. Empty between operations.
    pub woken: Vec<(NodeId, u64, u64)>,
}

impl Doc {
    pub(crate) fn agent_of(&self, node: NodeId) -> Option<u32> {
        if self.nodes.len() <= LINEAR_AGENTS_MAX {
            self.nodes.iter().position(|&n| n == node).map(|i| i as u32)
        } else {
            self.by_node.get(&node).copied()
        }
    }

    pub(crate) fn intern(&mut self, node: NodeId) -> u32 {
        if let Some(a) = self.agent_of(node) {
            return a;
        }
        let a = self.nodes.len() as u32;
        self.nodes.push(node);
        self.next_seq.push(0);
        if self.nodes.len() > LINEAR_AGENTS_MAX {
            if self.by_node.is_empty() {
                self.by_node = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| (n, i as u32))
                    .collect();
            } else {
                self.by_node.insert(node, a);
            }
        }
        a
    }

    /// Places a local insert of `n` characters so the first lands at visible position
    /// `index` (`<= len`), and returns its origin. The new text goes right after the visible
    /// character before `index`: its Lamport number is the highest yet, so RGA puts it before
    /// that character's other children (and the tombstones after it) and no scan is needed.
    pub(crate) fn insert_local(
        &mut self,
        node: NodeId,
        index: u64,
        seq: u64,
        lamport: u64,
        text: &str,
        n: u64,
    ) -> Option<(NodeId, u64)> {
        let agent = self.intern(node);
        let mut origin = None;
        let at = if index == 0 {
            self.tree.start()
        } else {
            let p = self.tree.find_visible(index - 1);
            let r = self.tree.run(p);
            origin = Some((r.agent, r.seq + u64::from(p.off)));
            Place {
                off: p.off + 1,
                ..p
            }
        };
        let fits = n <= u64::from(RUN_MAX) && text.len() <= RUN_TEXT_MAX as usize;
        if !(fits
            && self
                .tree
                .try_extend(at, agent, seq, lamport, text, n as u32))
        {
            self.place_local(at, agent, seq, lamport, origin, text);
        }
        self.next_seq[agent as usize] = seq + n;
        origin.map(|(a, s)| (self.nodes[a as usize], s))
    }

    /// Places a local insert at `at` (right after its origin), as several runs if it is longer
    /// than one run entry may be.
    fn place_local(
        &mut self,
        mut at: Place,
        agent: u32,
        mut seq: u64,
        mut lamport: u64,
        mut origin: Option<(u32, u64)>,
        text: &str,
    ) {
        let mut rest = text;
        while !rest.is_empty() {
            let b = chunk_bytes(rest);
            let piece = &rest[..b];
            let k = piece.chars().count() as u32;
            let (origin_agent, origin_seq) = origin.unwrap_or((NIL, 0));
            let run = Run {
                seq,
                lamport,
                origin_seq,
                origin_agent,
                agent,
                len: k,
                bytes: b as u32,
            };
            self.tree.insert_at(at, run, piece);
            origin = Some((agent, seq + u64::from(k) - 1));
            seq += u64::from(k);
            lamport += u64::from(k);
            rest = &rest[b..];
            if !rest.is_empty() {
                match self.tree.find_id(agent, seq - 1) {
                    Some(p) => {
                        at = Place {
                            off: p.off + 1,
                            ..p
                        }
                    }
                    None => {
                        debug_assert!(false, "a run just placed is not indexed");
                        return;
                    }
                }
            }
        }
    }

    /// Deletes up to `count` visible characters from `index` (in range), reporting each
    /// deleted id range as `(node, first seq, end seq)`.
    pub(crate) fn delete_local(
        &mut self,
        index: u64,
        count: u64,
        mut out: impl FnMut(NodeId, u64, u64),
    ) {
        let mut left = count;
        while left > 0 {
            let at = self.tree.find_visible(index);
            let (agent, seq, n) = self.tree.delete_at(at, left);
            out(self.nodes[agent as usize], seq, seq + u64::from(n));
            left -= u64::from(n);
        }
    }
}

/// Bytes of `text` that fit in one run entry ([`RUN_TEXT_MAX`]), cut at a character boundary.
pub(crate) fn chunk_bytes(text: &str) -> usize {
    let mut b = text.len().min(RUN_TEXT_MAX as usize);
    while !text.is_char_boundary(b) {
        b -= 1;
    }
    b
}
