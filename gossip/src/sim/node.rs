//! One simulated node: the real [`Replicator`] and (optionally) the real [`Membership`] over an
//! in-memory keyspace, with its own hybrid clock.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crdt::{Hlc, Merge, NodeId, Timestamp, Value};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::membership::{MemberIdentity, Membership, MembershipConfig};
use crate::replication::{MemReplica, Replica, ReplicationConfig, Replicator};

/// The simulated address of node `id` (membership needs one; nothing dials it).
pub(crate) fn addr(id: NodeId) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7000 + (id.0 as u16)))
}

/// [`MemReplica`] that remembers every tombstone it dropped, so the oracle can tell a key whose
/// tombstone was collected from a key that lost data.
#[derive(Clone, Debug)]
pub struct SimReplica {
    /// The keyspace.
    pub mem: MemReplica,
    /// Per key, the join of every tombstone dropped here.
    pub dropped: BTreeMap<Vec<u8>, Value>,
}

impl SimReplica {
    pub(crate) fn new(mem: MemReplica) -> Self {
        SimReplica {
            mem,
            dropped: BTreeMap::new(),
        }
    }

    /// Whether this replica holds `delta` of `key`: its state, joined with `collected` (every
    /// tombstone of the key collected anywhere: a collected delete is in effect everywhere), covers
    /// it.
    pub(crate) fn holds(&self, key: &[u8], delta: &Value, collected: Option<&Value>) -> bool {
        let mut state = self.mem.get(key).cloned().unwrap_or_default();
        if let Some(c) = collected {
            state.merge(c.clone());
        }
        state.clone().merged(delta.clone()) == state
    }
}

impl Replica for SimReplica {
    fn leaf_bits(&self) -> u32 {
        self.mem.leaf_bits()
    }

    fn refresh(&mut self, epoch: u64) {
        self.mem.refresh(epoch);
    }

    fn leaf_digests(&mut self, out: &mut Vec<u64>) {
        self.mem.leaf_digests(out);
    }

    fn bucket_entries(&mut self, bucket: u32, out: &mut Vec<(Vec<u8>, u64)>) {
        self.mem.bucket_entries(bucket, out);
    }

    fn state(&mut self, key: &[u8]) -> Option<Value> {
        self.mem.state(key)
    }

    fn merge(&mut self, entries: Vec<(Vec<u8>, Value)>) -> usize {
        self.mem.merge(entries)
    }

    fn drop_tombstones(&mut self, safe_epoch: u64, limit: usize) -> Vec<(Vec<u8>, Value)> {
        let dropped = self.mem.drop_tombstones(safe_epoch, limit);
        for (key, value) in &dropped {
            self.dropped
                .entry(key.clone())
                .or_default()
                .merge(value.clone());
        }
        dropped
    }
}

/// One node of the simulation.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    /// Which run of the process this is; messages and timers of earlier runs die with them.
    pub(crate) run: u64,
    /// False while crashed.
    pub(crate) up: bool,
    /// Came back without (all of) its data: refuses writes until it has synced with everyone.
    pub(crate) gated: bool,
    pub(crate) replicator: Replicator,
    pub(crate) replica: SimReplica,
    pub(crate) membership: Option<Membership>,
    pub(crate) hlc: Hlc,
    /// This node's wall clock runs this much ahead of virtual time.
    pub(crate) skew_ms: u64,
    pub(crate) generation: u64,
    /// `(taken at, keyspace)`: copies of the data directory, for restores.
    pub(crate) snapshots: Vec<(u64, BTreeMap<Vec<u8>, Value>)>,
}

/// Everything needed to (re)start a node.
pub(crate) struct Boot<'a> {
    pub(crate) replication: &'a ReplicationConfig,
    pub(crate) membership: Option<&'a MembershipConfig>,
    pub(crate) seed: u64,
    pub(crate) now_ms: u64,
}

impl SimNode {
    pub(crate) fn start(id: NodeId, skew_ms: u64, boot: &Boot<'_>) -> SimNode {
        let hlc = Hlc::new(id, u64::MAX / 4);
        let replica = SimReplica::new(MemReplica::new(boot.replication.leaf_bits));
        let mut node = SimNode {
            id,
            run: 0,
            up: true,
            gated: false,
            replicator: Self::replicator(id, boot, hlc.high_water()),
            replica,
            membership: None,
            hlc,
            skew_ms,
            generation: 0,
            snapshots: Vec::new(),
        };
        node.boot(boot);
        node
    }

    fn replicator(id: NodeId, boot: &Boot<'_>, clock: Timestamp) -> Replicator {
        let rng = SmallRng::seed_from_u64(boot.seed ^ id.0.rotate_left(17) ^ boot.now_ms);
        Replicator::new(id, boot.replication.clone(), rng, boot.now_ms, clock)
            .expect("valid simulation config")
    }

    /// Starts a new run of the process (at start, or after a crash) with the keyspace as it is.
    pub(crate) fn boot(&mut self, boot: &Boot<'_>) {
        self.run += 1;
        self.generation += 1;
        self.up = true;
        // The HLC resumes above everything issued before (the node persists a ceiling).
        let clock = self.clock(boot.now_ms);
        self.replicator = Self::replicator(self.id, boot, clock);
        self.membership = boot.membership.map(|config| {
            let identity = MemberIdentity::new(self.id, addr(self.id), self.generation);
            let rng =
                SmallRng::seed_from_u64(boot.seed ^ self.id.0.rotate_left(40) ^ self.generation);
            Membership::new(identity, config.clone(), rng, boot.now_ms)
                .expect("valid membership config")
        });
    }

    /// A fresh reading of this node's hybrid clock.
    pub(crate) fn clock(&mut self, now_ms: u64) -> Timestamp {
        self.hlc.now(now_ms + self.skew_ms)
    }
}
