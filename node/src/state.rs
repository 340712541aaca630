//! [`NodeState`]: everything a command may need, shared by all connections behind an `Arc`.
//!
//! It is built once at start ([`crate::startup`]) from the validated config, the opened store
//! and the node's identity, plus [`Hooks`] through which the keyspace and replication plug in.
//! Everything in it is either immutable or internally synchronised with short, non-async
//! critical sections, so command handlers use it synchronously and no lock is ever held across
//! an await.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

use crdt::NodeId;
use storage::{GroupCommitter, RocksStore, Store};

use crate::clients::ClientRegistry;
use crate::cluster::{Cluster, WriteGate};
use crate::commands::{CommandTable, FAMILIES};
use crate::config::Config;
use crate::info::InfoSection;
use crate::keyspace::Keyspace;
use crate::resp::ParseLimits;
use crate::write_set::KeyDelta;

/// Receives the deltas of every committed batch, in commit order per connection. Implemented
/// by replication. Called from the connection's task right after the commit, so it must not
/// block: hand the deltas to a bounded queue.
pub trait DeltaSink: Send + Sync {
    /// Takes the deltas of one committed batch.
    fn publish(&self, deltas: Vec<KeyDelta>);
}

/// Where replication plugs into the server.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Receives committed deltas; `None` for a standalone node, which has no peer to ship them
    /// to (they are dropped after the commit).
    pub deltas: Option<Arc<dyn DeltaSink>>,
    /// INFO sections added to the built-in ones; one with the name of a built-in section
    /// (`replication`, `keyspace`) replaces it.
    pub info_sections: Vec<Arc<dyn InfoSection>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("deltas", &self.deltas.is_some())
            .field(
                "info_sections",
                &self
                    .info_sections
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Server-wide counters (INFO stats). Relaxed atomics: they are statistics, not
/// synchronisation.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted (including those refused for `connections_max`).
    pub connections_received: AtomicU64,
    /// Connections refused because `connections_max` clients were connected.
    pub rejected_connections: AtomicU64,
    /// Commands executed (including those answered with an error).
    pub commands_processed: AtomicU64,
    /// Error replies sent.
    pub error_replies: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Connections closed after a protocol error.
    pub protocol_errors: AtomicU64,
    /// Moves of a connection to another connection thread (`server::affinity`).
    pub connection_moves: AtomicU64,
    /// Batches whose commit failed (their write replies became errors).
    pub failed_commits: AtomicU64,
    /// Reads of a key that exists (maintained by the keyspace commands).
    pub keyspace_hits: AtomicU64,
    /// Reads of a key that does not exist (maintained by the keyspace commands).
    pub keyspace_misses: AtomicU64,
}

/// The parts a [`NodeState`] is built from.
pub struct NodeParts {
    /// The validated configuration.
    pub config: Config,
    /// The file it was read from, if any (INFO server `config_file`).
    pub config_file: Option<PathBuf>,
    /// This node's id.
    pub node_id: NodeId,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same store as RocksDB, when it is one (memory statistics).
    pub rocks: Option<Arc<RocksStore>>,
    /// Every key, loaded from the store.
    pub keyspace: Arc<Keyspace>,
    /// The replication hooks.
    pub hooks: Hooks,
    /// The cluster side, for a replicating node.
    pub cluster: Option<Arc<Cluster>>,
    /// Whether writes are accepted yet (see [`crate::cluster::gate`]).
    pub gate: Arc<WriteGate>,
}

/// Shared state of a running node.
pub struct NodeState {
    /// The validated configuration.
    pub config: Config,
    /// The file the configuration was read from.
    pub config_file: Option<PathBuf>,
    /// This node's id.
    pub node_id: NodeId,
    /// 40 hex characters identifying this run of the process (INFO server `run_id`).
    pub run_id: String,
    /// The store, for reads (writes go through the committer).
    pub store: Arc<dyn Store>,
    /// The RocksDB store, when the store is one.
    pub rocks: Option<Arc<RocksStore>>,
    /// The write path: every batch's ops are committed here.
    pub committer: GroupCommitter,
    /// Every command.
    pub commands: CommandTable,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Counters.
    pub stats: Stats,
    /// Every key.
    pub keyspace: Arc<Keyspace>,
    /// Replication hooks.
    pub hooks: Hooks,
    /// The cluster side, for a replicating node (`CLUSTER` commands, INFO).
    pub cluster: Option<Arc<Cluster>>,
    /// Whether writes are accepted yet.
    pub gate: Arc<WriteGate>,
    /// Longest key a write may use: replication's `key_bytes_max` in a cluster (a longer key
    /// could never be shipped), unbounded standalone (`limits.bulk_bytes_max` applies).
    pub key_bytes_max: usize,
    /// Request limits, from `[limits]`.
    pub parse_limits: ParseLimits,
    /// INFO sections in output order.
    pub info_sections: Vec<Arc<dyn InfoSection>>,
    /// When the node started.
    pub started: Instant,
    /// Wall-clock start time.
    pub started_at: SystemTime,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("node_id", &self.node_id)
            .field("run_id", &self.run_id)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl NodeState {
    /// Builds the state and starts the group committer on the store.
    pub fn new(parts: NodeParts) -> Self {
        let NodeParts {
            config,
            config_file,
            node_id,
            store,
            rocks,
            keyspace,
            hooks,
            cluster,
            gate,
        } = parts;
        let committer = GroupCommitter::start(
            Arc::clone(&store),
            config.storage.fsync,
            config.storage.group_commit.clone(),
        );
        let connections_max = usize::try_from(config.server.connections_max).unwrap_or(usize::MAX);
        let info_sections = crate::info::sections_with(&hooks.info_sections);
        let key_bytes_max = config
            .cluster
            .as_ref()
            .map_or(usize::MAX, |c| c.replication.key_bytes_max);
        Self {
            parse_limits: ParseLimits::from_config(&config.limits),
            clients: ClientRegistry::new(connections_max),
            commands: CommandTable::new(FAMILIES),
            run_id: random_run_id(),
            config,
            config_file,
            node_id,
            store,
            rocks,
            committer,
            stats: Stats::default(),
            keyspace,
            hooks,
            cluster,
            gate,
            key_bytes_max,
            info_sections,
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    /// True when clients must authenticate.
    pub fn password_required(&self) -> bool {
        self.config.server.requirepass.is_some()
    }

    /// A node on an in-memory store, for unit tests of commands and of the batch plumbing.
    #[cfg(test)]
    pub(crate) fn in_memory(config: Config, store: Arc<storage::MemStore>) -> Arc<Self> {
        Arc::new(Self::new(NodeParts {
            config,
            config_file: None,
            node_id: NodeId(1),
            store,
            rocks: None,
            keyspace: Arc::new(Keyspace::for_tests(NodeId(1))),
            hooks: Hooks::default(),
            cluster: None,
            gate: Arc::new(WriteGate::open()),
        }))
    }
}

fn random_run_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}
