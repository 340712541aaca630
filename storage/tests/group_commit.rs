//! The group committer: concurrency, durability per fsync policy, shared fsyncs, failures and
//! shutdown. Nothing here asserts a duration: where grouping must be deterministic, a gate in
//! front of the store holds the writer thread while the test queues batches behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use storage::{
    Batch, CommitLimits, Durability, FsyncPolicy, GroupCommitter, KeyRecord, MemStore, Op,
    RocksStore, StorageError, Store, StoreOptions,
};

/// A store wrapper that counts calls and lets a write through only when the test allows it.
struct Gated<S> {
    inner: S,
    /// Writes allowed to pass so far (`u64::MAX`: all) and writes that arrived.
    gate: Mutex<(u64, u64)>,
    moved: Condvar,
    synced_writes: AtomicU64,
}

impl<S: Store> Gated<S> {
    fn new(inner: S, open: bool) -> Arc<Self> {
        let allowed = if open { u64::MAX } else { 0 };
        Arc::new(Self {
            inner,
            gate: Mutex::new((allowed, 0)),
            moved: Condvar::new(),
            synced_writes: AtomicU64::new(0),
        })
    }
    /// Lets `n` more writes through.
    fn allow(&self, n: u64) {
        let mut gate = self.gate.lock();
        gate.0 = gate.0.saturating_add(n);
        self.moved.notify_all();
    }
    /// Writes that arrived at the gate (passed or waiting).
    fn arrived(&self) -> u64 {
        self.gate.lock().1
    }
}

impl<S: Store> Store for Gated<S> {
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StorageError> {
        {
            let mut gate = self.gate.lock();
            gate.1 += 1;
            let me = gate.1;
            self.moved.notify_all();
            while me > gate.0 {
                self.moved.wait(&mut gate);
            }
        }
        self.synced_writes
            .fetch_add(u64::from(sync), Ordering::Relaxed);
        self.inner.write(batch, sync)
    }
    fn sync_wal(&self) -> Result<(), StorageError> {
        self.inner.sync_wal()
    }
    fn get(&self, key: &[u8]) -> Result<Option<KeyRecord>, StorageError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        visit: &mut dyn FnMut(KeyRecord) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.scan(visit)
    }
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get_meta(name)
    }
    fn key_count_estimate(&self) -> u64 {
        self.inner.key_count_estimate()
    }
}

fn put(i: u64) -> Batch {
    Batch::from(vec![
        Op::PutState {
            key: format!("k{i}").into_bytes(),
            state: i.to_be_bytes().to_vec(),
            version: 0,
        },
        Op::AppendDelta {
            key: b"log".to_vec(),
            seq: i,
            delta: vec![1],
        },
    ])
}

fn keys_of(store: &dyn Store) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    store
        .scan(&mut |r| {
            keys.push(r.key);
            Ok(())
        })
        .unwrap();
    keys
}

