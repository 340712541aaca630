//! The encoding of a text, and safe decoding of untrusted bytes.
//!
//! ```text
//! Rga     = [nodes, runs, pending, deletes]
//! nodes   = [node id, ...]                       sorted, distinct: every node named below
//! runs    = [Run, ...]                           integrated, maximal, in document order
//! pending = [Run, ...]                           waiting for their origin, by id
//! deletes = [[node index, first seq, count], ...] deleted ids not inserted here, by id
//! Run     = [node index, seq delta, lamport delta, origin node, origin seq delta, len, text]
//! ```
//! Numbers are small in the common case, which MessagePack stores in one byte: `seq delta` and
//! `lamport delta` are relative to the end of the previous run of the same list; `origin node`
//! is `-1` for the document start, `-2` for "the last character of the previous run" (the
//! usual case in document order; never used in `pending`) or a node index, and then
//! `origin seq delta` is the origin's seq minus the run's. `text` is empty for a deleted run.
//!
//! Decoding checks every field (indices, ranges, [`CLOCK_MAX`], [`STATE_CHARS_MAX`], text
//! length against `len`, no id inserted twice) and then *rebuilds* the state by merging the
//! operations in Lamport order, so the document order is recomputed, never trusted: a
//! well-formed but non-canonical input still yields a correct, canonical state, and an insert
//! whose origin is missing or invalid simply stays pending. Nothing is allocated from a length
//! read from the input beyond what serde's cautious size hints allow.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::canonical::{self, CanonRun};
use super::merge::OpRef;
use super::pending::Id;
use super::{CLOCK_MAX, Rga, STATE_CHARS_MAX, State};
use crate::node_id::NodeId;

/// Origin marker: the document start.
const ORIGIN_START: i64 = -1;
/// Origin marker: the last character of the previous run in the list.
const ORIGIN_PREVIOUS: i64 = -2;

#[derive(Serialize, Deserialize)]
struct WireRun<T>(u32, i64, i64, i64, i64, u64, T);

#[derive(Deserialize)]
struct WireRga(
    Vec<u64>,
    Vec<WireRun<String>>,
    Vec<WireRun<String>>,
    Vec<(u32, u64, u64)>,
);

fn encode_list<'a>(
    runs: &'a [CanonRun<'a>],
    nodes: &[NodeId],
    chain: bool,
) -> Vec<WireRun<&'a str>> {
    let ix = |n: NodeId| nodes.binary_search(&n).unwrap_or_default() as u32;
    let mut prev_seq_end = 0u64;
    let mut prev_lamport_end = 0u64;
    let mut prev_last: Option<Id> = None;
    runs.iter()
        .map(|r| {
            let (origin_node, origin_delta) = match r.origin {
                None => (ORIGIN_START, 0),
                Some(o) if chain && Some(o) == prev_last => (ORIGIN_PREVIOUS, 0),
                Some((n, s)) => (i64::from(ix(n)), s as i64 - r.seq as i64),
            };
            let w = WireRun(
                ix(r.node),
                r.seq as i64 - prev_seq_end as i64,
                r.lamport as i64 - prev_lamport_end as i64,
                origin_node,
                origin_delta,
                r.len,
                r.text.as_ref(),
            );
            prev_seq_end = r.seq + r.len;
            prev_lamport_end = r.lamport + r.len;
            prev_last = Some((r.node, r.seq + r.len - 1));
            w
        })
        .collect()
}

impl Serialize for Rga {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_state().serialize(serializer)
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let runs: Vec<CanonRun<'_>> = canonical::runs(self).collect();
        let pending: Vec<CanonRun<'_>> = canonical::pending(self).collect();
        let mut nodes: Vec<NodeId> = runs
            .iter()
            .chain(&pending)
            .flat_map(|r| [Some(r.node), r.origin.map(|o| o.0)])
            .flatten()
            .chain(self.deletes.iter().map(|d| d.0))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let ix = |n: NodeId| nodes.binary_search(&n).unwrap_or_default() as u32;
        let deletes: Vec<(u32, u64, u64)> = self
            .deletes
            .iter()
            .map(|(n, s, e)| (ix(n), s, e - s))
            .collect();
        let node_ids: Vec<u64> = nodes.iter().map(|n| n.0).collect();
        (
            node_ids,
            encode_list(&runs, &nodes, true),
            encode_list(&pending, &nodes, false),
            deletes,
        )
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Rga {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireRga::deserialize(deserializer)?;
        State::from_wire(wire)
            .map(Rga::from_state)
            .map_err(D::Error::custom)
    }
}

