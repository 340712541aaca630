//! Storage configuration: the `[storage]` section of the node's config file. Every value has a
//! default in code, sizes are in bytes with the unit last, and [`StoreOptions::validate`] names
//! the offending key.
//!
//! The defaults aim at the node's workload: many small writes, reads served from the node's
//! memory (so the block cache can be small), and a resident size that is compared with
//! redis-server holding the same data.

use serde::{Deserialize, Serialize};

use crate::error::StorageError;

/// When the write-ahead log is fsynced, as Redis's `appendfsync`. In every policy a write is
/// acknowledged only once it is in the log (the OS page cache), so it survives `kill -9` of the
/// process; the policy decides what survives power loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every write group is fsynced before it is acknowledged; concurrent writers share one
    /// fsync (group commit). Nothing acknowledged is lost on power failure.
    Always,
    /// The log is fsynced about once per second; power loss may lose the last second.
    #[default]
    EverySec,
    /// The log is never fsynced explicitly (only on clean shutdown); the OS decides.
    Never,
}

/// Options of a RocksDB store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreOptions {
    /// fsync policy of the group committer (`"always"`, `"everysec"`, `"never"`).
    pub fsync: FsyncPolicy,
    /// Size of one memtable of the `state` and `deltas` column families, in bytes. Bigger means
    /// fewer, larger flushes (less write amplification) and more memory.
    pub write_buffer_bytes: usize,
    /// Cap on the memory of all memtables together, in bytes; reaching it forces a flush. This is
    /// what bounds RocksDB's share of the node's resident size under a write burst.
    pub write_buffers_total_bytes: usize,
    /// Size of the block cache shared by all column families, in bytes (index and filter blocks
    /// included). Small on purpose: the node reads keys from memory, RocksDB is read at start.
    pub block_cache_bytes: usize,
    /// Background flush and compaction threads.
    pub max_background_jobs: i32,
    /// Size of the write-ahead logs after which RocksDB flushes the column families that keep
    /// the oldest log alive, in bytes. Bounds disk use and replay time at start.
    pub wal_total_bytes_max: u64,
    /// Table files kept open (`-1`: all). Each open file holds a little memory.
    pub open_files_max: i32,
    /// Group-commit limits.
    pub group_commit: CommitLimits,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            write_buffer_bytes: 16 << 20,
            write_buffers_total_bytes: 64 << 20,
            block_cache_bytes: 8 << 20,
            max_background_jobs: 2,
            wal_total_bytes_max: 128 << 20,
            open_files_max: 512,
            group_commit: CommitLimits::default(),
        }
    }
}

impl StoreOptions {
    /// Checks every value; the error names the key as written in the config file.
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad =
            |key: &'static str, reason: String| Err(StorageError::InvalidOption { key, reason });
        if self.write_buffer_bytes < 64 << 10 {
            return bad("write_buffer_bytes", "must be at least 65536".into());
        }
        if self.write_buffers_total_bytes < self.write_buffer_bytes {
            return bad(
                "write_buffers_total_bytes",
                "must be at least write_buffer_bytes".into(),
            );
        }
        if self.max_background_jobs < 1 {
            return bad("max_background_jobs", "must be at least 1".into());
        }
        if self.wal_total_bytes_max < self.write_buffer_bytes as u64 {
            return bad(
                "wal_total_bytes_max",
                "must be at least write_buffer_bytes".into(),
            );
        }
        if self.open_files_max != -1 && self.open_files_max < 16 {
            return bad(
                "open_files_max",
                "must be -1 (unlimited) or at least 16".into(),
            );
        }
        self.group_commit.validate()
    }
}

/// Limits of the [`GroupCommitter`](crate::GroupCommitter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitLimits {
    /// Batches waiting for the writer thread (including the group being written) before
    /// `commit` waits for room: back-pressure instead of unbounded memory.
    pub queue_len_max: usize,
    /// Ops in one merged write group. A single larger batch is still written, alone.
    pub group_ops_max: usize,
    /// Payload bytes in one merged write group. A single larger batch is still written, alone.
    pub group_bytes_max: usize,
    /// Interval of the background fsync under `everysec`, in milliseconds.
    pub sync_interval_ms: u64,
}

impl Default for CommitLimits {
    fn default() -> Self {
        Self {
            queue_len_max: 4096,
            group_ops_max: 8192,
            group_bytes_max: 4 << 20,
            sync_interval_ms: 1000,
        }
    }
}

impl CommitLimits {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), StorageError> {
        // A tokio semaphore holds at most `Semaphore::MAX_PERMITS` permits.
        if self.queue_len_max > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(StorageError::InvalidOption {
                key: "group_commit.queue_len_max",
                reason: format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
            });
        }
        let positive = [
            ("group_commit.queue_len_max", self.queue_len_max as u64),
            ("group_commit.group_ops_max", self.group_ops_max as u64),
            ("group_commit.group_bytes_max", self.group_bytes_max as u64),
            ("group_commit.sync_interval_ms", self.sync_interval_ms),
        ];
        match positive.into_iter().find(|&(_, v)| v == 0) {
            Some((key, _)) => Err(StorageError::InvalidOption {
                key,
                reason: "must be at least 1".into(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_policies_are_lowercase() {
        StoreOptions::default().validate().unwrap();
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::EverySec);
        let json = serde_json::to_string(&[
            FsyncPolicy::Always,
            FsyncPolicy::EverySec,
            FsyncPolicy::Never,
        ]);
        assert_eq!(json.unwrap(), r#"["always","everysec","never"]"#);
    }

    #[test]
    fn unknown_keys_are_rejected_and_bad_values_named() {
        let err = serde_json::from_str::<StoreOptions>(r#"{"fsinc":"always"}"#).unwrap_err();
        assert!(err.to_string().contains("fsinc"));
        let parsed: StoreOptions = serde_json::from_str(r#"{"fsync":"always"}"#).unwrap();
        assert_eq!(parsed.fsync, FsyncPolicy::Always);
        let opts = StoreOptions {
            max_background_jobs: 0,
            ..StoreOptions::default()
        };
        assert!(matches!(
            opts.validate(),
            Err(StorageError::InvalidOption {
                key: "max_background_jobs",
                ..
            })
        ));
        let mut opts = StoreOptions::default();
        opts.group_commit.queue_len_max = 0;
        assert!(matches!(
            opts.validate(),
            Err(StorageError::InvalidOption {
                key: "group_commit.queue_len_max",
                ..
            })
        ));
    }
}
