//! Committed local writes to replication.

use gossip::replication::driver::ReplicationHandle;

use crate::state::DeltaSink;
use crate::write_set::KeyDelta;

/// Hands every committed batch's deltas to the replication driver (a bounded queue that never
/// waits: a full queue drops and counts them, and anti-entropy repairs).
#[derive(Debug)]
pub struct ReplicationSink {
    replication: ReplicationHandle,
}

impl ReplicationSink {
    /// A sink into `replication`.
    pub fn new(replication: ReplicationHandle) -> Self {
        ReplicationSink { replication }
    }
}

impl DeltaSink for ReplicationSink {
    fn publish(&self, deltas: Vec<KeyDelta>) {
        if !self.replication.submit(deltas) {
            tracing::debug!("replication queue full; anti-entropy will ship these writes");
        }
    }
}
