//! The [`Store`] trait both stores implement, and typed metadata helpers on top of it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch::{Batch, KeyRecord, Op};
use crate::error::{StorageError, display_key};

/// Durable key -> (base state, deltas) storage plus named metadata.
///
/// Semantics shared by [`RocksStore`](crate::RocksStore) and [`MemStore`](crate::MemStore)
/// (and checked by one conformance suite):
/// * keys are arbitrary bytes, the empty key included; scans are in byte order of the keys;
/// * a batch is atomic and its ops apply in order;
/// * a key exists while it has a base state or at least one delta; keys with deltas and no
///   base are returned like any other;
/// * an `Ok` write is in the write-ahead log and survives a crash of the process; with
///   `sync = true` (or after [`sync_wal`](Store::sync_wal)) it also survives power loss.
pub trait Store: Send + Sync + 'static {
    /// Writes `batch` atomically; with `sync`, the log is fsynced before returning. On error
    /// nothing of the batch is acknowledged (see [`StorageError`] for what survives).
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StorageError>;

    /// Writes `batch` like `write(batch, false)` if that can be done without waiting: returns
    /// `Ok(false)`, having written nothing, where the write would have to wait (a write stall
    /// of the store, or a long write of another thread holding it). The
    /// [`GroupCommitter`](crate::GroupCommitter) calls it from async tasks, which must not
    /// block, and queues the batch for its writer thread when it returns `false`. The default
    /// simply writes: a store that never stalls needs nothing else.
    fn try_write(&self, batch: &Batch) -> Result<bool, StorageError> {
        self.write(batch, false).map(|()| true)
    }

    /// Fsyncs everything written so far.
    fn sync_wal(&self) -> Result<(), StorageError>;

    /// Everything stored for `key`, or `None` if it has neither base nor deltas.
    fn get(&self, key: &[u8]) -> Result<Option<KeyRecord>, StorageError>;

    /// Calls `visit` once per key, in key order, each with its deltas in sequence order, from
    /// one consistent snapshot. Streams: only the current key is held in memory. Stops at the
    /// first error, from the store or from `visit`.
    fn scan(
        &self,
        visit: &mut dyn FnMut(KeyRecord) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;

    /// The metadata record `name`.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Roughly how many keys are stored; a sizing hint, not a count.
    fn key_count_estimate(&self) -> u64;
}

/// Typed metadata on any [`Store`]: values are encoded with the `crdt` crate's versioned
/// MessagePack encoding, so their format can evolve like the CRDT state's.
pub trait StoreExt: Store {
    /// Reads and decodes the metadata record `name`. An undecodable record is
    /// [`StorageError::Corrupt`] in column family `meta`.
    fn get_meta_as<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError> {
        let Some(bytes) = self.get_meta(name)? else {
            return Ok(None);
        };
        crdt::encoding::decode(&bytes)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                cf: "meta",
                key: display_key(name.as_bytes()),
                detail: e.to_string(),
            })
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

impl Op {
    /// A [`Op::PutMeta`] of `value` in the encoding [`StoreExt::get_meta_as`] reads.
    pub fn put_meta_as<T: Serialize + ?Sized>(name: impl Into<String>, value: &T) -> Op {
        Op::PutMeta {
            name: name.into(),
            value: crdt::encoding::encode(value),
        }
    }
}
