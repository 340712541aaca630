//! What the node writes ([`Op`], gathered in an atomic [`Batch`]) and what it reads back
//! ([`KeyRecord`]).
//!
//! Each key is stored as a *base state plus a log of deltas*, so that a small change to a big
//! value (one member added to a set of a million) costs a small write:
//!
//! * [`Op::AppendDelta`] adds one delta under a per-key sequence number chosen by the node;
//! * [`Op::PutState`] writes a full state that replaces the base and drops every delta of the
//!   key in the same atomic write — this is how the node compacts a key's log, and it decides
//!   when (it knows the sizes);
//! * at load, the node receives the base and the deltas in sequence order and merges them.
//!
//! Values are opaque bytes here (the `crdt` crate's versioned encoding).

use crate::error::{StorageError, display_key};

/// Largest key, value or meta name in one record, in bytes. RocksDB's write batch stores
/// lengths as 32-bit integers and its C API silently drops a record that does not fit, so a
/// larger record must be refused before it gets there.
pub const RECORD_BYTES_MAX: usize = u32::MAX as usize;

/// Largest metadata name, in bytes. Metadata holds a few small named records (node id, HLC
/// high-water mark); a long name is a bug in the caller.
pub const META_NAME_BYTES_MAX: usize = 256;

/// One change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets the base state of `key` — unless a base with a higher `version` is already stored —
    /// and deletes its deltas with a sequence number below `version`, atomically with the rest
    /// of the batch.
    ///
    /// Why versions: the node's connections commit their batches independently, so two writes
    /// of one key can reach the store in the opposite order to the one in which they happened.
    /// The writer numbers every record of a key from one growing sequence; keeping the base with
    /// the highest version makes the stored base never go back in time, and a delta newer than a
    /// late base survives it.
    PutState {
        /// The user key (any bytes, empty included).
        key: Vec<u8>,
        /// The full encoded state.
        state: Vec<u8>,
        /// The key's sequence number at this state: it includes every delta below it.
        version: u64,
    },
    /// Stores one delta of `key` under `seq`. Deltas are returned in ascending `seq` order; a
    /// second delta with the same `seq` replaces the first.
    AppendDelta {
        /// The user key.
        key: Vec<u8>,
        /// The node's per-key sequence number.
        seq: u64,
        /// The encoded delta.
        delta: Vec<u8>,
    },
    /// Deletes the base state and all deltas of `key` (garbage collection of a tombstone).
    DeleteKey {
        /// The user key.
        key: Vec<u8>,
    },
    /// Sets a metadata record.
    PutMeta {
        /// The record's name, at most [`META_NAME_BYTES_MAX`] bytes.
        name: String,
        /// Its value.
        value: Vec<u8>,
    },
    /// Deletes a metadata record (no error if absent).
    DeleteMeta {
        /// The record's name.
        name: String,
    },
}

impl Op {
    /// Payload bytes of this op (keys, names, values and the sequence number): the measure
    /// used for group-commit limits.
    pub fn bytes(&self) -> usize {
        match self {
            Self::PutState { key, state, .. } => key.len() + state.len() + 8,
            Self::AppendDelta { key, delta, .. } => key.len() + delta.len() + 8,
            Self::DeleteKey { key } => key.len(),
            Self::PutMeta { name, value } => name.len() + value.len(),
            Self::DeleteMeta { name } => name.len(),
        }
    }

    /// Checks the record limits. Both stores call this for every op before writing anything,
    /// so a batch with one bad op writes nothing.
    pub fn validate(&self) -> Result<(), StorageError> {
        let (key, value) = match self {
            Self::PutState { key, state, .. } => (key.as_slice(), state.len() + 8),
            Self::AppendDelta { key, delta, .. } => (key.as_slice(), delta.len()),
            Self::DeleteKey { key } => (key.as_slice(), 0),
            Self::PutMeta { name, value } => return check_meta(name, value.len()),
            Self::DeleteMeta { name } => return check_meta(name, 0),
        };
        check_record(key, value)
    }
}

