//! The QUIC transport: one quinn endpoint per node, mutual TLS, datagrams and messages, and
//! fault injection. This is the tokio shell; nothing in it decides protocol behaviour.
//!
//! ## Model
//! A node binds one UDP socket and one QUIC endpoint that both accepts and dials. Peers are
//! reached by address (seeds, membership) and identified by the node id of their verified
//! certificate, never by anything they say. There is at most one connection in use per peer;
//! connections are opened lazily by the first send and re-opened by the first send after they
//! drop. When both nodes dial each other at once, both keep the connection dialled by the lower
//! node id (see `shared.rs`).
//!
//! Two kinds of traffic:
//! - **Datagrams** ([`Transport::send_datagram`]): QUIC DATAGRAM frames, unreliable and
//!   unordered, at most `datagram_bytes_max` bytes and the path MTU. SWIM uses them: a lost
//!   probe is information, and a retransmitted one would lie about the present.
//! - **Messages** ([`Transport::send_message`]): reliable, length-prefixed, one unidirectional
//!   stream each, up to `message_bytes_max` bytes, unordered with respect to each other. Delta
//!   batches and anti-entropy use them. A message is delivered whole or not at all; one queued
//!   for a peer whose connection dies before it is written is dropped and counted, and the layers
//!   above repair by anti-entropy.
//!
//! Sends never wait: they queue (bounded) or fail at once with a counted drop, so the task that
//! owns a protocol state machine is never blocked by one slow or dead peer.
//!
//! Received traffic arrives on three bounded channels ([`TransportEvents`]) because their
//! consumers and their overflow policies differ: datagrams go to the membership task and are
//! dropped when its channel is full; messages go to the replication task and push back on the
//! sender through QUIC flow control; connection events are informational.
//!
//! ## Fault injection
//! [`Transport::partition`] adds peers to a cut set: their connections are closed, new ones
//! from or to them are closed right after the handshake, and datagrams and messages to or from
//! them are dropped (and counted) in both directions. [`Transport::heal`] empties the set. Only
//! this node's side is cut; to split a cluster, cut on both sides (or on one side: the other
//! side sees its packets unanswered, which is what a real partition looks like to it).
//!
//! ## Restarts
//! The QUIC stateless-reset key is derived from the node's private key, so a node restarted on
//! the same address resets the connections its peers still hold to its previous run at the
//! first packet, instead of leaving them to time out.

mod config;
mod counters;
mod shared;
mod tasks;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crdt::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::sync::mpsc;

pub use config::TransportConfig;
pub use counters::TransportCounters;

use crate::error::{Error, Result};
use crate::tls::{self, NodeTls, PeerPolicy};
use counters::Counters;
use shared::{Pending, Route, Senders, Shared};

/// Where to send: a node by id (its connection, or its last known address), an address whose
/// node is not known yet (a seed), or a node at an address (which is remembered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A node by id.
    Node(NodeId),
    /// Whatever cluster node answers at this address.
    Addr(SocketAddr),
    /// This node, dialled at this address if not connected.
    NodeAt(NodeId, SocketAddr),
}

impl From<NodeId> for Target {
    fn from(id: NodeId) -> Self {
        Target::Node(id)
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Target::Addr(addr)
    }
}

impl From<(NodeId, SocketAddr)> for Target {
    fn from((id, addr): (NodeId, SocketAddr)) -> Self {
        Target::NodeAt(id, addr)
    }
}

/// A datagram or message received from an authenticated peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The sender, as bound by its verified certificate.
    pub from: NodeId,
    /// The payload.
    pub bytes: Bytes,
}

/// A change in the set of connected peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// An authenticated connection to `node_id` is up (the first one, if several).
    Connected {
        /// The peer.
        node_id: NodeId,
        /// Its address on this connection.
        addr: SocketAddr,
    },
    /// The last connection to `node_id` is gone.
    Disconnected {
        /// The peer.
        node_id: NodeId,
    },
}

/// The receiving side of a transport: three bounded channels (see the module docs).
#[derive(Debug)]
pub struct TransportEvents {
    /// SWIM datagrams. Dropped (and counted) when full.
    pub datagrams: mpsc::Receiver<Inbound>,
    /// Messages. When full, readers wait, which holds back the senders.
    pub messages: mpsc::Receiver<Inbound>,
    /// Connection up/down. Dropped (and counted) when full.
    pub peers: mpsc::Receiver<PeerEvent>,
}

