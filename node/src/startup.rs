//! Starting a node: the data directory, the store, the node's identity, the shared state.
//!
//! **Identity.** A node's id is written into its store the first time the store is opened and
//! read back on every start. It comes from `node.node_id` (or `--node-id`) when given, and is
//! generated at random otherwise. A store created by another id is refused: its CRDT state
//! carries that id in every dot and counter entry, and a second node writing under the same
//! id, or one node under two ids, would corrupt convergence silently.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crdt::NodeId;
use storage::{Batch, Op, RocksStore, StorageError, Store, StoreExt};
use thiserror::Error;

use crate::cluster::{Cluster, ClusterError, WriteGate};
use crate::config::{Config, ConfigError};
use crate::keyspace::{CEILING_META, Keyspace, LoadError, NodeClock, SHARD_BITS_DEFAULT};
use crate::state::{Hooks, NodeParts, NodeState};

/// Metadata record holding the node id (a u64 in the crdt encoding).
pub const META_NODE_ID: &str = "node_id";

/// Why the node could not start. Nothing is served; the store, if it was opened, is closed
/// unchanged except for a newly recorded node id.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store could not be opened or read.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The data directory belongs to another node.
    #[error(
        "the data directory {path} belongs to node {stored}, but this node is configured as \
         node {configured}; start it with node_id = {stored}, or use another data directory"
    )]
    NodeIdMismatch {
        /// The data directory.
        path: PathBuf,
        /// The id recorded in the store.
        stored: u64,
        /// The id from the config or `--node-id`.
        configured: u64,
    },
    /// The keyspace could not be loaded.
    #[error("cannot load the keyspace: {0}")]
    Load(#[from] LoadError),
    /// The cluster side could not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The connection threads could not be started.
    #[error("cannot start the connection threads: {0}")]
    Threads(std::io::Error),
    /// The RESP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Opens the RocksDB store of `config.node.data_dir`, creating the directory if needed.
pub fn open_store(config: &Config) -> Result<Arc<RocksStore>, StartError> {
    let path = &config.node.data_dir;
    std::fs::create_dir_all(path).map_err(|source| StartError::DataDir {
        path: path.clone(),
        source,
    })?;
    Ok(Arc::new(RocksStore::open(path, &config.storage)?))
}

/// The node's id: the one recorded in `store`, checked against `configured`; or, for a new
/// store, `configured` or a random id, recorded (and synced) before anything else is written.
pub fn node_identity(
    store: &dyn Store,
    configured: Option<u64>,
    path: &Path,
) -> Result<NodeId, StartError> {
    let stored: Option<u64> = store.get_meta_as(META_NODE_ID)?;
    match (stored, configured) {
        (Some(stored), Some(configured)) if stored != configured => {
            Err(StartError::NodeIdMismatch {
                path: path.to_owned(),
                stored,
                configured,
            })
        }
        (Some(stored), _) => Ok(NodeId(stored)),
        (None, configured) => {
            // Zero is refused by config validation and never generated, so it can keep
            // meaning "no id" to humans reading logs.
            let id = configured.unwrap_or_else(|| rand::random_range(1..=u64::MAX));
            let batch = Batch::from(vec![Op::put_meta_as(META_NODE_ID, &id)]);
            store.write(&batch, true)?;
            tracing::info!(
                node_id = id,
                generated = configured.is_none(),
                "node id recorded"
            );
            Ok(NodeId(id))
        }
    }
}

/// A node's storage opened and its keyspace loaded: what the cluster side and the shared
/// state are built from.
pub struct Opened {
    /// The RocksDB store.
    pub rocks: Arc<RocksStore>,
    /// The node's id.
    pub node_id: NodeId,
    /// Every stored key.
    pub keyspace: Arc<Keyspace>,
}

/// Opens the store, establishes the identity and loads the keyspace (keeping anti-entropy
/// digests when `config` has a `[cluster]` section).
pub fn open(config: &Config) -> Result<Opened, StartError> {
    let rocks = open_store(config)?;
    let node_id = node_identity(rocks.as_ref(), config.node.node_id, &config.node.data_dir)?;
    let keyspace = load_keyspace(rocks.as_ref(), node_id, config)?;
    Ok(Opened {
        rocks,
        node_id,
        keyspace: Arc::new(keyspace),
    })
}

/// Builds the node's shared state from what [`open`] returned, the cluster side if any, and
/// `hooks`.
pub fn build(
    config: Config,
    config_file: Option<PathBuf>,
    opened: Opened,
    cluster: Option<Arc<Cluster>>,
    gate: Arc<WriteGate>,
    mut hooks: Hooks,
) -> NodeState {
    if let Some(cluster) = &cluster {
        hooks.deltas = Some(cluster.delta_sink());
    }
    NodeState::new(NodeParts {
        config,
        config_file,
        node_id: opened.node_id,
        store: Arc::clone(&opened.rocks) as Arc<dyn Store>,
        rocks: Some(opened.rocks),
        keyspace: opened.keyspace,
        hooks,
        cluster,
        gate,
    })
}

/// Opens the store and builds the state of a standalone node.
pub fn start(
    config: Config,
    config_file: Option<PathBuf>,
    hooks: Hooks,
) -> Result<NodeState, StartError> {
    let opened = open(&config)?;
    Ok(build(
        config,
        config_file,
        opened,
        None,
        Arc::new(WriteGate::open()),
        hooks,
    ))
}

/// Resumes the clock above its persisted ceiling and loads every stored key.
pub fn load_keyspace(
    store: &dyn Store,
    node_id: NodeId,
    config: &Config,
) -> Result<Keyspace, StartError> {
    let ceiling: u64 = store.get_meta_as(CEILING_META)?.unwrap_or(0);
    let clock = NodeClock::resume(node_id, config.node.max_clock_offset_ms, ceiling);
    // A cluster node's shards are its anti-entropy buckets.
    let keyspace = match &config.cluster {
        Some(c) => Keyspace::new(node_id, clock, c.replication.leaf_bits).with_digests(),
        None => Keyspace::new(node_id, clock, SHARD_BITS_DEFAULT),
    };
    let started = std::time::Instant::now();
    let stats = keyspace.load(store)?;
    tracing::info!(
        keys = stats.keys,
        tombstones = stats.tombstones,
        deltas = stats.deltas,
        bytes = stats.bytes,
        ms = started.elapsed().as_millis() as u64,
        "keyspace loaded"
    );
    Ok(keyspace)
}

#[cfg(test)]
mod tests {
    use storage::MemStore;

    use super::*;

    #[test]
    fn identity_is_recorded_once_and_checked() {
        let path = Path::new("mem");
        let store = MemStore::new();
        let generated = node_identity(&store, None, path).unwrap();
        assert_ne!(generated.get(), 0);
        assert_eq!(node_identity(&store, None, path).unwrap(), generated);
        assert_eq!(
            node_identity(&store, Some(generated.get()), path).unwrap(),
            generated
        );
        let other = generated.get().wrapping_add(1).max(1);
        let err = node_identity(&store, Some(other), path).unwrap_err();
        assert!(matches!(err, StartError::NodeIdMismatch { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("belongs to node {generated}")),
            "{err}"
        );
        // Survives a restart (the durable copy of the in-memory store).
        assert_eq!(
            node_identity(&store.reopen(), None, path).unwrap(),
            generated
        );
    }

    #[test]
    fn configured_id_is_recorded() {
        let store = MemStore::new();
        assert_eq!(
            node_identity(&store, Some(7), Path::new("mem")).unwrap(),
            NodeId(7)
        );
        assert_eq!(
            node_identity(&store, None, Path::new("mem")).unwrap(),
            NodeId(7)
        );
    }
}
