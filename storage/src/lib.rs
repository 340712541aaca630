//! # storage — the durable copy of a crdtkv node
//!
//! The node keeps every key's CRDT state in memory; this crate is where it survives restarts.
//! Values are opaque bytes here (the `crdt` crate's versioned encoding); storage knows keys,
//! ordering, atomicity and durability, not CRDTs.
//!
//! ## Model
//! * Each key is a **base state plus a log of deltas** ([`Op::PutState`], [`Op::AppendDelta`]),
//!   so a small change to a big value is a small write. A `PutState` replaces the base and
//!   drops the key's deltas atomically; the node decides when to compact a key that way.
//!   At start the node [`scan`](Store::scan)s every key, in key order, and merges each base with
//!   its deltas.
//! * Writes are [`Batch`]es: atomic, applied in order. Metadata (node id, HLC high-water mark)
//!   is written with the same batches ([`Op::PutMeta`]), so it can be updated atomically with
//!   the data it describes.
//! * Durability: an acknowledged write is in the write-ahead log, so it survives `kill -9`;
//!   the [`FsyncPolicy`] decides what survives power loss. The [`GroupCommitter`] is the write
//!   path of the node: it turns concurrent commits into one write (and one fsync under
//!   `always`), on its own thread under `always` and on the committing tasks' threads otherwise.
//! * Two implementations of [`Store`] with the same semantics, checked by one conformance
//!   suite (`tests/conformance.rs`): [`RocksStore`] (column families `state`, `deltas`, `meta`,
//!   `raft_log`, `raft_state`; layout in [`rocks`]) and [`MemStore`], an in-memory twin with a
//!   crash model and failpoints for tests.
//!
//! ## Map
//! - [`batch`] — [`Op`], [`Batch`], [`KeyRecord`] and the record limits.
//! - [`store`] — the [`Store`] trait and typed metadata helpers ([`StoreExt`]).
//! - [`rocks`] — [`RocksStore`], the on-disk layout and its tuning.
//! - [`mem`] — [`MemStore`].
//! - [`group_commit`] — [`GroupCommitter`].
//! - [`options`] — [`StoreOptions`], [`FsyncPolicy`], [`CommitLimits`].
//! - [`error`] — [`StorageError`].

pub mod batch;
pub mod error;
pub mod group_commit;
mod keys;
pub mod mem;
pub mod options;
pub mod rocks;
pub mod store;

pub use batch::{Batch, KeyRecord, META_NAME_BYTES_MAX, Op, RECORD_BYTES_MAX};
pub use error::StorageError;
pub use group_commit::{CommitStats, GroupCommitter};
pub use mem::{Durability, MemStats, MemStore};
pub use options::{CommitLimits, FsyncPolicy, StoreOptions};
pub use rocks::{RocksStore, SCHEMA_VERSION};
pub use store::{Store, StoreExt};
