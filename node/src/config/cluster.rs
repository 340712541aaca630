//! `[cluster]`: peers, TLS and the gossip tuning of a node that replicates.
//!
//! Without a `[cluster]` section the node runs standalone (no QUIC endpoint, no peers). With one,
//! it binds a QUIC endpoint at `bind`, authenticates peers with the certificates in `tls_dir`
//! (made by `crdtkv cert ca` and `crdtkv cert node`), joins through `seeds`, and replicates
//! every key. The nested tables tune the `gossip` crate and are documented there:
//! `[cluster.transport]` ([`gossip::TransportConfig`]), `[cluster.membership]`
//! ([`gossip::MembershipConfig`]) and `[cluster.replication]`
//! ([`gossip::replication::ReplicationConfig`]).
//!
//! The transport's address and allowed ids are set by `cluster.bind` and
//! `cluster.allowed_node_ids` only: setting them in `[cluster.transport]` is refused, so one
//! setting never silently shadows another.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use gossip::replication::ReplicationConfig;
use gossip::{MembershipConfig, TransportConfig};
use serde::{Deserialize, Serialize};

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// UDP address of the node's QUIC endpoint; peers and seeds use it. Default
    /// `127.0.0.1:7000`.
    pub bind: SocketAddr,
    /// Addresses (`host:port`) of nodes to join through; this node's own address is skipped,
    /// so every node of a cluster may share one list. Empty: wait for others to join this one.
    pub seeds: Vec<String>,
    /// Directory with `ca.pem`, `node.pem` and `node.key` (`crdtkv cert node --out DIR`). The
    /// node id bound in `node.pem` is this node's id; `node.node_id`, if set, must equal it.
    pub tls_dir: PathBuf,
    /// If set, only these node ids may connect or be connected to (their certificates must
    /// still come from the cluster CA). They also count as members from the start, so a member
    /// that is down when this node starts still holds back tombstone GC and the start gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_node_ids: Option<Vec<u64>>,
    /// A node refuses writes (`-LOADING`) until it has completed anti-entropy with every member
    /// it knows, so that a node back from an empty or old data directory never reuses its own
    /// dots or counter entries; after this long it accepts them anyway (logged). 0 disables
    /// the gate.
    pub startup_sync_timeout_ms: u64,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`); unset: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_bind: Option<SocketAddr>,
    /// `[cluster.transport]`
    pub transport: TransportConfig,
    /// `[cluster.membership]`
    pub membership: MembershipConfig,
    /// `[cluster.replication]`
    pub replication: ReplicationConfig,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 7000)),
            seeds: Vec::new(),
            tls_dir: PathBuf::from("tls"),
            allowed_node_ids: None,
            startup_sync_timeout_ms: 30_000,
            metrics_bind: None,
            transport: TransportConfig::default(),
            membership: MembershipConfig::default(),
            replication: ReplicationConfig::default(),
        }
    }
}

/// Room left in a transport message for a value's key and the message framing.
pub const MESSAGE_OVERHEAD_BYTES: u64 = 4096;

impl ClusterSection {
    /// The transport configuration with `bind` and `allowed_node_ids` applied.
    pub fn transport_config(&self) -> TransportConfig {
        TransportConfig {
            bind_addr: self.bind,
            allowed_node_ids: self
                .allowed_node_ids
                .as_ref()
                .map(|ids| ids.iter().copied().map(crdt::NodeId).collect()),
            ..self.transport.clone()
        }
    }

    /// Resolves the seeds; an unresolvable one is an error naming it.
    pub fn resolve_seeds(&self) -> Result<Vec<SocketAddr>, String> {
        let mut out = Vec::new();
        for seed in &self.seeds {
            let addrs = seed
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve seed {seed:?}: {e}"))?;
            out.extend(addrs.take(1));
        }
        Ok(out)
    }

    /// Checks the section; errors are `(dotted key below cluster, reason)`.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        let nested = |section: &str, e: gossip::Error| match e {
            gossip::Error::Config { key, reason } => (format!("{section}.{key}"), reason),
            other => (section.to_owned(), other.to_string()),
        };
        if self.transport.bind_addr != TransportConfig::default().bind_addr {
            return Err((
                "transport.bind_addr".into(),
                "set cluster.bind instead".into(),
            ));
        }
        if self.transport.allowed_node_ids.is_some() {
            return Err((
                "transport.allowed_node_ids".into(),
                "set cluster.allowed_node_ids instead".into(),
            ));
        }
        if self
            .allowed_node_ids
            .as_ref()
            .is_some_and(|ids| ids.contains(&0))
        {
            return Err(("allowed_node_ids".into(), "node ids are 1 or more".into()));
        }
        if self.tls_dir.as_os_str().is_empty() {
            return Err(("tls_dir".into(), "must not be empty".into()));
        }
        for seed in &self.seeds {
            if !seed.contains(':') {
                return Err(("seeds".into(), format!("{seed:?} is not host:port")));
            }
        }
        self.transport
            .validate()
            .map_err(|e| nested("transport", e))?;
        self.membership
            .validate()
            .map_err(|e| nested("membership", e))?;
        self.replication
            .validate()
            .map_err(|e| nested("replication", e))?;
        if self.replication.leaf_bits == 0 {
            return Err((
                "replication.leaf_bits".into(),
                "must be at least 1 (the keyspace is sharded by bucket)".into(),
            ));
        }
        Ok(())
    }
}
