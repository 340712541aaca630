//! [`GroupCommitter`]: one OS thread owns all writes and turns whatever is queued into one
//! RocksDB write.
//!
//! Why: an fsync costs the same for one batch as for fifty. Under `always`, fifty clients that
//! each wrote and synced alone would pay fifty fsyncs; here the thread takes everything queued
//! while the previous group was being written, writes it as one atomic write with one fsync,
//! and then answers every waiter. The busier the node, the larger the groups. The same
//! batching helps `everysec` and `never`: one write-ahead-log append per group instead of per
//! client.
//!
//! Model:
//! * `commit` waits for room in a bounded queue (`queue_len_max` batches, counting the group
//!   being written), hands its batch over and awaits a tokio oneshot answer. It never blocks an
//!   executor thread.
//! * The thread takes the first waiting batch, then everything else already queued up to
//!   `group_ops_max` ops and `group_bytes_max` bytes, and writes the concatenation in arrival
//!   order with `sync` iff the policy is `always`. Every waiter of the group gets the same
//!   answer; on error nothing of the group is acknowledged.
//! * `everysec` syncs the log after a group once `sync_interval_ms` passed since the last sync,
//!   and on an idle timer when something is still unsynced. A failed background sync is
//!   logged, and the next group is then written with `sync` so its waiters learn of a failing
//!   disk instead of being acknowledged onto it.
//! * `shutdown` stops accepting batches, writes everything already queued, syncs the log
//!   under every policy, and joins the thread. Dropping the committer does the same.
//!
//! Cancellation: a caller that drops the `commit` future after its batch was queued does not
//! withdraw it; the batch is written like any other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::batch::Batch;
use crate::error::StorageError;
use crate::options::{CommitLimits, FsyncPolicy};
use crate::store::Store;

/// Counters of the committer, for metrics and tests. Monotonic except `queue_len`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches answered (successfully or not).
    pub commits: u64,
    /// Write groups attempted: RocksDB writes issued by the thread.
    pub groups: u64,
    /// Ops written in successful groups.
    pub ops: u64,
    /// Payload bytes written in successful groups.
    pub bytes: u64,
    /// fsyncs issued: synced writes plus `sync_wal` calls.
    pub syncs: u64,
    /// Groups whose write failed (all their waiters got the error).
    pub write_errors: u64,
    /// Background or shutdown syncs that failed.
    pub sync_errors: u64,
    /// Batches queued or being written right now.
    pub queue_len: usize,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    groups: AtomicU64,
    ops: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    write_errors: AtomicU64,
    sync_errors: AtomicU64,
}

struct Request {
    batch: Batch,
    reply: oneshot::Sender<Result<(), StorageError>>,
    /// The queue slot, released when the request is answered (or dropped).
    slot: OwnedSemaphorePermit,
}

enum Msg {
    Commit(Request),
    Shutdown,
}

/// The group-commit writer. `Send + Sync`; share it by reference or `Arc`.
pub struct GroupCommitter {
    tx: Sender<Msg>,
    slots: Arc<Semaphore>,
    queue_len_max: usize,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<Result<(), StorageError>>>>,
}

impl GroupCommitter {
    /// Starts the writer thread (named `storage-commit`) on `store`.
    ///
    /// `limits` should have passed [`CommitLimits::validate`]; zero limits are raised to 1.
    ///
    /// # Panics
    /// If the OS refuses to create a thread, like [`std::thread::spawn`].
    pub fn start(store: Arc<dyn Store>, policy: FsyncPolicy, limits: CommitLimits) -> Self {
        let limits = CommitLimits {
            queue_len_max: limits.queue_len_max.clamp(1, Semaphore::MAX_PERMITS),
            group_ops_max: limits.group_ops_max.max(1),
            group_bytes_max: limits.group_bytes_max.max(1),
            sync_interval_ms: limits.sync_interval_ms.max(1),
        };
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            store,
            policy,
            limits: limits.clone(),
            rx,
            counters: Arc::clone(&counters),
            carry: None,
            last_sync: Instant::now(),
            unsynced: false,
            force_sync: false,
        };
        let thread = std::thread::Builder::new()
            .name("storage-commit".into())
            .spawn(move || writer.run())
            .expect("cannot spawn the storage-commit thread");
        Self {
            tx,
            slots: Arc::new(Semaphore::new(limits.queue_len_max)),
            queue_len_max: limits.queue_len_max,
            counters,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Writes `batch` in the next group and returns once that group is written (and synced
    /// under `always`). Validates the batch first, so that a bad batch fails alone instead of
    /// failing its whole group.
    pub async fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        batch.validate()?;
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Commit(Request { batch, reply, slot }))
            .map_err(|_| StorageError::Closed)?;
        // The sender is dropped unanswered only if the thread exited before taking the batch:
        // then it was not written.
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CommitStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CommitStats {
            commits: load(&c.commits),
            groups: load(&c.groups),
            ops: load(&c.ops),
            bytes: load(&c.bytes),
            syncs: load(&c.syncs),
            write_errors: load(&c.write_errors),
            sync_errors: load(&c.sync_errors),
            queue_len: self
                .queue_len_max
                .saturating_sub(self.slots.available_permits()),
        }
    }

