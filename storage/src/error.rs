//! The error type at the `storage` crate boundary. Every variant says what happened to the
//! stored state, because the node's answer to a client depends on it: a write that was refused
//! before reaching the log can be reported as failed, while a failed fsync means earlier
//! acknowledged writes are applied but may not survive power loss.

use std::path::PathBuf;

use thiserror::Error;

/// Everything the storage layer can report. Cloneable so that one failed group commit can
/// answer each of its waiters with the same error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorageError {
    /// A configuration value is out of range; no store was opened and nothing was written.
    #[error("invalid storage option `{key}`: {reason}; nothing was opened")]
    InvalidOption {
        /// The option's name as it appears in the config file (`storage.<key>`).
        key: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// RocksDB could not open the database; no store was opened and crdtkv wrote nothing.
    #[error("cannot open the store at {path}: {reason}; nothing was opened")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// RocksDB's explanation.
        reason: String,
    },

    /// The directory holds a store of another schema version; it was not opened and crdtkv
    /// wrote nothing to it.
    #[error(
        "the store at {path} has schema version {found}, this build reads version {supported}; \
         it was not opened"
    )]
    IncompatibleSchema {
        /// The database directory.
        path: PathBuf,
        /// The version recorded in the store.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// The directory holds a RocksDB database that is not a crdtkv store (unknown column
    /// families, or data without a schema version); it was not opened and crdtkv wrote nothing.
    #[error("the database at {path} is not a crdtkv store: {reason}; it was not opened")]
    NotAStore {
        /// The database directory.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },

    /// A batch was refused before it reached the log because one of its records breaks a
    /// limit; nothing of the batch was written.
    #[error("record refused: {reason}; nothing of the batch was written")]
    InvalidRecord {
        /// Which record and which limit.
        reason: String,
    },

    /// The batch could not be written. It was not acknowledged and not applied; because a
    /// batch is atomic, after a restart it is found either entirely or not at all.
    #[error("write failed: {reason}; the batch was not acknowledged")]
    Write {
        /// RocksDB's (or a test failpoint's) explanation.
        reason: String,
    },

    /// Syncing the log to disk failed. Writes acknowledged before are applied and survive a
    /// process crash, but may not survive power loss.
    #[error("fsync of the write-ahead log failed: {reason}")]
    Sync {
        /// RocksDB's explanation.
        reason: String,
    },

    /// A read failed; nothing was changed.
    #[error("read failed: {reason}; nothing was changed")]
    Read {
        /// RocksDB's explanation.
        reason: String,
    },

    /// A stored record is unreadable (bad key encoding, checksum mismatch, undecodable value).
    /// Nothing was changed; the store needs repair or a restore from a peer or backup.
    #[error("corrupt record in column family `{cf}` at key {key}: {detail}; nothing was changed")]
    Corrupt {
        /// The column family (`state`, `deltas`, `meta`, ...).
        cf: &'static str,
        /// The key, escaped for display (`"\x00abc"`), or `?` when RocksDB did not say.
        key: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The group committer has shut down; the batch was not written.
    #[error("the storage writer has shut down; the batch was not written")]
    Closed,
}

impl StorageError {
    /// A corrupt value found by the caller while decoding a record this crate returned, for
    /// example when a scan visitor cannot decode a key's state. Lets the node report it with
    /// the same variant and key formatting as corruption found by storage itself.
    pub fn corrupt_value(cf: &'static str, key: &[u8], detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            cf,
            key: display_key(key),
            detail: detail.to_string(),
        }
    }
}

/// Formats a binary key for messages: printable ASCII as is, everything else escaped, quoted.
pub fn display_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for &b in key {
        out.extend(std::ascii::escape_default(b).map(char::from));
    }
    out.push('"');
    out
}

/// Maps a RocksDB read error: checksum and format failures become [`StorageError::Corrupt`]
/// so that the caller can tell a damaged disk from a transient IO error.
pub(crate) fn read_error(cf: &'static str, key: Option<&[u8]>, e: rocksdb::Error) -> StorageError {
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StorageError::Corrupt {
            cf,
            key: key.map_or_else(|| "?".to_owned(), display_key),
            detail: e.into_string(),
        },
        _ => StorageError::Read {
            reason: e.into_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_for_display() {
        assert_eq!(display_key(b"a\x00\xff\""), r#""a\x00\xff\"""#);
        assert_eq!(display_key(b""), r#""""#);
    }

    #[test]
    fn corruption_is_told_apart_from_io_errors() {
        let e = StorageError::corrupt_value("state", b"k", "bad");
        assert!(matches!(e, StorageError::Corrupt { cf: "state", .. }));
        assert!(e.to_string().contains("\"k\""));
    }
}
