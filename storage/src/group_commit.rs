//! [`GroupCommitter`]: turns concurrent commits into one RocksDB write per group.
//!
//! Why: an fsync costs the same for one batch as for fifty. Under `always`, fifty clients that
//! each wrote and synced alone would pay fifty fsyncs; here one OS thread takes everything
//! queued while the previous group was being written, writes it as one atomic write with one
//! fsync, and then answers every waiter. The busier the node, the larger the groups. The same
//! batching helps `everysec` and `never` (one write-ahead-log append per group instead of per
//! client), where the committing tasks form the groups themselves (see "Writes on the callers'
//! threads" below) and the thread only syncs and takes over stalled writes.
//!
//! Model of the thread:
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
//!
//! **Writes on the callers' threads.** Under `everysec` and `never` a write does not wait for
//! an fsync, and handing every commit to the thread costs two thread wake-ups per commit (the
//! writer's, then the caller's) plus frees of the batch on another thread, which under many
//! small commits was a large share of the node's CPU. There the callers group their commits
//! themselves:
//! * `commit` queues its batch in its thread's list (threads share lists only beyond 16). If
//!   no caller of that list is writing, it becomes the *leader*: it yields once to the async
//!   runtime, so that the other tasks that are ready to commit (those whose requests arrived
//!   with the same wake-up) queue theirs behind it, then takes the whole list (within the
//!   group limits) and writes it as one RocksDB write with
//!   [`Store::try_write`], and answers every waiter of the group. It leads a few groups more if
//!   batches queued meanwhile, then hands what is left to the thread.
//! * A write that cannot be done at once (a write stall: `try_write` returns `false`) is handed
//!   to the thread as one request, with everything queued behind it, and the leader stops
//!   leading: an async task never blocks on a stall, it awaits its answer like any caller.
//! * The thread still runs the `everysec` fsync for both paths (the `unsynced` flag is shared),
//!   and after a failed background fsync every commit goes through the thread again until a
//!   synced write succeeds.
//! * A leader whose future is dropped hands the list to the thread, so no queued batch is ever
//!   left without a writer.
//!
//! Under `always` every commit goes through the thread: sharing one fsync is the point there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
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

/// The answer to a commit.
type Reply = oneshot::Sender<Result<(), StorageError>>;

struct Request {
    batch: Batch,
    /// Answered with the batch's result: the caller, or every caller of a group a leader
    /// handed over.
    replies: Vec<Reply>,
    /// The queue slot, released when the request is answered (or dropped). `None` for a group
    /// handed over by a leader: its batches were admitted when they were queued there.
    slot: Option<OwnedSemaphorePermit>,
}

/// Batches queued for a leader, and whether one is at work.
#[derive(Default)]
struct Pending {
    batches: Vec<(Batch, Reply)>,
    leading: bool,
}

enum Msg {
    Commit(Request),
    Shutdown,
}

/// Sync state shared by the writer thread and direct writers.
#[derive(Default)]
struct SyncFlags {
    /// Something was written without sync since the last sync started.
    unsynced: AtomicBool,
    /// The last background sync failed: sync the next write (through the thread).
    force_sync: AtomicBool,
}

/// What the callers' group commit needs (absent under `always`).
struct Direct {
    store: Arc<dyn Store>,
    /// `false` once shutdown began; leaders hold it shared for the length of a write, so
    /// shutdown's final sync comes after every write.
    open: RwLock<bool>,
    /// One list per committing thread (threads share a list only beyond
    /// [`PENDING_LISTS`]): a leader gathers the batches of its own thread's tasks, so it
    /// answers them without waking another thread. With one shared list, the leader on one
    /// connection thread answered the other thread's waiters, and each answer woke that
    /// thread's runtime: under `SADD -P 16` from two connection threads, most of the
    /// process's `write` calls were those wake-ups, and the threads sat idle waiting for them.
    /// Threads still write their groups concurrently; RocksDB orders them.
    pending: Box<[Mutex<Pending>]>,
}

/// Lists of batches awaiting a leader ([`Direct::pending`]).
const PENDING_LISTS: usize = 16;

/// The pending list of the calling thread: threads are numbered as they first commit.
fn pending_list() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LIST: usize = NEXT.fetch_add(1, Ordering::Relaxed) % PENDING_LISTS;
    }
    LIST.with(|list| *list)
}

/// Groups a leader writes before handing what is still queued to the thread, so that one
/// caller does not write for everyone else indefinitely.
const LEADER_GROUPS_MAX: usize = 4;

