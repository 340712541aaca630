//! The cluster: how a node with a `[cluster]` section joins its peers and replicates.
//!
//! ## Wiring
//! ```text
//!   RESP writes ──commit──▶ DeltaSink ──submit──▶ replication driver ◀──messages── QUIC
//!                                                    │   ▲                          transport
//!                          KeyspaceReplica ◀─merge───┘   └──member events── membership driver
//!                          (shards, digests, RocksDB)                        (SWIM, datagrams)
//! ```
//! One QUIC endpoint ([`gossip::Transport`], mutual TLS against the cluster CA) carries SWIM
//! datagrams for the membership driver and framed messages for the replication driver. Both
//! drivers are the `gossip` crate's sans-IO state machines in tokio shells; this module only
//! builds them from the config and connects them to the keyspace:
//!
//! * every committed batch of local writes goes to replication through [`DeltaSink`]
//!   ([`sink::ReplicationSink`]), after its commit and before its replies are sent;
//! * replication reads and merges the keyspace through [`KeyspaceReplica`];
//! * [`gate`] holds writes back after a restart until this node has caught up;
//! * `CLUSTER ...` commands, `INFO replication` ([`info`]) and the Prometheus endpoint
//!   ([`metrics`]) read the drivers' published status, never waiting on them.
//!
//! On shutdown the node leaves the cluster gracefully (peers see `left`, not `down`), then
//! closes the endpoint.

pub mod gate;
pub mod info;
pub mod metrics;
pub mod sink;

use std::net::SocketAddr;
use std::sync::Arc;

use crdt::NodeId;
use gossip::membership::driver::{self as membership_driver, MembershipHandle};
use gossip::replication::Replicator;
use gossip::replication::driver::{self as replication_driver, ReplicationHandle};
use gossip::tls::{NodeTls, TlsPaths};
use gossip::{MemberIdentity, Membership, Transport};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use storage::Store;
use thiserror::Error;

pub use gate::WriteGate;

use crate::config::ClusterSection;
use crate::keyspace::{Keyspace, KeyspaceReplica};
use crate::state::DeltaSink;

/// Why the cluster side of a node could not start.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The TLS material could not be loaded.
    #[error("cluster TLS in {dir}: {source}")]
    Tls {
        /// `cluster.tls_dir`.
        dir: String,
        /// What failed.
        source: gossip::Error,
    },
    /// The certificate names another node than `node.node_id`.
    #[error(
        "the certificate in {dir} is for node {cert}, but node.node_id is {configured}; issue \
         one with `crdtkv cert node --node-id {configured}` or fix node.node_id"
    )]
    IdMismatch {
        /// `cluster.tls_dir`.
        dir: String,
        /// The id in the certificate.
        cert: u64,
        /// The configured id.
        configured: u64,
    },
    /// A seed did not resolve.
    #[error("cluster.seeds: {0}")]
    Seeds(String),
    /// The QUIC endpoint or a driver could not start.
    #[error("cluster: {0}")]
    Gossip(#[from] gossip::Error),
    /// The metrics endpoint could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        /// `cluster.metrics_bind`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Loads the node's TLS material and checks its node id against `configured`.
pub fn load_tls(config: &ClusterSection, configured: Option<u64>) -> Result<NodeTls, ClusterError> {
    let dir = config.tls_dir.display().to_string();
    let tls =
        NodeTls::load(&TlsPaths::in_dir(&config.tls_dir)).map_err(|source| ClusterError::Tls {
            dir: dir.clone(),
            source,
        })?;
    if let Some(configured) = configured
        && configured != tls.node_id().get()
    {
        return Err(ClusterError::IdMismatch {
            dir,
            cert: tls.node_id().get(),
            configured,
        });
    }
    Ok(tls)
}

/// A running cluster side: the endpoint and the two drivers.
#[derive(Debug)]
pub struct Cluster {
    /// This node.
    pub node_id: NodeId,
    /// The QUIC endpoint (fault injection: `partition` / `heal`).
    pub transport: Transport,
    /// SWIM membership.
    pub membership: MembershipHandle,
    /// Replication.
    pub replication: ReplicationHandle,
    /// The configured seeds, resolved.
    pub seeds: Vec<SocketAddr>,
    /// Address of the metrics endpoint, if any.
    pub metrics_addr: Option<SocketAddr>,
}

impl Cluster {
    /// Starts the endpoint, membership and replication for `keyspace` (built
    /// [`Keyspace::with_digests`] and loaded). Must run inside the tokio runtime. `sync`:
    /// fsync merges (the `always` policy).
    pub async fn start(
        config: &ClusterSection,
        tls: &NodeTls,
        keyspace: Arc<Keyspace>,
        store: Arc<dyn Store>,
        sync: bool,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let node_id = tls.node_id();
        let seeds = config.resolve_seeds().map_err(ClusterError::Seeds)?;
        let (transport, channels) = Transport::bind(config.transport_config(), tls)?;
        let identity = MemberIdentity::new(
            node_id,
            transport.local_addr(),
            membership_driver::generation_from_clock(),
        );
        let membership = Membership::new(
            identity,
            config.membership.clone(),
            SmallRng::from_os_rng(),
            0,
        )?;
        let (membership, events) = membership_driver::spawn(
            membership,
            transport.clone(),
            channels.datagrams,
            seeds.clone(),
        );
        let mut replicator = Replicator::new(
            node_id,
            config.replication.clone(),
            SmallRng::from_os_rng(),
            0,
            keyspace.clock().sample(),
        )?;
        // Members named in the config count from the start, reachable or not.
        for &id in config.allowed_node_ids.iter().flatten() {
            if id != node_id.get() {
                replicator.add_member(NodeId(id));
            }
        }
        let replica = KeyspaceReplica::new(keyspace.clone(), store, sync);
        let clock_keyspace = keyspace.clone();
        let replication = replication_driver::spawn(
            replicator,
            replica,
            move || clock_keyspace.clock().sample(),
            transport.clone(),
            channels.messages,
            events,
        );
        let metrics_addr = match config.metrics_bind {
            Some(addr) => Some(
                metrics::serve(
                    addr,
                    transport.clone(),
                    membership.clone(),
                    replication.clone(),
                )
                .await
                .map_err(|source| ClusterError::Metrics { addr, source })?,
            ),
            None => None,
        };
        tracing::info!(
            node_id = %node_id,
            quic = %transport.local_addr(),
            seeds = ?seeds,
            "cluster endpoint up"
        );
        Ok(Arc::new(Cluster {
            node_id,
            transport,
            membership,
            replication,
            seeds,
            metrics_addr,
        }))
    }

    /// The sink that hands committed local writes to replication.
    pub fn delta_sink(&self) -> Arc<dyn DeltaSink> {
        Arc::new(sink::ReplicationSink::new(self.replication.clone()))
    }

    /// Leaves the cluster gracefully, then closes the endpoint.
    pub async fn shutdown(&self) {
        self.membership.leave().await;
        self.replication.abort();
        self.transport.close().await;
    }
}
