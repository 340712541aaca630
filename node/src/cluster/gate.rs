//! The start gate: a node that may have come back with less than it acknowledged before refuses
//! writes until it has caught up with the cluster.
//!
//! Why: a key's counter entries and dots of this node live in the CRDT state. A node restarted
//! from an old data directory (a restored backup, or a crash under `fsync = "never"`) may hold
//! an older state of a key than its peers; writing to it then would reuse counter values and
//! dots the peers already hold — lost increments, elements that never converge. Once
//! anti-entropy has completed with every member it knows
//! ([`gossip::replication::Replicator::caught_up`]), the node holds everything it ever wrote
//! that survives anywhere, and writes are safe.
//!
//! A node that loaded nothing is gated too: it may be a node whose data directory was wiped,
//! and although its new dots and text ids start fresh (`crdt::causal` fresh starts), a fresh
//! counter epoch *replaces* the node's older tally of a key on every replica — the increments
//! it acknowledged before the wipe would be lost. A new cluster's nodes catch up with each
//! other within a few anti-entropy periods. The gate also opens after
//! `cluster.startup_sync_timeout_ms` when peers stay unreachable (logged): availability wins
//! over the rare restored-backup case, and an operator can set a longer timeout.
//! Reads are never gated. Once open, the gate stays open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gossip::replication::driver::ReplicationHandle;

/// The error a gated write gets (Redis' `LOADING` class, which clients know to retry).
pub const GATED: &str =
    "LOADING crdtkv is catching up with the cluster after a restart; writes resume once it has";

/// Whether writes are accepted.
#[derive(Debug)]
pub struct WriteGate {
    open: AtomicBool,
}

impl WriteGate {
    /// A gate that is already open (standalone nodes, `startup_sync_timeout_ms = 0`).
    pub fn open() -> Self {
        WriteGate {
            open: AtomicBool::new(true),
        }
    }

    /// A closed gate.
    pub fn closed() -> Self {
        WriteGate {
            open: AtomicBool::new(false),
        }
    }

    /// Whether writes are accepted.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the gate for good.
    pub fn set_open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Opens the gate once `replication` has caught up, or after `timeout`. Returns at once if
    /// the gate is open.
    pub async fn open_when_caught_up(&self, replication: ReplicationHandle, timeout: Duration) {
        if self.is_open() {
            return;
        }
        let mut status = replication.watch();
        let caught_up = async {
            loop {
                if status.borrow_and_update().caught_up {
                    return true;
                }
                if status.changed().await.is_err() {
                    return false;
                }
            }
        };
        match tokio::time::timeout(timeout, caught_up).await {
            Ok(true) => tracing::info!("caught up with the cluster; accepting writes"),
            Ok(false) => tracing::warn!("replication stopped; accepting writes"),
            Err(_) => tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "not caught up with every member within cluster.startup_sync_timeout_ms; \
                 accepting writes anyway"
            ),
        }
        self.set_open();
    }
}
