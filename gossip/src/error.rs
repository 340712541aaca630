//! The one error type at the boundary of the `gossip` crate.
//!
//! Every variant says what happened to state, so a caller can decide whether to retry, log or
//! give up without reading the source: a refused send left nothing queued, a failed certificate
//! write left no partial key behind, a rejected datagram changed no membership state.

use std::net::SocketAddr;
use std::path::PathBuf;

use crdt::NodeId;

/// Errors of the gossip crate: TLS material, the QUIC transport and SWIM membership.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written; nothing was changed beyond what the OS reports.
    #[error("{}: {source}", path.display())]
    File {
        /// The file concerned.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },

    /// A file that a certificate command would write already exists; it was left untouched.
    #[error("{}: already exists, refusing to overwrite it", path.display())]
    FileExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A PEM file held no usable certificate or key; nothing was loaded.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file concerned (or a description of in-memory PEM).
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// A certificate does not carry exactly one crdtkv node name (`node-<id>.crdtkv`).
    #[error("certificate carries no valid crdtkv node id: {reason}")]
    CertNodeId {
        /// Why no node id could be read.
        reason: String,
    },

    /// Generating a key or certificate failed; no file was written.
    #[error("certificate generation failed: {0}")]
    CertGen(#[from] rcgen::Error),

    /// Building a TLS configuration from the loaded material failed; nothing is listening.
    #[error("TLS configuration: {0}")]
    Tls(String),

    /// A configuration value is invalid; `key` names it as written in the config file.
    #[error("invalid config `{key}`: {reason}")]
    Config {
        /// The offending configuration key.
        key: &'static str,
        /// Why it is invalid.
        reason: String,
    },

    /// The UDP socket could not be bound; no endpoint exists.
    #[error("cannot bind QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The underlying IO error.
        source: std::io::Error,
    },

    /// Connecting to a peer failed (unreachable, handshake refused, certificate rejected);
    /// whatever was queued for that dial was dropped and counted.
    #[error("connecting to {addr} failed: {reason}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },

    /// A send named a node id with no connection and no known address; nothing was queued.
    #[error("no connection and no known address for node {0}")]
    UnknownPeer(NodeId),

    /// A datagram or message exceeds its configured limit; it was dropped and counted.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes; dropped")]
    Oversized {
        /// `"datagram"` or `"message"`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit it broke.
        max: usize,
    },

    /// The per-peer send queue is full; the item was dropped and counted.
    #[error("send queue for {peer} is full; dropped")]
    QueueFull {
        /// The destination (a node id or an address being dialled).
        peer: String,
    },

    /// The peer at an address presented this node's own certificate; the connection was closed.
    #[error("{0} is this node itself")]
    SelfConnection(SocketAddr),

    /// The transport has been closed; nothing was sent.
    #[error("transport closed")]
    Closed,

    /// A SWIM datagram claims a sender other than the node authenticated by TLS; it was dropped
    /// without touching membership state.
    #[error("SWIM datagram from node {authenticated} claims to come from node {claimed}; dropped")]
    Impersonation {
        /// The node id inside the foca identity.
        claimed: NodeId,
        /// The node id from the sender's verified certificate.
        authenticated: NodeId,
    },

    /// A SWIM datagram could not be decoded or was refused by foca; membership state may have
    /// taken the part of the packet that was valid, as foca documents.
    #[error("SWIM datagram rejected: {0}")]
    Swim(String),

    /// This member has left the cluster; the input was ignored.
    #[error("this member has left the cluster")]
    Left,

    /// A replication message could not be decoded or breaks a limit; it was dropped and counted
    /// without touching state.
    #[error("replication message refused: {0}")]
    Replication(#[from] crate::replication::wire::WireError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }
}
