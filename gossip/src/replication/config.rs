//! Replication timings and limits, named with their unit last, defaulted in code.

use serde::{Deserialize, Serialize};

use crate::digest::{LEAF_BITS_DEFAULT, LEAF_BITS_MAX};
use crate::error::{Error, Result};

/// Configuration of replication (the `[replication]` section of a node config). Every node of a
/// cluster should use the same values: limits are checked on receipt against the receiver's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// `log2` of the number of anti-entropy buckets; must match the node's keyspace sharding and
    /// every peer. Default 12 (4096 buckets).
    pub leaf_bits: u32,
    /// A pending delta batch is sent once its encoded deltas reach this size. Default 65536.
    pub delta_batch_bytes_max: usize,
    /// A pending delta batch is sent once it holds this many keys. Default 4096.
    pub delta_batch_keys_max: usize,
    /// Under load, deltas wait at most this long to be batched; a delta arriving after a quiet
    /// period (no batch sent for this long) is sent at once. Default 2.
    pub delta_batch_delay_ms: u64,
    /// While no batch is sent, a heartbeat carrying the freshness watermark goes to every live
    /// peer this often. Default 250.
    pub heartbeat_period_ms: u64,
    /// How often anti-entropy runs with one peer (chosen at random among reachable peers,
    /// preferring those out of sync). Default 1000.
    pub ae_period_ms: u64,
    /// An anti-entropy session with no progress for this long is abandoned. Default 10000.
    pub ae_session_timeout_ms: u64,
    /// Most keys (or digests) in one anti-entropy message. Default 4096.
    pub ae_keys_per_message_max: usize,
    /// Most bytes of states in one anti-entropy message (a single larger state is still sent
    /// alone). Default 1048576.
    pub ae_bytes_per_message_max: usize,
    /// Requests one anti-entropy session keeps in flight. Default 4.
    pub ae_requests_inflight_max: usize,
    /// A gap in a peer's delta stream (a lost batch) older than this makes the peer out of sync
    /// and triggers anti-entropy with it. Default 1000.
    pub gap_repair_after_ms: u64,
    /// Out-of-order batch numbers remembered per peer; beyond it the link counts as broken
    /// until anti-entropy. Default 1024.
    pub reorder_window_max: usize,
    /// Longest key accepted from a peer. Default 65536.
    pub key_bytes_max: usize,
    /// Whether tombstones are garbage-collected at all. Default `true`. Safe with respect to
    /// keys written again after collection because `crdt` never reuses a node's dots, text ids
    /// or counter entries on such a key (its fresh starts, see `crdt::causal`);
    /// `gossip/tests/simulation.rs` checks it.
    pub tombstone_gc: bool,
    /// How often tombstone garbage collection runs. Default 10000.
    pub tombstone_gc_period_ms: u64,
    /// A tombstone is dropped only this long after every member was proved to hold it, so that
    /// no message sent before that proof is still in flight; a dropped tombstone is refused
    /// from peers for as long. Must exceed the transport's message timeout. Default 60000.
    pub tombstone_gc_grace_ms: u64,
    /// Most tombstones dropped per GC run. Default 10000.
    pub tombstone_gc_batch_max: usize,
    /// Capacity of the driver's channel of local deltas (one item per committed batch of the
    /// node); when full, deltas are dropped, counted, and repaired by anti-entropy. Default 4096.
    pub local_queue_len_max: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            leaf_bits: LEAF_BITS_DEFAULT,
            delta_batch_bytes_max: 64 * 1024,
            delta_batch_keys_max: 4096,
            delta_batch_delay_ms: 2,
            heartbeat_period_ms: 250,
            ae_period_ms: 1_000,
            ae_session_timeout_ms: 10_000,
            ae_keys_per_message_max: 4096,
            ae_bytes_per_message_max: 1024 * 1024,
            ae_requests_inflight_max: 4,
            gap_repair_after_ms: 1_000,
            reorder_window_max: 1024,
            key_bytes_max: 64 * 1024,
            tombstone_gc: true,
            tombstone_gc_period_ms: 10_000,
            tombstone_gc_grace_ms: 60_000,
            tombstone_gc_batch_max: 10_000,
            local_queue_len_max: 4096,
        }
    }
}

impl ReplicationConfig {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.to_string(),
            })
        };
        if self.leaf_bits > LEAF_BITS_MAX {
            return bad("leaf_bits", "must be at most 16");
        }
        let positive: [(&'static str, u64); 14] = [
            ("delta_batch_bytes_max", self.delta_batch_bytes_max as u64),
            ("delta_batch_keys_max", self.delta_batch_keys_max as u64),
            ("heartbeat_period_ms", self.heartbeat_period_ms),
            ("ae_period_ms", self.ae_period_ms),
            ("ae_session_timeout_ms", self.ae_session_timeout_ms),
            (
                "ae_bytes_per_message_max",
                self.ae_bytes_per_message_max as u64,
            ),
            (
                "ae_requests_inflight_max",
                self.ae_requests_inflight_max as u64,
            ),
            ("gap_repair_after_ms", self.gap_repair_after_ms),
            ("reorder_window_max", self.reorder_window_max as u64),
            ("key_bytes_max", self.key_bytes_max as u64),
            ("tombstone_gc_period_ms", self.tombstone_gc_period_ms),
            ("tombstone_gc_grace_ms", self.tombstone_gc_grace_ms),
            ("tombstone_gc_batch_max", self.tombstone_gc_batch_max as u64),
            ("local_queue_len_max", self.local_queue_len_max as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(key, "must be at least 1");
        }
        // A key page must be able to hold every child digest of one node (16).
        if self.ae_keys_per_message_max < 16 {
            return bad("ae_keys_per_message_max", "must be at least 16");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        ReplicationConfig::default().validate().unwrap();
        let config = ReplicationConfig {
            leaf_bits: 17,
            ..ReplicationConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("leaf_bits")
        );
        let config = ReplicationConfig {
            ae_period_ms: 0,
            ..ReplicationConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("ae_period_ms")
        );
    }
}
