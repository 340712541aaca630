//! The full scan: one pass over `state` and `deltas` together, merge-joined on the encoded
//! key. Both encodings sort like user keys and a delta key starts with its key's `state`
//! encoding, so comparing a state key with a delta key's prefix orders them by user key; at
//! any time only the current key's record is in memory.

use rocksdb::{DB, DBRawIterator, ReadOptions};

use super::{CF_DELTAS, CF_STATE, cf};
use crate::batch::KeyRecord;
use crate::error::{StorageError, display_key, read_error};
use crate::keys;

/// Calls `visit` for every key in order, from one snapshot.
pub(super) fn merge_join(
    db: &DB,
    visit: &mut dyn FnMut(KeyRecord) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let snapshot = db.snapshot();
    // A bulk scan must not evict what little the block cache holds.
    let opts = || {
        let mut o = ReadOptions::default();
        o.fill_cache(false);
        o
    };
    let mut states = snapshot.raw_iterator_cf_opt(cf(db, CF_STATE), opts());
    let mut deltas = snapshot.raw_iterator_cf_opt(cf(db, CF_DELTAS), opts());
    states.seek_to_first();
    deltas.seek_to_first();
    loop {
        let state_enc = current(&states, CF_STATE)?;
        let delta_enc = match current(&deltas, CF_DELTAS)? {
            Some(raw) => Some(&raw[..delta_prefix(raw)?]),
            None => None,
        };
        let enc: Vec<u8> = match (state_enc, delta_enc) {
            (None, None) => return Ok(()),
            (Some(s), None) => s.to_vec(),
            (None, Some(d)) => d.to_vec(),
            (Some(s), Some(d)) => s.min(d).to_vec(),
        };
        let has_state = state_enc == Some(enc.as_slice());
        let key = keys::decode_state_key(&enc).map_err(|detail| StorageError::Corrupt {
            cf: if has_state { CF_STATE } else { CF_DELTAS },
            key: display_key(&enc),
            detail,
        })?;
        let mut record = KeyRecord {
            key,
            ..KeyRecord::default()
        };
        if has_state {
            let raw = states.value().unwrap_or_default();
            let (version, state) =
                super::versioned::decode(raw).map_err(|detail| StorageError::Corrupt {
                    cf: CF_STATE,
                    key: display_key(&record.key),
                    detail,
                })?;
            record.state = Some(state.to_vec());
            record.state_version = version;
            states.next();
        }
        while let Some(raw) = current(&deltas, CF_DELTAS)? {
            let (prefix, seq) = keys::decode_delta_key(raw).map_err(|d| corrupt(raw, d))?;
            if raw[..prefix] != enc[..] {
                break;
            }
            record
                .deltas
                .push((seq, deltas.value().unwrap_or_default().to_vec()));
            deltas.next();
        }
        visit(record)?;
    }
}

/// The iterator's current key, or `None` at the end; an iteration error is returned.
fn current<'a>(
    it: &'a DBRawIterator<'_>,
    name: &'static str,
) -> Result<Option<&'a [u8]>, StorageError> {
    match it.key() {
        Some(key) => Ok(Some(key)),
        None => it
            .status()
            .map(|()| None)
            .map_err(|e| read_error(name, None, e)),
    }
}

/// Length of the encoded-user-key prefix of a delta key.
fn delta_prefix(raw: &[u8]) -> Result<usize, StorageError> {
    keys::decode_delta_key(raw)
        .map(|(prefix, _)| prefix)
        .map_err(|d| corrupt(raw, d))
}

fn corrupt(raw: &[u8], detail: String) -> StorageError {
    StorageError::Corrupt {
        cf: CF_DELTAS,
        key: display_key(raw),
        detail,
    }
}