/// The record-size rule, separate from [`Op`] so that it can be tested without allocating
/// gigabytes.
fn check_record(key: &[u8], value_bytes: usize) -> Result<(), StorageError> {
    // The deltas key adds the escape bytes, terminator and sequence number; keep headroom.
    let key_bytes = key.len().saturating_mul(2).saturating_add(16);
    if key_bytes > RECORD_BYTES_MAX || value_bytes > RECORD_BYTES_MAX {
        return Err(StorageError::InvalidRecord {
            reason: format!(
                "key of {} bytes or value of {value_bytes} bytes exceeds RECORD_BYTES_MAX \
                 ({RECORD_BYTES_MAX})",
                key.len()
            ),
        });
    }
    Ok(())
}

fn check_meta(name: &str, value_bytes: usize) -> Result<(), StorageError> {
    if name.len() > META_NAME_BYTES_MAX {
        return Err(StorageError::InvalidRecord {
            reason: format!(
                "meta name {} of {} bytes exceeds META_NAME_BYTES_MAX ({META_NAME_BYTES_MAX})",
                display_key(&name.as_bytes()[..32]),
                name.len()
            ),
        });
    }
    check_record(name.as_bytes(), value_bytes)
}

/// Ops written together: all of them or none, in order (a later op on the same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
    bytes: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an op at the end.
    pub fn push(&mut self, op: Op) {
        self.bytes += op.bytes();
        self.ops.push(op);
    }

    /// Adds `op` at the end; a base replaces the base or delta of its key just before it (it
    /// includes them, and its deletion of older deltas would drop that delta anyway). Deltas
    /// are folded before they are encoded, by [`append_to_last_delta`](Self::append_to_last_delta):
    /// consecutive writes to one key, a pipeline of `SADD`s to one set, then cost one record.
    pub fn push_folding(&mut self, op: Op) {
        if let Op::PutState { key, .. } = &op
            && let Some(last) = self.ops.last_mut()
            && let Op::PutState { key: last_key, .. } | Op::AppendDelta { key: last_key, .. } =
                &*last
            && last_key == key
        {
            self.bytes = self.bytes - last.bytes() + op.bytes();
            *last = op;
            return;
        }
        self.push(op);
    }

    /// Appends to the last op in place, when it is a delta record of `key`: `append` writes
    /// the next delta onto that record's run, or returns false to refuse (whatever it wrote is
    /// then undone). Returns how many bytes the record grew by, or `None` if nothing was
    /// appended (push the delta as an op of its own). The delta needs neither a buffer nor a
    /// key copy of its own.
    pub fn append_to_last_delta(
        &mut self,
        key: &[u8],
        append: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> Option<usize> {
        let Some(Op::AppendDelta {
            key: last,
            delta: run,
            ..
        }) = self.ops.last_mut()
        else {
            return None;
        };
        if last.as_slice() != key {
            return None;
        }
        let before = run.len();
        if !append(run) {
            run.truncate(before);
            return None;
        }
        let grown = run.len() - before;
        self.bytes += grown;
        Some(grown)
    }

    /// Moves every op of `other` to the end of this batch (no copy of keys or values).
    pub fn extend(&mut self, other: Batch) {
        self.bytes += other.bytes;
        if self.ops.is_empty() {
            self.ops = other.ops;
        } else {
            self.ops.extend(other.ops);
        }
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch has no op.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Payload bytes of all ops (see [`Op::bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The ops, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Checks every op's limits (see [`Op::validate`]).
    pub fn validate(&self) -> Result<(), StorageError> {
        self.ops.iter().try_for_each(Op::validate)
    }
}

impl From<Vec<Op>> for Batch {
    fn from(ops: Vec<Op>) -> Self {
        let bytes = ops.iter().map(Op::bytes).sum();
        Self { ops, bytes }
    }
}

impl FromIterator<Op> for Batch {
    fn from_iter<I: IntoIterator<Item = Op>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl IntoIterator for Batch {
    type Item = Op;
    type IntoIter = std::vec::IntoIter<Op>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.into_iter()
    }
}

/// Everything stored for one key. At least one of `state` and `deltas` is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRecord {
    /// The user key.
    pub key: Vec<u8>,
    /// The base state, if one was written since the key was last deleted.
    pub state: Option<Vec<u8>>,
    /// The version of the base (0 without one); the writer resumes its sequence above it.
    pub state_version: u64,
    /// The deltas not covered by the base, in ascending sequence number. (A delta written
    /// after a base with a higher version may remain; it is redundant, never missing.)
    pub deltas: Vec<(u64, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(key: &[u8], seq: u64, d: &[u8]) -> Op {
        Op::AppendDelta {
            key: key.to_vec(),
            seq,
            delta: d.to_vec(),
        }
    }

    fn state(key: &[u8], version: u64, s: &[u8]) -> Op {
        Op::PutState {
            key: key.to_vec(),
            state: s.to_vec(),
            version,
        }
    }

    #[test]
    fn consecutive_records_of_one_key_fold() {
        let join = |d: &'static [u8]| {
            move |run: &mut Vec<u8>| {
                run.extend_from_slice(d);
                true
            }
        };
        let mut b = Batch::new();
        b.push_folding(delta(b"s", 1, b"ab"));
        assert_eq!(b.append_to_last_delta(b"s", join(b"cd")), Some(2));
        assert_eq!(b.ops(), &[delta(b"s", 1, b"abcd")]);
        // Another key, or a refused join, starts a new record.
        assert_eq!(b.append_to_last_delta(b"t", join(b"x")), None);
        b.push_folding(delta(b"t", 3, b"x"));
        assert_eq!(b.append_to_last_delta(b"t", |_| false), None);
        b.push_folding(delta(b"t", 4, b"y"));
        assert_eq!(b.len(), 3);
        // A base replaces the delta (or base) of its key just before it.
        b.push_folding(state(b"t", 5, b"full"));
        b.push_folding(state(b"t", 6, b"fuller"));
        assert_eq!(b.ops().last(), Some(&state(b"t", 6, b"fuller")));
        assert_eq!(b.len(), 3);
        assert_eq!(b.bytes(), b.ops().iter().map(Op::bytes).sum::<usize>());
    }

    #[test]
    fn a_delta_is_appended_in_place_only_to_a_delta_record_of_its_key() {
        let mut b = Batch::new();
        let append = |run: &mut Vec<u8>| {
            run.extend_from_slice(b"cd");
            true
        };
        assert_eq!(b.append_to_last_delta(b"s", append), None);
        b.push(delta(b"s", 1, b"ab"));
        assert_eq!(b.append_to_last_delta(b"s", append), Some(2));
        assert_eq!(b.ops(), &[delta(b"s", 1, b"abcd")]);
        // Another key, a refusal (whatever it wrote is undone) or a base: nothing appended.
        assert_eq!(b.append_to_last_delta(b"t", append), None);
        let refuse = |run: &mut Vec<u8>| {
            run.push(0);
            false
        };
        assert_eq!(b.append_to_last_delta(b"s", refuse), None);
        b.push(state(b"u", 2, b"full"));
        assert_eq!(b.append_to_last_delta(b"u", append), None);
        assert_eq!(b.ops(), &[delta(b"s", 1, b"abcd"), state(b"u", 2, b"full")]);
        assert_eq!(b.bytes(), b.ops().iter().map(Op::bytes).sum::<usize>());
    }

    #[test]
    fn bytes_are_tracked_through_push_and_extend() {
        let mut a = Batch::new();
        a.push(Op::PutState {
            key: b"k".to_vec(),
            state: vec![0; 10],
            version: 3,
        });
        let b: Batch = [
            Op::AppendDelta {
                key: b"k".to_vec(),
                seq: 1,
                delta: vec![0; 5],
            },
            Op::DeleteMeta { name: "n".into() },
        ]
        .into_iter()
        .collect();
        assert_eq!(b.bytes(), 1 + 5 + 8 + 1);
        a.extend(b);
        assert_eq!((a.len(), a.bytes()), (3, 19 + 14 + 1));
        assert!(!a.is_empty() && Batch::new().is_empty());
    }

    #[test]
    fn limits_are_enforced() {
        assert!(check_record(b"k", RECORD_BYTES_MAX).is_ok());
        assert!(matches!(
            check_record(b"k", RECORD_BYTES_MAX + 1),
            Err(StorageError::InvalidRecord { .. })
        ));
        let long = "n".repeat(META_NAME_BYTES_MAX + 1);
        assert!(
            Op::PutMeta {
                name: long.clone(),
                value: vec![]
            }
            .validate()
            .is_err()
        );
        assert!(Op::DeleteMeta { name: long }.validate().is_err());
        let ok = "n".repeat(META_NAME_BYTES_MAX);
        assert!(
            Op::PutMeta {
                name: ok,
                value: vec![]
            }
            .validate()
            .is_ok()
        );
    }
}
