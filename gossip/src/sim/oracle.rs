//! What the simulation checks: every delta ever produced, which of them were truly lost (they
//! lived only on a node that came back without them), freshness claims, and the final state.

use std::collections::{BTreeMap, BTreeSet};

use crdt::value::Data;
use crdt::{Merge, NodeId, Timestamp, Value};

use super::node::SimNode;

/// Whether the visible content of `delta` (its register entries and set dots, or an increment
/// of `by`) is still there after merging it into `before`.
fn survives(before: &Value, delta: &Value, by: i64) -> bool {
    let merged = before.clone().merged(delta.clone());
    let part = |v: &Value, kind| {
        v.parts()
            .find(|p| p.kind() == kind)
            .map(|p| p.data().clone())
    };
    delta.parts().filter(|p| !p.data().is_empty()).all(|p| {
        let Some(m) = part(&merged, p.kind()) else {
            return false;
        };
        match (p.data(), &m) {
            (Data::Register(d), Data::Register(m)) => d
                .entries()
                .iter()
                .all(|e| m.entries().iter().any(|x| x.dot == e.dot)),
            (Data::Set(d), Data::Set(m)) => d.iter().all(|member| {
                d.dots_of(member)
                    .iter()
                    .all(|dot| m.dots_of(member).contains(dot))
            }),
            (Data::PnCounter(_), Data::PnCounter(m)) => {
                let old = match part(before, p.kind()) {
                    Some(Data::PnCounter(c)) => c.value(),
                    _ => 0,
                };
                m.value() - old == i128::from(by)
            }
            (Data::GCounter(_), Data::GCounter(m)) => {
                let old = match part(before, p.kind()) {
                    Some(Data::GCounter(c)) => c.value(),
                    _ => 0,
                };
                m.value() - old == i128::from(by.abs())
            }
            // An insert creates characters with new ids, which no earlier write can delete: all
            // of them must be visible after the merge.
            (Data::Text(d), Data::Text(m)) => {
                let old = match part(before, p.kind()) {
                    Some(Data::Text(t)) => t.len(),
                    _ => 0,
                };
                m.len() - old == d.stats().total_chars
            }
            _ => false,
        }
    })
}

/// The join of every tombstone of `key` collected on any node.
fn collected(nodes: &[SimNode], key: &[u8]) -> Option<Value> {
    nodes
        .iter()
        .filter_map(|n| n.replica.dropped.get(key))
        .fold(None, |acc: Option<Value>, v| {
            Some(acc.unwrap_or_default().merged(v.clone()))
        })
}

/// One acknowledged local write.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub(crate) ts: Timestamp,
    pub(crate) key: Vec<u8>,
    pub(crate) delta: Value,
    /// No replica held it when the only node holding it came back without it.
    pub(crate) lost: bool,
}

/// The record of everything acknowledged, and the checks against it.
#[derive(Default)]
pub(crate) struct Oracle {
    pub(crate) writes: Vec<Write>,
    /// Indices into `writes` per writing node, in timestamp order.
    by_node: BTreeMap<NodeId, Vec<usize>>,
    /// Per (observer, observed): how far into `by_node[observed]` freshness was checked.
    checked: BTreeMap<(NodeId, NodeId), usize>,
    pub(crate) freshness_checks: u64,
}

