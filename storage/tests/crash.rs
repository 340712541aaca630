//! `kill -9` loses no acknowledged write, and no batch is found half-written.
//!
//! The test re-runs this test binary as a child (selected by an environment variable) that
//! writes batches through the group committer under `never` — the weakest policy — and prints
//! each acknowledged batch number. The parent kills it with SIGKILL at an arbitrary point,
//! reopens the store and checks every batch: acknowledged ones are present, and each one is
//! present entirely or not at all. It repeats on the same directory, so recovery after a
//! crash is itself crashed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use storage::{
    Batch, CommitLimits, FsyncPolicy, GroupCommitter, Op, RocksStore, Store, StoreOptions,
};

const CHILD_DIR_ENV: &str = "STORAGE_CRASH_CHILD_DIR";
const ROUNDS: usize = 4;
/// Acknowledgements the parent reads before killing the child.
const ACKS_BEFORE_KILL: usize = 300;

fn batch(i: u64) -> Batch {
    Batch::from(vec![
        Op::PutState {
            key: format!("a{i:08}").into_bytes(),
            state: vec![1; 40],
            version: 0,
        },
        Op::PutState {
            key: format!("b{i:08}").into_bytes(),
            state: vec![2; 40],
            version: 0,
        },
        Op::AppendDelta {
            key: b"log".to_vec(),
            seq: i,
            delta: i.to_be_bytes().to_vec(),
        },
    ])
}

/// Batch numbers found in the store; fails if any batch is only partly there.
fn present(store: &RocksStore) -> BTreeSet<u64> {
    let (mut a, mut b, mut log) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    store
        .scan(&mut |r| {
            let n = |k: &[u8]| {
                std::str::from_utf8(&k[1..])
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            };
            match r.key.first() {
                Some(b'a') => a.insert(n(&r.key)),
                Some(b'b') => b.insert(n(&r.key)),
                _ => {
                    log.extend(r.deltas.iter().map(|d| d.0));
                    true
                }
            };
            Ok(())
        })
        .unwrap();
    assert_eq!(a, b, "a batch was half-written");
    assert_eq!(a, log, "a batch was half-written");
    a
}

/// The child: writes forever from several tasks until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let store = Arc::new(RocksStore::open(&dir, &StoreOptions::default()).unwrap());
    let start = present(&store).last().map_or(0, |n| n + 1);
    let committer = Arc::new(GroupCommitter::start(
        store,
        FsyncPolicy::Never,
        CommitLimits::default(),
    ));
    let next = Arc::new(AtomicU64::new(start));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..8 {
            let (c, next) = (Arc::clone(&committer), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = c.commit(batch(i)).await {
                        // Exiting closes stdout: the parent sees too few acknowledgements.
                        eprintln!("commit {i} failed: {e}");
                        std::process::exit(1);
                    }
                    println!("ack {i}");
                }
            });
        }
        // Write until killed.
        std::future::pending::<()>().await;
    });
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked = BTreeSet::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let Some(n) = line
                .unwrap()
                .strip_prefix("ack ")
                .map(|n| n.parse::<u64>().unwrap())
            else {
                continue;
            };
            acked.insert(n);
            if acked.len() >= ACKS_BEFORE_KILL {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the child was killed, it cannot have finished"
        );
        assert_eq!(
            acked.len(),
            ACKS_BEFORE_KILL,
            "the child stopped acknowledging early"
        );
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let found = present(&store);
        let lost: Vec<_> = acked.difference(&found).collect();
        println!(
            "round {round}: {} acknowledged, {} batches on disk, {} lost",
            acked.len(),
            found.len(),
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "{} acknowledged but lost, first: {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        total_acked += acked.len();
    }
    println!("{ROUNDS} kills, {total_acked} acknowledged batches, 0 lost, none half-written");
}