/// `base + delta` if it lies in `0..=CLOCK_MAX`.
fn offset(base: u64, delta: i64, what: &str) -> Result<u64, String> {
    let v = i128::from(base) + i128::from(delta);
    if (0..=i128::from(CLOCK_MAX)).contains(&v) {
        Ok(v as u64)
    } else {
        Err(format!("{what} out of range"))
    }
}

/// An insert decoded from the wire, owning its text.
struct Decoded {
    node: NodeId,
    seq: u64,
    lamport: u64,
    origin: Option<Id>,
    len: u64,
    text: String,
}

fn decode_list(
    list: Vec<WireRun<String>>,
    nodes: &[NodeId],
    chain: bool,
    total: &mut u64,
    out: &mut Vec<Decoded>,
) -> Result<(), String> {
    let mut prev_seq_end = 0u64;
    let mut prev_lamport_end = 0u64;
    let mut prev_last: Option<Id> = None;
    for WireRun(node_ix, seq_delta, lamport_delta, origin_node, origin_delta, len, text) in list {
        let node = *nodes
            .get(node_ix as usize)
            .ok_or("run names an unknown node index")?;
        if len == 0 {
            return Err("empty run".into());
        }
        let seq = offset(prev_seq_end, seq_delta, "seq")?;
        let lamport = offset(prev_lamport_end, lamport_delta, "lamport")?;
        let seq_end = seq
            .checked_add(len)
            .filter(|&e| e <= CLOCK_MAX)
            .ok_or("run seq range out of range")?;
        let lamport_end = lamport
            .checked_add(len)
            .filter(|&e| e <= CLOCK_MAX)
            .ok_or("run lamport range out of range")?;
        let origin = match origin_node {
            ORIGIN_START if origin_delta == 0 => None,
            ORIGIN_PREVIOUS if chain && origin_delta == 0 => {
                Some(prev_last.ok_or("origin refers to a missing previous run")?)
            }
            n if n >= 0 => {
                let on = *nodes
                    .get(n as usize)
                    .ok_or("origin names an unknown node index")?;
                Some((on, offset(seq, origin_delta, "origin seq")?))
            }
            _ => return Err("invalid origin".into()),
        };
        if !text.is_empty() && text.chars().count() as u64 != len {
            return Err("run text length does not match its length".into());
        }
        *total = total.saturating_add(len);
        if *total > STATE_CHARS_MAX {
            return Err(format!("more than {STATE_CHARS_MAX} characters"));
        }
        prev_seq_end = seq_end;
        prev_lamport_end = lamport_end;
        prev_last = Some((node, seq_end - 1));
        out.push(Decoded {
            node,
            seq,
            lamport,
            origin,
            len,
            text,
        });
    }
    Ok(())
}

impl State {
    fn from_wire(WireRga(node_ids, runs, pending, deletes): WireRga) -> Result<State, String> {
        if node_ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err("node ids are not sorted and distinct".into());
        }
        let nodes: Vec<NodeId> = node_ids.into_iter().map(NodeId).collect();
        let mut ops = Vec::with_capacity(runs.len() + pending.len());
        let mut total = 0u64;
        decode_list(runs, &nodes, true, &mut total, &mut ops)?;
        decode_list(pending, &nodes, false, &mut total, &mut ops)?;

        // No id may be inserted twice.
        let mut ids: Vec<(NodeId, u64, u64)> =
            ops.iter().map(|o| (o.node, o.seq, o.seq + o.len)).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2) {
            return Err("an id is inserted twice".into());
        }
        drop(ids);

        let mut dels = Vec::with_capacity(deletes.len());
        for (node_ix, start, count) in deletes {
            let node = *nodes
                .get(node_ix as usize)
                .ok_or("delete names an unknown node index")?;
            let end = start
                .checked_add(count)
                .filter(|&e| e <= CLOCK_MAX && count > 0)
                .ok_or("delete range out of range")?;
            dels.push((node, start, end));
        }

        let mut rga = State::default();
        ops.sort_unstable_by_key(|o| (o.lamport, o.node, o.seq));
        for o in &ops {
            let op = OpRef {
                node: o.node,
                seq: o.seq,
                lamport: o.lamport,
                origin: o.origin,
                len: o.len,
                text: &o.text,
            };
            rga.insert_new(&op);
        }
        rga.settle();
        for (node, start, end) in dels {
            rga.apply_delete(node, start, end);
        }
        Ok(rga)
    }
}
