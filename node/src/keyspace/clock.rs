//! The node's hybrid logical clock, with a persisted ceiling so timestamps stay monotonic across
//! restarts even if the wall clock goes back.
//!
//! Persisting the clock on every write would cost a metadata write per command. Instead the node
//! persists a *ceiling* a little ahead of the clock (like CockroachDB's HLC upper bound): a write
//! whose timestamp reaches the ceiling also persists a new ceiling `CEILING_LEASE_MS` further on,
//! in the same batch, so the ceiling is durable before the write is acknowledged. After a restart
//! the clock resumes at the ceiling, above every timestamp issued before the crash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crdt::{Hlc, NodeId, Timestamp};
use parking_lot::Mutex;
use storage::Op;

/// Metadata record holding the clock ceiling (milliseconds, `crdt` encoding of a `u64`).
pub const CEILING_META: &str = "hlc_ceiling_ms";

/// How far ahead of the clock the persisted ceiling is set.
pub const CEILING_LEASE_MS: u64 = 10_000;

/// The node's clock: an [`Hlc`] behind a mutex (held for nanoseconds) and its ceiling.
#[derive(Debug)]
pub struct NodeClock {
    hlc: Mutex<Hlc>,
    ceiling_ms: AtomicU64,
}

impl NodeClock {
    /// A clock for `node` resuming above `ceiling_ms` (the persisted ceiling, 0 if none).
    pub fn resume(node: NodeId, max_offset_ms: u64, ceiling_ms: u64) -> Self {
        let start = Timestamp {
            physical_ms: ceiling_ms,
            logical: 0,
            node,
        };
        NodeClock {
            hlc: Mutex::new(Hlc::resume(node, max_offset_ms, start)),
            ceiling_ms: AtomicU64::new(ceiling_ms),
        }
    }

    /// A timestamp for a local write. When it reaches the persisted ceiling, returns also the
    /// op that persists a new one; the caller commits it with the write.
    pub fn now(&self) -> (Timestamp, Option<Op>) {
        self.now_at(wall_ms())
    }

    /// [`now`](Self::now) with the wall clock read by the caller (`wall`, milliseconds): the
    /// timestamp is at least `wall` and above every one issued or observed before.
    pub fn now_at(&self, wall: u64) -> (Timestamp, Option<Op>) {
        let ts = self.hlc.lock().now(wall);
        let ceiling = self.ceiling_ms.load(Ordering::Relaxed);
        if ts.physical_ms < ceiling {
            return (ts, None);
        }
        let next = ts.physical_ms + CEILING_LEASE_MS;
        // Several writers may cross the ceiling at once; each persists a ceiling above its own
        // timestamp, which is all that matters.
        self.ceiling_ms.fetch_max(next, Ordering::Relaxed);
        (ts, Some(Op::put_meta_as(CEILING_META, &next)))
    }

    /// Takes a remote timestamp into account; refuses one too far ahead of the wall clock.
    pub fn observe(&self, remote: Timestamp) -> Result<(), crdt::Error> {
        self.hlc.lock().observe(remote, wall_ms())
    }

    /// The clock as of now without advancing it: at least the wall clock, and at least every
    /// timestamp issued or observed (the sample replication's freshness watermarks use).
    pub fn sample(&self) -> Timestamp {
        let high = self.high_water();
        let wall = wall_ms();
        if wall > high.physical_ms {
            Timestamp {
                physical_ms: wall,
                logical: 0,
                node: high.node,
            }
        } else {
            high
        }
    }

    /// The highest timestamp issued or observed.
    pub fn high_water(&self) -> Timestamp {
        self.hlc.lock().high_water()
    }
}

/// Milliseconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_above_the_persisted_ceiling() {
        let far = wall_ms() + 3_600_000;
        let clock = NodeClock::resume(NodeId(1), 1000, far);
        let (ts, op) = clock.now();
        assert!(ts.physical_ms >= far);
        assert!(op.is_some(), "reaching the ceiling persists a new one");
        let (_, again) = clock.now();
        assert!(again.is_none(), "the new ceiling is a lease ahead");
    }
}