impl Oracle {
    /// Records an acknowledged write. An additive write (SET, SADD, a non-zero increment `by`)
    /// must survive being merged with every earlier write: if the earlier writes cancel it, the
    /// node reused a causal identity (a dot or a counter entry) that replicas may still hold.
    pub(crate) fn record(
        &mut self,
        node: NodeId,
        ts: Timestamp,
        key: Vec<u8>,
        delta: Value,
        additive: Option<i64>,
    ) -> Result<(), String> {
        if let Some(by) = additive {
            let before = self.join_of(&key);
            if !survives(&before, &delta, by) {
                return Err(format!(
                    "node {node} wrote {:?} at {ts:?}, but the earlier writes of the key cancel \
                     it (a reused dot or counter entry): delta {delta:?}, earlier writes {before:?}",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
        let list = self.by_node.entry(node).or_default();
        debug_assert!(list.last().is_none_or(|&i| self.writes[i].ts < ts));
        list.push(self.writes.len());
        self.writes.push(Write {
            ts,
            key,
            delta,
            lost: false,
        });
        Ok(())
    }

    /// The join of the writes of `key` not lost.
    fn join_of(&self, key: &[u8]) -> Value {
        let mut out = Value::new();
        for w in self.writes.iter().filter(|w| !w.lost && w.key == key) {
            out.merge(w.delta.clone());
        }
        out
    }

    /// A node came back with an older keyspace: writes no replica holds any more are lost.
    pub(crate) fn mark_lost(&mut self, nodes: &[SimNode]) -> usize {
        let mut lost = 0;
        for w in self.writes.iter_mut().filter(|w| !w.lost) {
            let collected = collected(nodes, &w.key);
            if !nodes
                .iter()
                .any(|n| n.replica.holds(&w.key, &w.delta, collected.as_ref()))
            {
                w.lost = true;
                lost += 1;
            }
        }
        lost
    }

    pub(crate) fn lost(&self) -> usize {
        self.writes.iter().filter(|w| w.lost).count()
    }

    /// A node restarted: its freshness knowledge starts over.
    pub(crate) fn forget_observer(&mut self, observer: NodeId) {
        self.checked.retain(|(o, _), _| *o != observer);
    }

    /// Checks every `synced_at` claim of `observer`: it must hold every write the peer made
    /// before the claimed time (except lost ones).
    pub(crate) fn check_freshness(
        &mut self,
        nodes: &[SimNode],
        observer: usize,
    ) -> Result<(), String> {
        let observer = &nodes[observer];
        for peer in observer.replicator.peers() {
            let Some(synced) = peer.synced_at else {
                continue;
            };
            let Some(list) = self.by_node.get(&peer.node_id) else {
                continue;
            };
            let at = self.checked.entry((observer.id, peer.node_id)).or_insert(0);
            while *at < list.len() && self.writes[list[*at]].ts < synced {
                let w = &self.writes[list[*at]];
                self.freshness_checks += 1;
                if !w.lost
                    && !observer
                        .replica
                        .holds(&w.key, &w.delta, collected(nodes, &w.key).as_ref())
                {
                    return Err(format!(
                        "node {} claims synced_at[{}] = {:?} but lacks the write of {:?} at {:?}",
                        observer.id,
                        peer.node_id,
                        synced,
                        String::from_utf8_lossy(&w.key),
                        w.ts
                    ));
                }
                *at += 1;
            }
        }
        Ok(())
    }

    /// The state every replica must converge to: per key, the join of every write not lost.
    pub(crate) fn expected(&self) -> BTreeMap<Vec<u8>, Value> {
        let mut out: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        for w in self.writes.iter().filter(|w| !w.lost) {
            out.entry(w.key.clone()).or_default().merge(w.delta.clone());
        }
        out
    }

    /// The final check: replicas are identical, every live key equals the join of its writes,
    /// and a key whose writes end in a delete is either that tombstone or collected.
    pub(crate) fn check_final(&self, nodes: &[SimNode]) -> Result<(), String> {
        let snapshots: Vec<BTreeMap<Vec<u8>, Value>> =
            nodes.iter().map(|n| n.replica.mem.snapshot()).collect();
        for (i, s) in snapshots.iter().enumerate().skip(1) {
            if *s != snapshots[0] {
                let keys: BTreeSet<&Vec<u8>> = s.keys().chain(snapshots[0].keys()).collect();
                let differing: Vec<String> = keys
                    .into_iter()
                    .filter(|k| s.get(*k) != snapshots[0].get(*k))
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect();
                let key = differing[0].as_bytes();
                let values: Vec<(NodeId, Option<&Value>)> = nodes
                    .iter()
                    .zip(&snapshots)
                    .map(|(n, s)| (n.id, s.get(key)))
                    .collect();
                return Err(format!(
                    "replicas of nodes {} and {} differ in keys {differing:?}; {:?} on each node: {values:?}; \
                     the join of its writes: {:?}",
                    nodes[0].id,
                    nodes[i].id,
                    differing[0],
                    self.expected().get(key)
                ));
            }
        }
        let expected = self.expected();
        let state = &snapshots[0];
        for (key, want) in &expected {
            // Collected tombstones are gone by design; what they cancelled must stay cancelled.
            let collected = collected(nodes, key);
            let have = state.get(key).map(|h| match &collected {
                Some(c) => h.clone().merged(c.clone()),
                None => h.clone(),
            });
            let ok = if want.exists() {
                have.as_ref() == Some(want)
            } else {
                have.as_ref().is_none_or(|h| h == want)
            };
            if !ok {
                return Err(format!(
                    "key {:?}: replicas hold {:?} (with collected tombstones: {have:?}), the join \
                     of all acknowledged writes is {want:?}",
                    String::from_utf8_lossy(key),
                    state.get(key)
                ));
            }
        }
        if let Some(extra) = state.keys().find(|k| !expected.contains_key(*k)) {
            return Err(format!(
                "key {:?} exists but was never written",
                String::from_utf8_lossy(extra)
            ));
        }
        Ok(())
    }
}