/// The group-commit writer. `Send + Sync`; share it by reference or `Arc`.
pub struct GroupCommitter {
    tx: Sender<Msg>,
    slots: Arc<Semaphore>,
    queue_len_max: usize,
    counters: Arc<Counters>,
    flags: Arc<SyncFlags>,
    direct: Option<Direct>,
    limits: CommitLimits,
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
        let flags = Arc::new(SyncFlags::default());
        let direct = (policy != FsyncPolicy::Always).then(|| Direct {
            store: Arc::clone(&store),
            open: RwLock::new(true),
            pending: (0..PENDING_LISTS)
                .map(|_| Mutex::new(Pending::default()))
                .collect(),
        });
        let writer = Writer {
            store,
            policy,
            limits: limits.clone(),
            rx,
            counters: Arc::clone(&counters),
            flags: Arc::clone(&flags),
            carry: None,
            last_sync: Instant::now(),
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
            flags,
            direct,
            limits,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Writes `batch` in the next group and returns once that group is written (and synced
    /// under `always`). Validates the batch first, so that a bad batch fails alone instead of
    /// failing its whole group.
    pub async fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        batch.validate()?;
        if let Some(direct) = &self.direct
            && !self.flags.force_sync.load(Ordering::Acquire)
        {
            return self.commit_direct(direct, batch).await;
        }
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Commit(Request {
                batch,
                replies: vec![reply],
                slot: Some(slot),
            }))
            .map_err(|_| StorageError::Closed)?;
        // The sender is dropped unanswered only if the thread exited before taking the batch:
        // then it was not written.
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// The callers' group commit (see the module docs).
    async fn commit_direct(&self, direct: &Direct, batch: Batch) -> Result<(), StorageError> {
        let (reply, answer) = oneshot::channel();
        let list = pending_list();
        let lead = {
            let mut pending = direct.pending[list].lock();
            pending.batches.push((batch, reply));
            !std::mem::replace(&mut pending.leading, true)
        };
        if lead {
            let mut leader = Leader {
                committer: self,
                direct,
                list,
                done: false,
            };
            // Let the tasks that are ready to commit join this group.
            tokio::task::yield_now().await;
            leader.lead();
        }
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Hands `batch` to the writer thread, to be answered to `replies`; answers them `Closed`
    /// if the thread is gone.
    fn hand_over(&self, batch: Batch, replies: Vec<Reply>) {
        let request = Request {
            batch,
            replies,
            slot: None,
        };
        if let Err(mpsc::SendError(Msg::Commit(request))) = self.tx.send(Msg::Commit(request)) {
            answer_all(request.replies, &Err(StorageError::Closed));
        }
    }

    /// Writes `group` as one write if the store takes it at once and answers its callers;
    /// returns the merged batch and the callers if the store would have to wait.
    fn write_group_now(
        &self,
        direct: &Direct,
        group: Vec<(Batch, Reply)>,
    ) -> Option<(Batch, Vec<Reply>)> {
        let mut merged = Batch::new();
        let mut replies = Vec::with_capacity(group.len());
        for (batch, reply) in group {
            if merged.is_empty() {
                merged = batch;
            } else {
                merged.extend(batch);
            }
            replies.push(reply);
        }
        let open = direct.open.read();
        if !*open {
            answer_all(replies, &Err(StorageError::Closed));
            return None;
        }
        let c = &self.counters;
        let result = if merged.is_empty() {
            Ok(())
        } else {
            match direct.store.try_write(&merged) {
                Ok(false) => return Some((merged, replies)),
                Ok(true) => {
                    // Set after the write: a sync that started before it may not cover it.
                    self.flags.unsynced.store(true, Ordering::Release);
                    c.groups.fetch_add(1, Ordering::Relaxed);
                    c.ops.fetch_add(merged.len() as u64, Ordering::Relaxed);
                    c.bytes.fetch_add(merged.bytes() as u64, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => {
                    c.groups.fetch_add(1, Ordering::Relaxed);
                    c.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, batches = replies.len(), "group write failed");
                    Err(e)
                }
            }
        };
        drop(open);
        c.commits.fetch_add(replies.len() as u64, Ordering::Relaxed);
        answer_all(replies, &result);
        None
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
        if let Some(direct) = &self.direct {
            // Waits for direct writes in progress; later ones fail.
            *direct.open.write() = false;
        }
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

/// Sends `result` to every waiter (a waiter that went away does not need it).
fn answer_all(replies: Vec<Reply>, result: &Result<(), StorageError>) {
    for reply in replies {
        let _ = reply.send(result.clone());
    }
}

/// A caller writing groups for the others; see [`GroupCommitter::commit_direct`].
struct Leader<'a> {
    committer: &'a GroupCommitter,
    direct: &'a Direct,
    /// The pending list it leads (its task may move to another thread meanwhile).
    list: usize,
    /// Leadership was given up properly.
    done: bool,
}

impl Leader<'_> {
    /// Writes up to [`LEADER_GROUPS_MAX`] groups, then gives up leadership.
    fn lead(&mut self) {
        for _ in 0..LEADER_GROUPS_MAX {
            let group = {
                let mut pending = self.direct.pending[self.list].lock();
                if pending.batches.is_empty() {
                    pending.leading = false;
                    self.done = true;
                    return;
                }
                take_group(&mut pending.batches, &self.committer.limits)
            };
            if let Some((stalled, replies)) = self.committer.write_group_now(self.direct, group) {
                // The store would have to wait: the thread waits instead, for this group and
                // whatever queues behind it, while this task awaits its answer like any caller.
                self.committer.hand_over(stalled, replies);
                break;
            }
        }
        self.give_up();
    }

    /// Stops leading; whatever is still queued goes to the thread.
    fn give_up(&mut self) {
        let rest = {
            let mut pending = self.direct.pending[self.list].lock();
            pending.leading = false;
            std::mem::take(&mut pending.batches)
        };
        self.done = true;
        for (batch, reply) in rest {
            self.committer.hand_over(batch, vec![reply]);
        }
    }
}

impl Drop for Leader<'_> {
    /// A leader dropped before it led (its task was cancelled at the yield) still hands the
    /// queued batches on.
    fn drop(&mut self) {
        if !self.done {
            self.give_up();
        }
    }
}

/// The first batches of `batches`, within the group limits (at least one).
fn take_group(batches: &mut Vec<(Batch, Reply)>, limits: &CommitLimits) -> Vec<(Batch, Reply)> {
    let (mut ops, mut bytes, mut n) = (0, 0, 0);
    for (batch, _) in batches.iter() {
        if n > 0
            && (ops + batch.len() > limits.group_ops_max
                || bytes + batch.bytes() > limits.group_bytes_max)
        {
            break;
        }
        ops += batch.len();
        bytes += batch.bytes();
        n += 1;
    }
    if n == batches.len() {
        std::mem::take(batches)
    } else {
        batches.drain(..n).collect()
    }
}

/// The state owned by the writer thread.
struct Writer {
    store: Arc<dyn Store>,
    policy: FsyncPolicy,
    limits: CommitLimits,
    rx: Receiver<Msg>,
    counters: Arc<Counters>,
    /// Whether something is unsynced, and whether the next write must sync; shared with
    /// direct writers.
    flags: Arc<SyncFlags>,
    /// A request taken from the queue that did not fit in the previous group.
    carry: Option<Request>,
    last_sync: Instant,
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
        // Under everysec the thread wakes at least once per interval: direct writes mark the
        // log unsynced without telling it.
        let received = if self.policy == FsyncPolicy::EverySec {
            let wait = if self.unsynced() {
                self.interval().saturating_sub(self.last_sync.elapsed())
            } else {
                self.interval()
            };
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
        let mut slots = Vec::with_capacity(group.len());
        for request in group {
            merged.extend(request.batch);
            replies.extend(request.replies);
            slots.push(request.slot);
        }
        let result = if merged.is_empty() {
            Ok(())
        } else {
            let sync =
                self.policy == FsyncPolicy::Always || self.flags.force_sync.load(Ordering::Acquire);
            if sync {
                // This write's fsync covers everything written before it.
                self.flags.unsynced.store(false, Ordering::Release);
            }
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
                        self.flags.unsynced.store(true, Ordering::Release);
                    }
                }
                Err(e) => {
                    if sync {
                        // Unknown what reached the disk: sync again later.
                        self.flags.unsynced.store(true, Ordering::Release);
                    }
                    c.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, batches = replies.len(), "group write failed");
                }
            }
            result
        };
        self.counters
            .commits
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        answer_all(replies, &result);
        drop(slots);
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.limits.sync_interval_ms)
    }

    fn unsynced(&self) -> bool {
        self.flags.unsynced.load(Ordering::Acquire)
    }

    fn sync_due(&self) -> bool {
        self.unsynced() && self.last_sync.elapsed() >= self.interval()
    }

    /// After a successful sync. `unsynced` was cleared before the sync started, so a direct
    /// write that raced with it stays marked.
    fn synced(&mut self) {
        self.last_sync = Instant::now();
        self.flags.force_sync.store(false, Ordering::Release);
    }

    /// Syncs the log; on failure marks it unsynced again and makes the next write synchronous.
    fn sync_now(&mut self) -> Result<(), StorageError> {
        self.flags.unsynced.store(false, Ordering::Release);
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let result = self.store.sync_wal();
        match &result {
            Ok(()) => self.synced(),
            Err(_) => {
                self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
                self.flags.unsynced.store(true, Ordering::Release);
                self.flags.force_sync.store(true, Ordering::Release);
            }
        }
        result
    }

    fn background_sync(&mut self) {
        if !self.unsynced() {
            return;
        }
        if let Err(e) = self.sync_now() {
            tracing::error!(error = %e, "background fsync failed; syncing the next write");
            // Retry on the next interval rather than in a tight loop.
            self.last_sync = Instant::now();
        }
    }

    /// Clean shutdown syncs under every policy, as Redis does with `appendfsync no`.
    fn final_sync(mut self) -> Result<(), StorageError> {
        if !self.unsynced() && !self.flags.force_sync.load(Ordering::Acquire) {
            return Ok(());
        }
        self.sync_now()
    }
}

enum Next {
    Request(Request),
    Shutdown,
    Tick,
    Done,
}
