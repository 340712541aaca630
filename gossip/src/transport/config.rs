//! Transport limits and timings: every one named, with its unit last, defaulted in code.

use std::net::SocketAddr;

use crdt::NodeId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Configuration of the QUIC transport (the `[transport]` section of a node config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// UDP address of the node's single QUIC endpoint (server and client). Default
    /// `127.0.0.1:7000`; port 0 picks a free port (see `Transport::local_addr`).
    pub bind_addr: SocketAddr,
    /// If set, only these node ids may connect or be connected to, even with a valid cluster
    /// certificate. Default: any node id certified by the cluster CA.
    pub allowed_node_ids: Option<Vec<NodeId>>,
    /// Largest datagram payload sent or accepted; larger ones are dropped and counted.
    /// Default 1200. QUIC also caps a datagram at the path MTU (about 1150 bytes before MTU
    /// discovery raises it), so SWIM packets are kept below 1100 bytes.
    pub datagram_bytes_max: usize,
    /// Largest message payload sent or accepted; larger ones are dropped and counted, and their
    /// stream is stopped before any of the body is read. Default 8 MiB.
    pub message_bytes_max: usize,
    /// Concurrent message streams per peer, in each direction: the QUIC stream credit granted
    /// to the peer, and the most writes this node has in flight to it; further messages wait
    /// in the send queue. Default 64.
    pub streams_per_peer_max: u32,
    /// Concurrent QUIC connections, all peers together; further handshakes are refused.
    /// Default 256.
    pub connections_max: usize,
    /// Messages queued per peer (and datagrams or messages held while dialling it); a send to
    /// a full queue is dropped, counted and reported. Default 1024.
    pub send_queue_len_max: usize,
    /// Capacity of each receive channel (datagrams, messages, peer events). A full datagram
    /// channel drops (datagrams are unreliable anyway); a full message channel applies
    /// backpressure through QUIC flow control. Default 4096.
    pub recv_queue_len_max: usize,
    /// A connection silent this long is closed. Default 10000.
    pub idle_timeout_ms: u64,
    /// Keep-alive interval, so that an idle but healthy connection is never closed.
    /// Default 1000.
    pub keep_alive_ms: u64,
    /// Limit on a QUIC + TLS handshake, in either direction. Default 5000.
    pub connect_timeout_ms: u64,
    /// After a failed dial to an address, sends to it are dropped (and counted) for this long
    /// instead of re-dialling at every send. Default 500.
    pub redial_backoff_ms: u64,
    /// Limit on receiving one whole message once its stream is open (a peer that trickles a
    /// message slower than this has it dropped and counted as malformed), and on a peer taking
    /// one whole message we send (else it is abandoned and counted as unreachable).
    /// Default 30000.
    pub message_timeout_ms: u64,
    /// When two connections to one peer exist (both dialled at once), the loser is closed this
    /// long after the winner is chosen, so that what is in flight on it still arrives.
    /// Default 2000.
    pub duplicate_close_grace_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            allowed_node_ids: None,
            datagram_bytes_max: 1200,
            message_bytes_max: 8 * 1024 * 1024,
            streams_per_peer_max: 64,
            connections_max: 256,
            send_queue_len_max: 1024,
            recv_queue_len_max: 4096,
            idle_timeout_ms: 10_000,
            keep_alive_ms: 1_000,
            connect_timeout_ms: 5_000,
            redial_backoff_ms: 500,
            message_timeout_ms: 30_000,
            duplicate_close_grace_ms: 2_000,
        }
    }
}

impl TransportConfig {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.to_string(),
            })
        };
        if !(64..=65_000).contains(&self.datagram_bytes_max) {
            return bad("datagram_bytes_max", "must be between 64 and 65000");
        }
        if self.message_bytes_max == 0 || u32::try_from(self.message_bytes_max).is_err() {
            return bad("message_bytes_max", "must be between 1 and 4294967295");
        }
        if self.streams_per_peer_max == 0 {
            return bad("streams_per_peer_max", "must be at least 1");
        }
        if self.connections_max == 0 {
            return bad("connections_max", "must be at least 1");
        }
        if self.send_queue_len_max == 0 {
            return bad("send_queue_len_max", "must be at least 1");
        }
        if self.recv_queue_len_max == 0 {
            return bad("recv_queue_len_max", "must be at least 1");
        }
        if self.idle_timeout_ms == 0 {
            return bad("idle_timeout_ms", "must be at least 1");
        }
        if self.keep_alive_ms == 0 || self.keep_alive_ms >= self.idle_timeout_ms {
            return bad(
                "keep_alive_ms",
                "must be at least 1 and below idle_timeout_ms",
            );
        }
        if self.connect_timeout_ms == 0 {
            return bad("connect_timeout_ms", "must be at least 1");
        }
        if self.message_timeout_ms == 0 {
            return bad("message_timeout_ms", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        TransportConfig::default().validate().unwrap();
        let config = TransportConfig {
            keep_alive_ms: 20_000,
            ..TransportConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("keep_alive_ms"), "{err}");
    }
}