/// Polls `cond` (a liveness wait, not a timing assertion).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `n` commits queued behind a held write share one fsync under `always`.
async fn concurrent_commits_share_fsyncs<S: Store>(inner: S) -> Arc<Gated<S>> {
    const N: u64 = 50;
    let store = Gated::new(inner, false);
    let committer = Arc::new(GroupCommitter::start(
        store.clone(),
        FsyncPolicy::Always,
        CommitLimits::default(),
    ));
    let commit = |i| {
        let c = Arc::clone(&committer);
        tokio::spawn(async move { c.commit(put(i)).await })
    };
    let first = commit(0);
    eventually("first write held", || store.arrived() == 1).await;
    let rest: Vec<_> = (1..N).map(commit).collect();
    eventually("all commits queued", || {
        committer.stats().queue_len == N as usize
    })
    .await;
    store.allow(u64::MAX);
    first.await.unwrap().unwrap();
    for task in rest {
        task.await.unwrap().unwrap();
    }
    let stats = committer.stats();
    println!("{N} commits under `always`: {stats:?}");
    assert_eq!(stats.commits, N);
    assert_eq!(
        (stats.groups, stats.syncs),
        (2, 2),
        "the held write, then one group of the rest"
    );
    assert_eq!(
        store.synced_writes.load(Ordering::Relaxed),
        2,
        "the store saw two fsyncs, not {N}"
    );
    assert!(stats.syncs < N);
    committer.shutdown().unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn always_shares_fsyncs_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let rocks = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
    let store = concurrent_commits_share_fsyncs(rocks).await;
    drop(store);
    let reopened = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(keys_of(&reopened).len(), 51, "50 keys and the log");
    assert_eq!(reopened.get(b"log").unwrap().unwrap().deltas.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn always_shares_fsyncs_on_memstore() {
    let mem = MemStore::new();
    mem.set_durability(Durability::Synced);
    let store = concurrent_commits_share_fsyncs(mem).await;
    assert_eq!(store.inner.stats().synced_writes, 2);
    assert_eq!(
        keys_of(&store.inner.reopen()).len(),
        51,
        "synced writes survive power loss"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_commits_are_durable_after_reopen() {
    const TASKS: u64 = 8;
    const EACH: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(RocksStore::open(dir.path(), &StoreOptions::default()).unwrap());
    let committer = Arc::new(GroupCommitter::start(
        store.clone(),
        FsyncPolicy::EverySec,
        CommitLimits::default(),
    ));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let c = Arc::clone(&committer);
            tokio::spawn(async move {
                for i in 0..EACH {
                    c.commit(put(t * EACH + i)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    committer.shutdown().unwrap();
    let stats = committer.stats();
    println!("{} commits under `everysec`: {stats:?}", TASKS * EACH);
    assert_eq!(stats.commits, TASKS * EACH);
    assert!(
        stats.groups <= stats.commits && stats.syncs >= 1,
        "shutdown syncs"
    );
    drop((committer, store));
    let reopened = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(keys_of(&reopened).len() as u64, TASKS * EACH + 1);
    let log = reopened.get(b"log").unwrap().unwrap();
    assert_eq!(
        log.deltas.iter().map(|d| d.0).collect::<Vec<_>>(),
        (0..TASKS * EACH).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_answers_every_waiter_of_its_group() {
    let store = Gated::new(MemStore::new(), false);
    let committer = Arc::new(GroupCommitter::start(
        store.clone(),
        FsyncPolicy::Always,
        CommitLimits::default(),
    ));
    let commit = |i| {
        let c = Arc::clone(&committer);
        tokio::spawn(async move { c.commit(put(i)).await })
    };
    let first = commit(0);
    eventually("first write held", || store.arrived() == 1).await;
    let group: Vec<_> = (1..=10).map(commit).collect();
    eventually("group queued", || committer.stats().queue_len == 11).await;
    store.allow(1); // the first write succeeds alone
    first.await.unwrap().unwrap();
    eventually("the group of ten at the gate", || store.arrived() == 2).await;
    store.inner.fail_next_writes(1);
    store.allow(u64::MAX);
    for task in group {
        assert!(matches!(
            task.await.unwrap(),
            Err(StorageError::Write { .. })
        ));
    }
    let stats = committer.stats();
    assert_eq!(
        (stats.groups, stats.write_errors, stats.commits),
        (2, 1, 11)
    );
    assert_eq!(
        keys_of(&store.inner),
        vec![b"k0".to_vec(), b"log".to_vec()],
        "nothing of the group"
    );
    // The writer carries on after a failure.
    committer.commit(put(11)).await.unwrap();
    assert!(store.inner.get(b"k11").unwrap().is_some());
}

#[tokio::test]
async fn always_acknowledges_only_synced_writes() {
    let mem = Arc::new(MemStore::new());
    mem.set_durability(Durability::Synced);
    let committer =
        GroupCommitter::start(mem.clone(), FsyncPolicy::Always, CommitLimits::default());
    for i in 0..5 {
        committer.commit(put(i)).await.unwrap();
        assert!(
            mem.reopen()
                .get(format!("k{i}").as_bytes())
                .unwrap()
                .is_some(),
            "acked means synced"
        );
    }
}

#[tokio::test]
async fn never_syncs_only_at_shutdown() {
    let mem = Arc::new(MemStore::new());
    mem.set_durability(Durability::Synced);
    let committer = GroupCommitter::start(mem.clone(), FsyncPolicy::Never, CommitLimits::default());
    for i in 0..5 {
        committer.commit(put(i)).await.unwrap();
    }
    assert_eq!((mem.stats().wal_syncs, mem.stats().synced_writes), (0, 0));
    assert!(
        keys_of(&mem.reopen()).is_empty(),
        "power loss before any fsync"
    );
    assert_eq!(keys_of(&*mem).len(), 6, "but every write is applied");
    committer.shutdown().unwrap();
    assert_eq!(mem.stats().wal_syncs, 1);
    assert_eq!(keys_of(&mem.reopen()).len(), 6);
    assert!(matches!(
        committer.commit(put(9)).await,
        Err(StorageError::Closed)
    ));
    committer.shutdown().unwrap(); // idempotent
}

#[tokio::test]
async fn everysec_syncs_in_the_background() {
    let mem = Arc::new(MemStore::new());
    mem.set_durability(Durability::Synced);
    let limits = CommitLimits {
        sync_interval_ms: 5,
        ..CommitLimits::default()
    };
    let committer = GroupCommitter::start(mem.clone(), FsyncPolicy::EverySec, limits);
    committer.commit(put(1)).await.unwrap();
    assert_eq!(
        mem.stats().synced_writes,
        0,
        "everysec does not sync in the write"
    );
    eventually("background fsync", || mem.stats().wal_syncs >= 1).await;
    assert!(mem.reopen().get(b"k1").unwrap().is_some());
    assert!(committer.stats().syncs >= 1);
}

#[tokio::test]
async fn a_failed_background_sync_makes_the_next_write_synchronous() {
    let mem = Arc::new(MemStore::new());
    mem.set_durability(Durability::Synced);
    mem.fail_next_syncs(1);
    let limits = CommitLimits {
        sync_interval_ms: 5,
        ..CommitLimits::default()
    };
    let committer = GroupCommitter::start(mem.clone(), FsyncPolicy::EverySec, limits);
    committer.commit(put(1)).await.unwrap();
    eventually("failed background fsync", || {
        committer.stats().sync_errors == 1
    })
    .await;
    assert!(mem.reopen().get(b"k1").unwrap().is_none());
    committer.commit(put(2)).await.unwrap();
    assert_eq!(mem.stats().synced_writes, 1);
    let after_power_loss = mem.reopen();
    assert!(
        after_power_loss.get(b"k1").unwrap().is_some()
            && after_power_loss.get(b"k2").unwrap().is_some()
    );
}

#[tokio::test]
async fn an_invalid_batch_fails_alone_and_limits_split_groups() {
    let mem = Arc::new(MemStore::new());
    let limits = CommitLimits {
        group_ops_max: 3,
        ..CommitLimits::default()
    };
    let committer = GroupCommitter::start(mem.clone(), FsyncPolicy::Never, limits);
    let bad = Batch::from(vec![Op::DeleteMeta {
        name: "x".repeat(10_000),
    }]);
    assert!(matches!(
        committer.commit(bad).await,
        Err(StorageError::InvalidRecord { .. })
    ));
    assert_eq!(committer.stats().commits, 0, "refused before it was queued");
    // Batches of two ops with a limit of three ops: every group holds exactly one batch.
    let (a, b) = tokio::join!(committer.commit(put(1)), committer.commit(put(2)));
    a.unwrap();
    b.unwrap();
    let stats = committer.stats();
    assert_eq!((stats.commits, stats.groups, stats.ops), (2, 2, 4));
}

/// Under `everysec` the tasks of each thread group their commits among themselves: a commit on a
/// second thread does not queue behind the first thread's leader, whose answer would have to
/// wake the second thread, but leads a group of its own; both groups reach the store.
#[test]
fn each_thread_leads_its_own_groups() {
    let store = Gated::new(MemStore::new(), false);
    let committer = Arc::new(GroupCommitter::start(
        store.clone(),
        FsyncPolicy::EverySec,
        CommitLimits::default(),
    ));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let committer = Arc::clone(&committer);
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(committer.commit(put(t)))
            })
        })
        .collect();
    // Both leaders are at the store before either write is let through.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.arrived() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second thread's commit waited behind the first thread's leader"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    store.allow(u64::MAX);
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    let stats = committer.stats();
    assert_eq!((stats.commits, stats.groups), (2, 2));
    committer.shutdown().unwrap();
    assert_eq!(keys_of(&*store).len(), 3);
}
