//! The write set of one batch, and how a batch's writes become durable before its replies go
//! out.
//!
//! The model: a connection executes every command it has parsed from one read, in order, each
//! synchronously (handlers never await and hold no lock across an await). A write command
//! changes the in-memory keyspace at once and pushes what must reach the disk — storage
//! [`Op`]s — and what must reach the peers — [`KeyDelta`]s — into the batch's [`WriteSet`].
//! The dispatcher notes the byte range of the reply of every command that pushed something.
//!
//! After the batch, if the write set holds ops, the connection awaits **one** group commit
//! ([`storage::GroupCommitter::commit`]) before it sends any reply of the batch. So a write is
//! acknowledged only after it is in RocksDB, and a pipeline of 16 writes costs one commit, not
//! 16. If the commit succeeds the deltas are handed to the replication hook. If it fails, the
//! reply of each command that wrote is replaced by `-ERR write not persisted: <reason>` (the
//! other replies stand), and the deltas are dropped: the client was not told its write
//! happened. The change stays in memory like an unacknowledged write whose outcome the client
//! cannot know; anti-entropy or a later write of the key persists and ships it.

use std::ops::Range;

use storage::{Batch, Op, StorageError};

use crate::resp::ReplyWriter;
use crate::state::NodeState;

/// The delta of one local write: its key, the CRDT delta (a `Value` holding only what changed)
/// and the write's HLC timestamp, exactly as replication takes it.
pub use gossip::replication::driver::LocalDelta as KeyDelta;

/// What the commands of one batch wrote, and which replies depend on it.
#[derive(Debug, Default)]
pub struct WriteSet {
    batch: Batch,
    deltas: Vec<KeyDelta>,
    /// Pushes since the set was created: the dispatcher compares it before and after a command
    /// to know whether the command wrote.
    pushes: u64,
    durable_replies: Vec<Range<usize>>,
    /// The writes keep their shard locked for the next command (a connection's batch; see
    /// `keyspace::held`).
    hold_locks: bool,
    /// What the shard locks taken since the last [`take_locks`](Self::take_locks) showed.
    locks: LockReport,
    /// The shard whose writes [`LockReport::wrote_watched`] reports.
    watched: Option<usize>,
    /// The wall clock as the batch's first write read it ([`wall_ms`](Self::wall_ms)).
    wall_ms: Option<u64>,
}

/// What the shard locks taken by a connection's writes showed, for its placement on a
/// connection thread (`server::affinity`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LockReport {
    /// The first lock found kept by another thread's writer: `(its thread tag, the shard)`
    /// ([`crate::keyspace::thread_tag`]).
    pub waited: Option<(u32, usize)>,
    /// Whether the watched shard ([`WriteSet::watch`]) was written.
    pub wrote_watched: bool,
}

impl WriteSet {
    /// An empty write set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The write set of a connection: its writes keep their shard locked until the commands
    /// of the batch are done ([`crate::keyspace::release_held`]).
    pub fn for_connection() -> Self {
        WriteSet {
            hold_locks: true,
            ..Self::default()
        }
    }

    /// Whether writes keep their shard locked for the next command.
    pub fn holds_locks(&self) -> bool {
        self.hold_locks
    }

    /// Adds a storage op; it is committed with the batch, before any reply is sent. A base
    /// replaces the record of its key just before it ([`Batch::push_folding`]).
    pub fn push_op(&mut self, op: Op) {
        self.batch.push_folding(op);
        self.pushes += 1;
    }