/// A handle to a node's QUIC endpoint. Cheap to clone; the endpoint closes when the last
/// handle is dropped or [`Transport::close`] is called.
#[derive(Clone)]
pub struct Transport {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close_all();
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.local_node_id())
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl Transport {
    /// Binds the endpoint and starts accepting. Must be called within a Tokio runtime.
    pub fn bind(config: TransportConfig, tls: &NodeTls) -> Result<(Transport, TransportEvents)> {
        config.validate()?;
        let policy = match &config.allowed_node_ids {
            Some(ids) => PeerPolicy::allow_only(ids.iter().copied()),
            None => PeerPolicy::default(),
        };
        let transport_config = Arc::new(quic_transport_config(&config)?);

        let server_tls = tls::server_config(tls, &policy)?;
        let server_crypto = QuicServerConfig::try_from(Arc::new(server_tls))
            .map_err(|e| Error::Tls(format!("server config unusable for QUIC: {e}")))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server_config.transport_config(transport_config.clone());

        let client_tls = tls::client_config(tls, &policy)?;
        let client_crypto = QuicClientConfig::try_from(client_tls)
            .map_err(|e| Error::Tls(format!("client config unusable for QUIC: {e}")))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport_config);

        // Both derived from the node key: a restarted node recognises the connection ids its
        // previous run issued and can sign resets for them (RFC 9000 §10.3).
        let secret = tls.reset_secret();
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
        // A separate derivation: connection ids are public and FxHash is no MAC, so the reset
        // key must not be recoverable from this one.
        let cid_digest =
            ring::digest::digest(&ring::digest::SHA256, &[&b"cid\0"[..], &secret].concat());
        let cid_key = u64::from_le_bytes(cid_digest.as_ref()[..8].try_into().expect("8 bytes"));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let bind_err = |source| Error::Bind {
            addr: config.bind_addr,
            source,
        };
        let socket = std::net::UdpSocket::bind(config.bind_addr).map_err(bind_err)?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        let local_addr = endpoint.local_addr().map_err(bind_err)?;

        let queue = config.recv_queue_len_max;
        let (datagrams_tx, datagrams) = mpsc::channel(queue);
        let (messages_tx, messages) = mpsc::channel(queue);
        let (peers_tx, peers) = mpsc::channel(queue);
        let senders = Senders {
            datagrams: datagrams_tx,
            messages: messages_tx,
            peers: peers_tx,
        };
        let shared = Arc::new(Shared::new(
            endpoint,
            tls.node_id(),
            local_addr,
            config,
            client_config,
            senders,
        ));
        tokio::spawn(tasks::accept_loop(shared.clone()));
        let events = TransportEvents {
            datagrams,
            messages,
            peers,
        };
        Ok((
            Transport {
                handle: Arc::new(Handle { shared }),
            },
            events,
        ))
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// This node's id (from its certificate).
    pub fn local_node_id(&self) -> NodeId {
        self.shared().local_id
    }

    /// The bound UDP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared().local_addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &TransportConfig {
        &self.shared().config
    }

    /// Sends an unreliable datagram. Never waits: without a connection it is held behind a dial
    /// (bounded) and sent when the connection is up. To a cut peer it is dropped silently, as a
    /// partition would; other drops are counted and returned as errors.
    pub fn send_datagram(&self, to: impl Into<Target>, bytes: Bytes) -> Result<()> {
        let shared = self.shared();
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let max = shared.config.datagram_bytes_max;
        if bytes.len() > max {
            Counters::inc(&shared.counters.dropped_oversized);
            return Err(Error::Oversized {
                what: "datagram",
                len: bytes.len(),
                max,
            });
        }
        match shared.route(to.into())? {
            Route::Cut => {
                Counters::inc(&shared.counters.dropped_partitioned);
                Ok(())
            }
            Route::Linked { peer, conn, .. } => shared.send_datagram_on(peer, Some(conn), bytes),
            Route::Dial(key) => shared.enqueue_dial(key, Pending::Datagram(bytes)),
        }
    }

    /// Sends a reliable message on its own stream. Never waits: it is queued for the peer
    /// (bounded by `send_queue_len_max`); a full queue drops it with [`Error::QueueFull`]. To a
    /// cut peer it is dropped silently, as a partition would.
    pub fn send_message(&self, to: impl Into<Target>, bytes: Bytes) -> Result<()> {
        let shared = self.shared();
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        let max = shared.config.message_bytes_max;
        if bytes.len() > max {
            Counters::inc(&shared.counters.dropped_oversized);
            return Err(Error::Oversized {
                what: "message",
                len: bytes.len(),
                max,
            });
        }
        match shared.route(to.into())? {
            Route::Cut => {
                Counters::inc(&shared.counters.dropped_partitioned);
                Ok(())
            }
            Route::Linked { peer, queue, .. } => shared.queue_message(peer, Some(&queue), bytes),
            Route::Dial(key) => shared.enqueue_dial(key, Pending::Message(bytes)),
        }
    }

    /// Connects to `addr` (or reuses the connection to it) and returns the node id its
    /// certificate binds. Used to resolve seed addresses.
    pub async fn connect(&self, addr: SocketAddr) -> Result<NodeId> {
        if self.shared().is_closed() {
            return Err(Error::Closed);
        }
        self.shared().connect(addr).await
    }

    /// Remembers where to dial `node_id` (membership calls this as members come and go).
    pub fn set_peer_addr(&self, node_id: NodeId, addr: SocketAddr) {
        self.shared().set_peer_addr(node_id, addr);
    }

    /// Peers with a live connection, and the address of that connection, sorted by node id.
    pub fn connected_peers(&self) -> Vec<(NodeId, SocketAddr)> {
        self.shared().connected_peers()
    }

    /// Cuts all traffic with `peers`, in both directions, until [`Transport::heal`]. Adds to
    /// the current cut set. Backs `CLUSTER PARTITION`.
    pub fn partition(&self, peers: &[NodeId]) {
        tracing::info!(?peers, "partition: cutting peers");
        self.shared().partition(peers);
    }

    /// Closes every connection to `peer` without cutting it; the next send dials a new one.
    ///
    /// Membership calls it when it declares `peer` down: after a real network partition the
    /// old connection may survive (its idle timeout is longer than SWIM's failure detection)
    /// stuck in QUIC's retransmission backoff, which would delay the first packets after the
    /// network heals by seconds. A fresh dial gets through as soon as the network does.
    pub fn reset_peer(&self, peer: NodeId) {
        tracing::debug!(%peer, "closing connections to a peer declared down");
        self.shared().reset_peer(peer);
    }

    /// Restores traffic with every cut peer. Backs `CLUSTER HEAL`.
    pub fn heal(&self) {
        tracing::info!("heal: restoring all peers");
        self.shared().heal();
    }

    /// The peers currently cut.
    pub fn cut_set(&self) -> BTreeSet<NodeId> {
        self.shared().cut_set()
    }

    /// Whether [`Transport::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared().is_closed()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> TransportCounters {
        self.shared().counters.snapshot()
    }

    /// Closes every connection and the endpoint, and waits (briefly) for the close to reach
    /// peers. Sends fail with [`Error::Closed`] afterwards.
    pub async fn close(&self) {
        self.shared().close_all();
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.shared().endpoint.wait_idle()).await;
    }
}

fn quic_transport_config(config: &TransportConfig) -> Result<quinn::TransportConfig> {
    let mut quic = quinn::TransportConfig::default();
    quic.max_concurrent_uni_streams(quinn::VarInt::from_u32(config.streams_per_peer_max));
    // Nothing in crdtkv uses bidirectional streams; refusing them closes that door.
    quic.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(config.idle_timeout_ms))
        .map_err(|_| Error::Config {
            key: "idle_timeout_ms",
            reason: "too large for QUIC".into(),
        })?;
    quic.max_idle_timeout(Some(idle));
    quic.keep_alive_interval(Some(Duration::from_millis(config.keep_alive_ms)));
    // Room for a burst of SWIM datagrams waiting to be read.
    quic.datagram_receive_buffer_size(Some(config.datagram_bytes_max.saturating_mul(256)));
    Ok(quic)
}
