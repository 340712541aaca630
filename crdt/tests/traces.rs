//! Real editing traces replayed through [`Rga`].
//!
//! * Every `sequential/` trace, replayed patch by patch, must end exactly at `endContent`; the
//!   deltas it produced, merged into an empty replica in reverse order, must rebuild the same
//!   state; and the final state must survive an encode/decode round trip.
//! * Every `concurrent/` trace is replayed with one replica per agent, as the README of the
//!   traces folder describes: before a transaction, its agent's replica receives the deltas
//!   of the transactions in its history that it lacks; then its patches are applied as local
//!   edits. Finally every replica receives everything: all must equal `endContent`, each other,
//!   and encode identically.
//!
//! The traces live outside the repository: `$CRDTKV_TRACES_DIR`, or by default
//! `../shared/data/editing-traces` next to the checkout. A missing folder fails the test.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crdt::encoding::{decode, encode};
use crdt::{Merge, NodeId, Rga};
use flate2::read::GzDecoder;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    #[serde(default)]
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
    #[serde(default)]
    num_agents: usize,
}

#[derive(Deserialize)]
struct Txn {
    #[serde(default)]
    parents: Vec<usize>,
    #[serde(default)]
    agent: usize,
    patches: Vec<(u64, u64, String)>,
}

fn traces_dir() -> PathBuf {
    let dir = std::env::var_os("CRDTKV_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/editing-traces")
        });
    assert!(
        dir.join("sequential").is_dir() && dir.join("concurrent").is_dir(),
        "editing traces not found at {} (expected sequential/ and concurrent/ in it); set \
         CRDTKV_TRACES_DIR to the folder holding them",
        dir.display()
    );
    dir
}

fn traces_in(sub: &str) -> Vec<(String, Trace)> {
    let dir = traces_dir().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .json.gz traces in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let mut json = String::new();
            GzDecoder::new(File::open(&path).expect("open trace"))
                .read_to_string(&mut json)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let trace: Trace = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .trim_end_matches(".json.gz")
                .to_owned();
            (name, trace)
        })
        .collect()
}

/// Applies one patch as local edits by `node`, returning the deltas.
fn apply(
    doc: &mut Rga,
    node: NodeId,
    (pos, del, ins): &(u64, u64, String),
    name: &str,
) -> Vec<Rga> {
    let mut deltas = Vec::new();
    if *del > 0 {
        deltas.push(
            doc.delete(node, *pos, *del)
                .unwrap_or_else(|e| panic!("{name}: delete: {e}")),
        );
    }
    if !ins.is_empty() {
        deltas.push(
            doc.insert(node, *pos, ins)
                .unwrap_or_else(|e| panic!("{name}: insert: {e}")),
        );
    }
    deltas
}

fn assert_round_trip(doc: &Rga, name: &str) {
    let bytes = encode(doc);
    let back: Rga = decode(&bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert!(back == *doc, "{name}: decoded state differs");
    assert_eq!(
        back.to_string(),
        doc.to_string(),
        "{name}: decoded text differs"
    );
    assert_eq!(encode(&back), bytes, "{name}: re-encoding differs");
}

#[test]
fn sequential_traces_reach_end_content() {
    for (name, trace) in traces_in("sequential") {
        let node = NodeId(1);
        let mut doc = Rga::new();
        let mut deltas = Vec::new();
        if !trace.start_content.is_empty() {
            deltas.push(
                doc.insert(node, 0, &trace.start_content)
                    .expect("start content"),
            );
        }
        for txn in &trace.txns {
            for patch in &txn.patches {
                deltas.extend(apply(&mut doc, node, patch, &name));
            }
        }
        assert!(
            doc.to_string() == trace.end_content,
            "{name}: final text differs from endContent"
        );
        assert_eq!(
            doc.len(),
            trace.end_content.chars().count() as u64,
            "{name}: length"
        );
        assert_round_trip(&doc, &name);

        // Deltas are states: merged in reverse (every insert arrives before its origin), they
        // rebuild exactly the same state.
        let mut rebuilt = Rga::new();
        for d in deltas.into_iter().rev() {
            rebuilt.merge(d);
        }
        assert!(
            rebuilt == doc,
            "{name}: deltas merged in reverse do not rebuild the state"
        );
        assert!(
            rebuilt.to_string() == trace.end_content,
            "{name}: rebuilt text differs"
        );
        eprintln!(
            "{name}: ok ({} chars, {} runs)",
            doc.len(),
            doc.stats().runs
        );
    }
}

#[test]
fn concurrent_traces_converge_on_every_replica() {
    for (name, trace) in traces_in("concurrent") {
        let agents = trace
            .num_agents
            .max(trace.txns.iter().map(|t| t.agent + 1).max().unwrap_or(0));
        assert!(agents > 0, "{name}: no agents");
        let n = trace.txns.len();
        let mut replicas = vec![Rga::new(); agents];
        let mut known = vec![vec![false; n]; agents];
        let mut txn_delta: Vec<Rga> = Vec::with_capacity(n);
        for (i, txn) in trace.txns.iter().enumerate() {
            let a = txn.agent;
            assert!(a < agents, "{name}: txn {i} names agent {a}");
            // Bring the replica to the txn's version: its history is down-closed, and so is
            // what the replica knows, so the walk stops at known transactions.
            let mut stack: Vec<usize> = txn.parents.clone();
            while let Some(t) = stack.pop() {
                assert!(t < i, "{name}: txn {i} has parent {t} not before it");
                if known[a][t] {
                    continue;
                }
                known[a][t] = true;
                replicas[a].merge(txn_delta[t].clone());
                stack.extend(trace.txns[t].parents.iter().copied());
            }
            let node = NodeId(a as u64 + 1);
            let mut delta = Rga::new();
            for patch in &txn.patches {
                for d in apply(&mut replicas[a], node, patch, &name) {
                    delta.merge(d);
                }
            }
            known[a][i] = true;
            txn_delta.push(delta);
        }
        // Every replica receives what it lacks, then all exchange full states.
        for (a, replica) in replicas.iter_mut().enumerate() {
            for t in (0..n).filter(|&t| !known[a][t]) {
                replica.merge(txn_delta[t].clone());
            }
            assert!(
                replica.to_string() == trace.end_content,
                "{name}: replica {a} differs from endContent after deltas"
            );
        }
        let states = replicas.clone();
        for replica in &mut replicas {
            for s in &states {
                replica.merge(s.clone());
            }
        }
        let first = encode(&replicas[0]);
        for (a, replica) in replicas.iter().enumerate() {
            assert!(
                replica.to_string() == trace.end_content,
                "{name}: replica {a} differs from endContent"
            );
            assert!(
                *replica == replicas[0],
                "{name}: replica {a} differs from replica 0"
            );
            assert!(
                encode(replica) == first,
                "{name}: replica {a} encodes differently"
            );
        }
        assert_round_trip(&replicas[0], &name);
        eprintln!(
            "{name}: ok ({agents} replicas, {} chars)",
            replicas[0].len()
        );
    }
}
