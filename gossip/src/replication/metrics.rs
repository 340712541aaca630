//! What replication counts and reports: counters for Prometheus, per-peer freshness, the mode.

use crdt::{NodeId, Timestamp};

/// Upper bounds (ms) of the buckets of [`LagHistogram`]; the last bucket is unbounded.
pub const LAG_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1_000, 5_000, 30_000];

/// Distribution of replication lag: for every received delta batch, the receiver's clock minus
/// the timestamp of the oldest write in it (write acknowledged → visible here, up to clock
/// skew between the two nodes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LagHistogram {
    /// Non-cumulative counts per bucket of [`LAG_BUCKETS_MS`], plus one for larger lags.
    pub counts: [u64; LAG_BUCKETS_MS.len() + 1],
    /// Sum of all observations, ms.
    pub sum_ms: u64,
    /// Number of observations.
    pub count: u64,
}

impl LagHistogram {
    /// Records one observation.
    pub fn observe(&mut self, lag_ms: u64) {
        let i = LAG_BUCKETS_MS
            .iter()
            .position(|&b| lag_ms <= b)
            .unwrap_or(LAG_BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_ms = self.sum_ms.saturating_add(lag_ms);
        self.count += 1;
    }

    /// The smallest bucket bound below which at least `q` (0..=1) of observations fall;
    /// `None` without observations, `u64::MAX` for the unbounded bucket.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let target = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(LAG_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// Counters of one replicator, monotonic since it started (gauges are on [`PeerStatus`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationMetrics {
    /// Local deltas handed to replication.
    pub deltas_submitted: u64,
    /// Local deltas lost because the driver's queue was full (repaired by anti-entropy).
    pub deltas_dropped: u64,
    /// Delta batches sent (one per peer it went to).
    pub delta_batches_sent: u64,
    /// Keys in delta batches sent (counted per peer).
    pub delta_keys_sent: u64,
    /// Bytes of delta batches sent (counted per peer).
    pub delta_bytes_sent: u64,
    /// Delta batches received.
    pub delta_batches_received: u64,
    /// Keys in delta batches received.
    pub delta_keys_received: u64,
    /// Bytes of delta batches received.
    pub delta_bytes_received: u64,
    /// Heartbeats sent (per peer).
    pub heartbeats_sent: u64,
    /// Heartbeats received.
    pub heartbeats_received: u64,
    /// Anti-entropy sessions this node started.
    pub ae_rounds_started: u64,
    /// Anti-entropy sessions completed, as initiator or responder.
    pub ae_rounds_completed: u64,
    /// Completed sessions that found the roots equal (only the root was exchanged).
    pub ae_rounds_in_sync: u64,
    /// Sessions abandoned: timed out, peer down, send failed, or refused.
    pub ae_rounds_failed: u64,
    /// Keys whose local state changed from a state received by anti-entropy.
    pub ae_keys_repaired: u64,
    /// Full states sent by anti-entropy.
    pub ae_states_sent: u64,
    /// Bytes of anti-entropy messages sent.
    pub ae_bytes_sent: u64,
    /// Bytes of anti-entropy messages received.
    pub ae_bytes_received: u64,
    /// Received messages that could not be decoded.
    pub messages_malformed: u64,
    /// Received messages over a limit.
    pub messages_over_limit: u64,
    /// Received anti-entropy messages for no live session (late, duplicated, or stray).
    pub messages_stale: u64,
    /// Tombstones garbage-collected.
    pub tombstones_dropped: u64,
    /// Received states refused because a tombstone dropped here covers them.
    pub tombstones_refused: u64,
    /// Replication lag of received delta batches.
    pub delta_lag: LagHistogram,
}

/// Replication's view of the node: whether reads here can be fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Every member is reachable and in sync.
    Normal,
    /// Some member (not one that left) is unreachable.
    Degraded,
    /// Every member is reachable, but some has not completed anti-entropy since it came (back)
    /// up, or its delta stream has a gap.
    CatchUp,
}

impl Mode {
    /// The name shown by `INFO replication` and `CLUSTER MEMBERS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Degraded => "degraded",
            Mode::CatchUp => "catch-up",
        }
    }
}

/// Freshness of one member as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The member.
    pub node_id: NodeId,
    /// Membership says it is reachable (alive or suspect).
    pub reachable: bool,
    /// This node holds every write the member acknowledged before the member's clock read
    /// this; `None` until the first anti-entropy with it in this run.
    pub synced_at: Option<Timestamp>,
    /// This node's clock minus `synced_at`, ms (`None` with `synced_at`).
    pub lag_ms: Option<u64>,
    /// Reachable, anchored by anti-entropy since it came up, and no gap in its stream.
    pub in_sync: bool,
}
