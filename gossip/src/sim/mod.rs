//! A deterministic, seeded simulation of a crdtkv cluster: in one thread, on virtual time, with
//! no sockets.
//!
//! ## What runs
//! 3 to 10 nodes, each with the real [`crate::replication::Replicator`] over an in-memory
//! keyspace of `crdt::Value`s, and (by default) the real SWIM [`crate::membership::Membership`]
//! whose datagrams cross the same simulated network; without SWIM, membership events are
//! derived from the network model after a detection delay. Clients issue random operations of
//! every kind (SET, INCRBY, GCOUNTER.INCRBY, SADD, SREM, DEL) on random nodes. The network loses,
//! duplicates, delays and reorders datagrams and messages, and splits the cluster into random
//! groups that later heal. Nodes crash and restart with their keyspace intact, empty, or from an
//! older copy of their own data directory.
//!
//! ## What is checked
//! * **Convergence**: after a final heal and quiescence, every replica holds exactly the same
//!   keys and states.
//! * **No acknowledged write lost**: every live key equals the join of every delta ever
//!   produced for it (the strongest oracle a CRDT allows: counters equal the sum of their
//!   increments, sets hold every add not observed-removed), and a key whose join is a tombstone
//!   is that tombstone or collected. Only writes that lived solely on a node that came back
//!   without them are excused; the oracle computes which, at each restore.
//! * **Freshness**: at every step, every `synced_at[P]` claim is checked: the claiming node holds
//!   every write P made before that time.
//! * **Mode**: once quiet and healed, every node reports [`crate::replication::Mode::Normal`].
//!
//! * **No write born dead**: a SET, SADD or increment must survive being merged with every
//!   earlier write of its key (a reused dot or counter entry would be cancelled).
//!
//! Tombstone GC runs in the simulation as in production; clients also write keys whose
//! tombstones were collected when [`SimConfig::rewrite_collected_keys`] is set.
//!
//! A run is a pure function of its [`SimConfig`] (seed included): a failing seed replays exactly.
//! [`Sabotage`] breaks the system on purpose, so tests can show the checks catch it.

mod node;
mod oracle;
mod scenario;
mod world;

use crate::membership::MembershipConfig;
use crate::replication::ReplicationConfig;

pub use node::SimReplica;
pub use scenario::run;

/// How a crashed node comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartKind {
    /// With its data directory intact.
    Intact,
    /// With an empty data directory.
    Empty,
    /// From an older copy of its own data directory (younger than half the GC grace period;
    /// intact if there is none).
    OldCopy,
}

/// A crash the script imposes, on top of random ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptedCrash {
    /// After this many client operations.
    pub after_ops: usize,
    /// Index of the node (0-based).
    pub node: usize,
    /// How it comes back.
    pub kind: RestartKind,
    /// How long it stays down, ms.
    pub down_ms: u64,
}

/// A way to break replication on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Every anti-entropy message is lost: lost deltas are never repaired.
    NoAntiEntropy,
    /// Heartbeats claim a watermark one second later than the truth.
    InflateHeartbeats,
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds every random choice.
    pub seed: u64,
    /// Number of nodes; `None` picks 3 to 10 from the seed.
    pub nodes: Option<usize>,
    /// Run the real SWIM membership (otherwise membership events come from the network model).
    pub swim: bool,
    /// Client operations.
    pub ops: usize,
    /// Random partitions and heals.
    pub partitions: bool,
    /// Random crashes and restarts (intact, empty, or from an older copy of the data).
    pub crashes: bool,
    /// Force this probability of losing a message (otherwise picked from the seed, up to 5%).
    pub message_loss: Option<f64>,
    /// Break something on purpose.
    pub sabotage: Option<Sabotage>,
    /// Probability that a client operation is preceded by a fault (partition, heal, crash).
    pub fault_rate: f64,
    /// Number of distinct keys; `None` picks 4 to 40 from the seed.
    pub keys: Option<u32>,
    /// Let nodes write a key whose tombstone was collected (a reused dot or counter entry would
    /// show as a cancelled write).
    pub rewrite_collected_keys: bool,
    /// Crashes imposed by the script.
    pub scripted_crashes: Vec<ScriptedCrash>,
    /// Longest the replicas may take to become identical after the final heal, virtual ms.
    pub converge_limit_ms: u64,
    /// Replication settings (small limits and short periods, to exercise paging and timers).
    pub replication: ReplicationConfig,
    /// Membership settings (fast timers).
    pub membership: MembershipConfig,
}

impl SimConfig {
    /// A run of `seed` with the default scenario: everything on.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: None,
            swim: true,
            ops: 150,
            partitions: true,
            crashes: true,
            message_loss: None,
            sabotage: None,
            fault_rate: 0.03,
            keys: None,
            rewrite_collected_keys: true,
            scripted_crashes: Vec::new(),
            converge_limit_ms: 120_000,
            replication: ReplicationConfig {
                leaf_bits: 6,
                delta_batch_delay_ms: 2,
                heartbeat_period_ms: 100,
                ae_period_ms: 300,
                ae_session_timeout_ms: 1_500,
                ae_keys_per_message_max: 16,
                ae_bytes_per_message_max: 600,
                ae_requests_inflight_max: 2,
                gap_repair_after_ms: 200,
                tombstone_gc: true,
                tombstone_gc_period_ms: 400,
                tombstone_gc_grace_ms: 1_500,
                ..ReplicationConfig::default()
            },
            membership: MembershipConfig {
                probe_period_ms: 200,
                probe_rtt_ms: 60,
                suspect_to_down_ms: 400,
                gossip_period_ms: 100,
                announce_down_period_ms: 400,
                rejoin_period_ms: 200,
                ..MembershipConfig::default()
            },
        }
    }
}

/// What a successful run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Nodes simulated.
    pub nodes: usize,
    /// Acknowledged writes.
    pub writes: usize,
    /// Writes lost with a node's data (no replica held them when it came back without them).
    pub lost_writes: usize,
    /// Partitions made.
    pub partitions: usize,
    /// Crashes.
    pub crashes: usize,
    /// Restarts with an empty keyspace.
    pub restarts_empty: usize,
    /// Restarts from an older copy of the keyspace.
    pub restarts_old: usize,
    /// Messages and datagrams delivered.
    pub delivered: u64,
    /// Messages and datagrams dropped.
    pub dropped: u64,
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// Virtual time from the final heal to identical replicas, ms.
    pub converge_ms: u64,
    /// Keys repaired by anti-entropy, all nodes.
    pub keys_repaired: u64,
    /// Tombstones collected, all nodes.
    pub tombstones_dropped: u64,
    /// Freshness claims verified.
    pub freshness_checks: u64,
}