    /// Stops accepting batches (later `commit`s fail with [`StorageError::Closed`]), writes
    /// what is queued, syncs the log and joins the thread. Returns the final sync's result.
    /// Idempotent: later calls return `Ok`. Blocks the calling thread until the final fsync
    /// is done: call it at the end of `main` or from `spawn_blocking`, not on an async task.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        self.slots.close();
        // Fails only if the thread already exited; joining below reports why.
        let _ = self.tx.send(Msg::Shutdown);
        thread.join().unwrap_or_else(|_| {
            Err(StorageError::Write {
                reason: "the storage-commit thread panicked".into(),
            })
        })
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "storage shutdown on drop failed");
        }
    }
}

/// The state owned by the writer thread.
struct Writer {
    store: Arc<dyn Store>,
    policy: FsyncPolicy,
    limits: CommitLimits,
    rx: Receiver<Msg>,
    counters: Arc<Counters>,
    /// A request taken from the queue that did not fit in the previous group.
    carry: Option<Request>,
    last_sync: Instant,
    /// Something was written without sync since the last sync.
    unsynced: bool,
    /// The last background sync failed: sync the next group's write.
    force_sync: bool,
}

impl Writer {
    fn run(mut self) -> Result<(), StorageError> {
        let mut draining = false;
        loop {
            let first = match self.carry.take() {
                Some(request) => request,
                None => match self.next(draining) {
                    Next::Request(request) => request,
                    Next::Shutdown => {
                        draining = true;
                        continue;
                    }
                    Next::Tick => {
                        self.background_sync();
                        continue;
                    }
                    Next::Done => break,
                },
            };
            let group = self.gather(first, &mut draining);
            self.write_group(group);
            if self.policy == FsyncPolicy::EverySec && self.sync_due() {
                self.background_sync();
            }
        }
        self.final_sync()
    }

    /// Waits for the next message: until the next everysec sync is due, or not at all once
    /// shutting down (what is queued is all there will be).
    fn next(&mut self, draining: bool) -> Next {
        if draining {
            return match self.rx.try_recv() {
                Ok(Msg::Commit(request)) => Next::Request(request),
                Ok(Msg::Shutdown) => Next::Shutdown,
                Err(_) => Next::Done,
            };
        }
        let received = if self.policy == FsyncPolicy::EverySec && self.unsynced {
            let wait = self.interval().saturating_sub(self.last_sync.elapsed());
            self.rx.recv_timeout(wait)
        } else {
            self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match received {
            Ok(Msg::Commit(request)) => Next::Request(request),
            Ok(Msg::Shutdown) => Next::Shutdown,
            Err(RecvTimeoutError::Timeout) => Next::Tick,
            Err(RecvTimeoutError::Disconnected) => Next::Done,
        }
    }

    /// `first` plus everything already queued, within the group limits.
    fn gather(&mut self, first: Request, draining: &mut bool) -> Vec<Request> {
        let (mut ops, mut bytes) = (first.batch.len(), first.batch.bytes());
        let mut group = vec![first];
        while ops < self.limits.group_ops_max && bytes < self.limits.group_bytes_max {
            match self.rx.try_recv() {
                Ok(Msg::Commit(request)) => {
                    let (o, b) = (request.batch.len(), request.batch.bytes());
                    if ops + o > self.limits.group_ops_max
                        || bytes + b > self.limits.group_bytes_max
                    {
                        self.carry = Some(request);
                        break;
                    }
                    ops += o;
                    bytes += b;
                    group.push(request);
                }
                Ok(Msg::Shutdown) => *draining = true,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        group
    }

    fn write_group(&mut self, group: Vec<Request>) {
        let mut merged = Batch::new();
        let mut replies = Vec::with_capacity(group.len());
        for request in group {
            merged.extend(request.batch);
            replies.push((request.reply, request.slot));
        }
        let result = if merged.is_empty() {
            Ok(())
        } else {
            let sync = self.policy == FsyncPolicy::Always || self.force_sync;
            let c = &self.counters;
            c.groups.fetch_add(1, Ordering::Relaxed);
            let result = self.store.write(&merged, sync);
            match &result {
                Ok(()) => {
                    c.ops.fetch_add(merged.len() as u64, Ordering::Relaxed);
                    c.bytes.fetch_add(merged.bytes() as u64, Ordering::Relaxed);
                    if sync {
                        c.syncs.fetch_add(1, Ordering::Relaxed);
                        self.synced();
                    } else {
                        self.unsynced = true;
                    }
                }
                Err(e) => {
                    c.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, batches = replies.len(), "group write failed");
                }
            }
            result
        };
        self.counters
            .commits
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        for (reply, slot) in replies {
            // A waiter that went away does not need the answer.
            let _ = reply.send(result.clone());
            drop(slot);
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.limits.sync_interval_ms)
    }

    fn sync_due(&self) -> bool {
        self.unsynced && self.last_sync.elapsed() >= self.interval()
    }

    fn synced(&mut self) {
        self.last_sync = Instant::now();
        self.unsynced = false;
        self.force_sync = false;
    }

    fn background_sync(&mut self) {
        if !self.unsynced {
            return;
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        match self.store.sync_wal() {
            Ok(()) => self.synced(),
            Err(e) => {
                self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "background fsync failed; syncing the next write");
                // Retry on the next interval rather than in a tight loop.
                self.last_sync = Instant::now();
                self.force_sync = true;
            }
        }
    }

    /// Clean shutdown syncs under every policy, as Redis does with `appendfsync no`.
    fn final_sync(mut self) -> Result<(), StorageError> {
        if !self.unsynced && !self.force_sync {
            return Ok(());
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let result = self.store.sync_wal();
        match &result {
            Ok(()) => self.synced(),
            Err(_) => {
                self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }
}

enum Next {
    Request(Request),
    Shutdown,
    Tick,
    Done,
}