    /// Appends a delta of `key` onto the batch's last record, when that is a delta record of
    /// the same key ([`Batch::append_to_last_delta`]); `append` encodes it onto the record's
    /// run ([`crdt::value::encode_value_to_run`]), so a pipeline of writes to one hot key
    /// costs storage one record instead of one per command. Returns how many bytes it took,
    /// or `None` (nothing pushed: push the op instead).
    pub fn append_to_delta_run(
        &mut self,
        key: &[u8],
        append: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> Option<usize> {
        let grown = self.batch.append_to_last_delta(key, append)?;
        self.pushes += 1;
        Some(grown)
    }

    /// Adds the delta of a local write; it is replicated once the batch is committed.
    pub fn push_delta(&mut self, key: Vec<u8>, delta: crdt::Value, ts: crdt::Timestamp) {
        self.deltas.push(KeyDelta { key, delta, ts });
        self.pushes += 1;
    }

    /// Records that a write locked shard `index`, and the tag of the other thread's writer it
    /// waited behind, if it had to wait.
    pub(crate) fn locked(&mut self, index: usize, behind: Option<u32>) {
        if let Some(tag) = behind
            && self.locks.waited.is_none()
        {
            self.locks.waited = Some((tag, index));
        }
        if self.watched == Some(index) {
            self.locks.wrote_watched = true;
        }
    }

    /// What the shard locks taken since the last call showed.
    pub fn take_locks(&mut self) -> LockReport {
        std::mem::take(&mut self.locks)
    }

    /// Makes [`LockReport::wrote_watched`] report writes of shard `index` (or of none).
    pub fn watch(&mut self, index: Option<usize>) {
        self.watched = index;
    }

    /// The wall clock (milliseconds) that the batch's writes are stamped from: read by the
    /// first write of the batch and reused by the others. Every request of a batch was received
    /// before the batch started executing, so every write is still stamped no earlier than its
    /// request was sent; the HLC keeps the stamps strictly increasing. It spares a
    /// pipeline of writes a clock read per command (4% of the server's samples under
    /// `SADD -P 16`).
    pub fn wall_ms(&mut self) -> u64 {
        *self.wall_ms.get_or_insert_with(crate::keyspace::wall_ms)
    }

    /// True when there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.deltas.is_empty()
    }

    /// The ops pushed so far.
    pub fn ops(&self) -> &[Op] {
        self.batch.ops()
    }

    /// The deltas pushed so far.
    pub fn deltas(&self) -> &[KeyDelta] {
        &self.deltas
    }

    pub(crate) fn pushes(&self) -> u64 {
        self.pushes
    }

    /// Records that the reply in `range` of the output buffer acknowledges a write.
    pub(crate) fn mark_durable(&mut self, range: Range<usize>) {
        self.durable_replies.push(range);
    }

    /// Forgets everything (after the batch is settled).
    pub(crate) fn clear(&mut self) {
        self.batch = Batch::new();
        self.deltas.clear();
        self.durable_replies.clear();
        self.wall_ms = None;
    }
}

/// Makes the batch's writes durable, then settles its replies: on success the deltas go to
/// replication; on failure the replies of the commands that wrote become errors. Returns the
/// commit's error, if any, for logging and stats. Leaves `writes` empty.
pub async fn commit_batch(
    state: &NodeState,
    writes: &mut WriteSet,
    reply: &mut ReplyWriter,
) -> Result<(), StorageError> {
    if writes.is_empty() {
        writes.clear();
        return Ok(());
    }
    let batch = std::mem::take(&mut writes.batch);
    let result = if batch.is_empty() {
        Ok(())
    } else {
        state.committer.commit(batch).await
    };
    match &result {
        Ok(()) => {
            let deltas = std::mem::take(&mut writes.deltas);
            if let Some(sink) = &state.hooks.deltas {
                sink.publish(deltas);
            }
        }
        Err(error) => {
            state
                .stats
                .failed_commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            replace_replies(reply, &writes.durable_replies, error);
        }
    }
    writes.clear();
    result
}

/// Replaces each reply in `ranges` (ascending, disjoint) by the not-persisted error.
fn replace_replies(reply: &mut ReplyWriter, ranges: &[Range<usize>], error: &StorageError) {
    let old = std::mem::take(reply.buffer_mut());
    let mut message = ReplyWriter::new(reply.protocol());
    message.error(&format!("ERR write not persisted: {error}"));
    let mut at = 0;
    for range in ranges {
        reply.buffer_mut().extend_from_slice(&old[at..range.start]);
        reply.buffer_mut().extend_from_slice(message.as_bytes());
        at = range.end;
    }
    reply.buffer_mut().extend_from_slice(&old[at..]);
}

#[cfg(test)]
mod tests;
