//! The transport's IO tasks: accepting and dialling connections, one task per connection for
//! its datagrams and incoming streams, one writer per peer, one reader per incoming message.
//!
//! ## Message framing
//! A message travels alone on a fresh unidirectional stream: a 4-byte big-endian length, the
//! payload, then the end of the stream. A stream per message means no head-of-line blocking
//! between messages, a bad message spoils only its own stream, and QUIC stream credit
//! (`streams_per_peer_max`) bounds how many one peer can have in flight. Messages are therefore
//! not ordered with respect to each other; the layers above ship CRDT deltas and digests, which
//! do not need order. The length is checked against `message_bytes_max` before any of the body
//! is read, and the body buffer grows with the bytes that actually arrive, so a forged length
//! costs nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use crdt::NodeId;
use quinn::{Connection, ConnectionError, ReadError, ReadExactError, RecvStream, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Inbound;
use super::counters::Counters;
use super::shared::{DialKey, Shared};
use crate::error::{Error, Result};
use crate::tls::{ANY_NODE_NAME, node_dns_name, node_id_from_cert};

/// Length of the message length prefix.
pub(crate) const PREFIX_LEN: usize = 4;
/// Stream stop codes, so that a sender's logs say why its message was refused.
const STOP_TOO_LARGE: VarInt = VarInt::from_u32(1);
const STOP_MALFORMED: VarInt = VarInt::from_u32(2);
/// Reset code of a message abandoned because the peer did not take it in time.
const RESET_TIMED_OUT: VarInt = VarInt::from_u32(3);
/// First allocation for a message body; it grows as bytes arrive.
const BODY_CAPACITY_INITIAL_BYTES: usize = 64 * 1024;

/// The node id bound by the peer's verified certificate.
pub(crate) fn peer_node_id(conn: &Connection) -> Result<NodeId> {
    let identity = conn.peer_identity().ok_or_else(|| Error::CertNodeId {
        reason: "peer presented no certificate".into(),
    })?;
    let certs = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| Error::CertNodeId {
            reason: "peer identity is not a certificate chain".into(),
        })?;
    let first = certs.first().ok_or_else(|| Error::CertNodeId {
        reason: "empty certificate chain".into(),
    })?;
    node_id_from_cert(first)
}

/// Accepts incoming connections until the endpoint closes.
pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let busy = shared.connection_count() + shared.handshaking.load(Ordering::Relaxed);
        if busy >= shared.config.connections_max || shared.is_closed() {
            incoming.refuse();
            Counters::inc(&shared.counters.connections_refused);
            continue;
        }
        shared.handshaking.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            let limit = Duration::from_millis(shared.config.connect_timeout_ms);
            let outcome = tokio::time::timeout(limit, incoming).await;
            shared.handshaking.fetch_sub(1, Ordering::Relaxed);
            let conn = match outcome {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "incoming handshake failed");
                    Counters::inc(&shared.counters.handshake_failures);
                    return;
                }
                Err(_) => {
                    Counters::inc(&shared.counters.handshake_failures);
                    return;
                }
            };
            match peer_node_id(&conn) {
                Ok(peer) => {
                    if let Err(e) = shared.admit(conn, peer) {
                        tracing::debug!(error = %e, "incoming connection refused");
                    }
                }
                Err(e) => {
                    // Unreachable with our verifier; refuse rather than trust an unnamed peer.
                    tracing::warn!(error = %e, "authenticated peer without a node id");
                    conn.close(super::shared::CLOSE_REFUSED, b"no node id");
                    Counters::inc(&shared.counters.handshake_failures);
                }
            }
        });
    }
}

/// Dials `key.addr`, expecting `key.expected` if set, then settles everything queued behind
/// the dial.
pub(crate) async fn dial(shared: Arc<Shared>, key: DialKey) {
    let result = dial_once(&shared, key).await;
    if let Err(reason) = &result {
        tracing::debug!(addr = %key.addr, %reason, "dial failed");
    }
    shared.finish_dial(key, result);
}

async fn dial_once(shared: &Arc<Shared>, key: DialKey) -> std::result::Result<NodeId, String> {
    let name = key
        .expected
        .map_or_else(|| ANY_NODE_NAME.to_string(), node_dns_name);
    let connecting = shared
        .endpoint
        .connect_with(shared.client_config.clone(), key.addr, &name)
        .map_err(|e| {
            Counters::inc(&shared.counters.dial_failures);
            e.to_string()
        })?;
    let limit = Duration::from_millis(shared.config.connect_timeout_ms);
    let conn = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(ConnectionError::TimedOut)) | Err(_) => {
            Counters::inc(&shared.counters.dial_failures);
            return Err("handshake timed out".into());
        }
        Ok(Err(e)) => {
            Counters::inc(&shared.counters.handshake_failures);
            return Err(e.to_string());
        }
    };
    let peer = peer_node_id(&conn).map_err(|e| {
        Counters::inc(&shared.counters.handshake_failures);
        conn.close(super::shared::CLOSE_REFUSED, b"no node id");
        e.to_string()
    })?;
    if key.expected.is_some_and(|expected| expected != peer) {
        // The verifier already pins the name; this guards against a verifier change.
        conn.close(super::shared::CLOSE_REFUSED, b"wrong node");
        Counters::inc(&shared.counters.handshake_failures);
        return Err(format!("expected node {:?}, found {peer}", key.expected));
    }
    shared.admit(conn, peer).map_err(|e| e.to_string())?;
    Ok(peer)
}

/// Serves one connection: delivers its datagrams, spawns a reader per incoming stream, and
/// reports the end of the connection.
pub(crate) async fn run_connection(shared: Arc<Shared>, conn: Connection, peer: NodeId) {
    loop {
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => on_datagram(&shared, peer, bytes),
                Err(_) => break,
            },
            stream = conn.accept_uni() => match stream {
                Ok(recv) => {
                    tokio::spawn(read_message(shared.clone(), peer, recv));
                }
                Err(_) => break,
            },
        }
    }
    shared.on_closed(peer, &conn);
}

fn on_datagram(shared: &Shared, peer: NodeId, bytes: Bytes) {
    let counters = &shared.counters;
    if shared.is_cut(peer) {
        Counters::inc(&counters.dropped_partitioned);
    } else if bytes.len() > shared.config.datagram_bytes_max {
        Counters::inc(&counters.dropped_oversized);
    } else {
        // Counted before delivery, so that whoever reads it never sees the counter lag behind.
        Counters::inc(&counters.datagrams_received);
        Counters::add(&counters.bytes_received, bytes.len() as u64);
        if shared
            .tx
            .datagrams
            .try_send(Inbound { from: peer, bytes })
            .is_err()
        {
            Counters::inc(&counters.dropped_queue_full);
        }
    }
}

enum ReadOutcome {
    Message(Bytes),
    Oversized,
    Malformed,
    /// The sender reset the stream or the connection went away: nobody's fault to count.
    Aborted,
}

async fn read_message(shared: Arc<Shared>, peer: NodeId, mut recv: RecvStream) {
    let limit = Duration::from_millis(shared.config.message_timeout_ms);
    let max = shared.config.message_bytes_max;
    let outcome = tokio::time::timeout(limit, read_framed(&mut recv, max))
        .await
        .unwrap_or(ReadOutcome::Malformed);
    let counters = &shared.counters;
    match outcome {
        ReadOutcome::Message(bytes) => {
            if shared.is_cut(peer) {
                Counters::inc(&counters.dropped_partitioned);
                return;
            }
            Counters::inc(&counters.messages_received);
            Counters::add(&counters.bytes_received, bytes.len() as u64);
            // Awaiting here is the backpressure: a slow consumer holds the stream open, which
            // holds the sender's stream credit. An error means the consumer is gone.
            let _ = shared.tx.messages.send(Inbound { from: peer, bytes }).await;
        }
        ReadOutcome::Oversized => {
            Counters::inc(&counters.dropped_oversized);
            let _ = recv.stop(STOP_TOO_LARGE);
        }
        ReadOutcome::Malformed => {
            Counters::inc(&counters.dropped_malformed);
            let _ = recv.stop(STOP_MALFORMED);
        }
        ReadOutcome::Aborted => {}
    }
}

async fn read_framed(recv: &mut RecvStream, max: usize) -> ReadOutcome {
    let mut prefix = [0u8; PREFIX_LEN];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => return ReadOutcome::Malformed,
        Err(ReadExactError::ReadError(e)) => return read_error(e),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return ReadOutcome::Oversized;
    }
    let mut body = BytesMut::new();
    let mut whole = None;
    while body.len() < len && whole.is_none() {
        match recv.read_chunk(len - body.len(), true).await {
            // The common case of a small message in one chunk needs no copy.
            Ok(Some(chunk)) if body.is_empty() && chunk.bytes.len() == len => {
                whole = Some(chunk.bytes);
            }
            Ok(Some(chunk)) => {
                if body.capacity() == 0 {
                    body.reserve(len.min(BODY_CAPACITY_INITIAL_BYTES));
                }
                body.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return ReadOutcome::Malformed,
            Err(e) => return read_error(e),
        }
    }
    // The stream must end exactly where the prefix said.
    match recv.read_chunk(1, true).await {
        Ok(None) => ReadOutcome::Message(whole.unwrap_or_else(|| body.freeze())),
        Ok(Some(_)) => ReadOutcome::Malformed,
        Err(e) => read_error(e),
    }
}

fn read_error(e: ReadError) -> ReadOutcome {
    match e {
        ReadError::Reset(_) | ReadError::ConnectionLost(_) | ReadError::ClosedStream => {
            ReadOutcome::Aborted
        }
        ReadError::IllegalOrderedRead | ReadError::ZeroRttRejected => ReadOutcome::Malformed,
    }
}

/// Drains one peer's message queue: opens a stream per message on the peer's current link and
/// hands the write to its own task, so one large message does not hold up the others. At most
/// `streams_per_peer_max` writes are in flight, whatever stream credit the peer grants, so a
/// peer that stops reading pins a bounded amount of memory.
pub(crate) async fn write_loop(shared: Arc<Shared>, peer: NodeId, mut rx: mpsc::Receiver<Bytes>) {
    let in_flight = Arc::new(Semaphore::new(shared.config.streams_per_peer_max as usize));
    while let Some(message) = rx.recv().await {
        if shared.is_cut(peer) {
            Counters::inc(&shared.counters.dropped_partitioned);
            continue;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        // Opening waits for stream credit; the link may be replaced meanwhile (a duplicate
        // resolved, a stale connection reset), so a failed open is retried once on the new one.
        let mut stream = None;
        let mut tried = None;
        for _ in 0..2 {
            let Some(conn) = shared.link_conn(peer) else {
                break;
            };
            if tried == Some(conn.stable_id()) {
                break;
            }
            tried = Some(conn.stable_id());
            if let Ok(send) = conn.open_uni().await {
                stream = Some(send);
                break;
            }
        }
        match stream {
            Some(send) => {
                tokio::spawn(write_one(shared.clone(), send, message, permit));
            }
            None => Counters::inc(&shared.counters.dropped_unreachable),
        }
    }
}

async fn write_one(
    shared: Arc<Shared>,
    mut send: quinn::SendStream,
    message: Bytes,
    _permit: OwnedSemaphorePermit,
) {
    let len = message.len();
    // `send_message` checked the length against `message_bytes_max`, itself below u32::MAX.
    let prefix = (len as u32).to_be_bytes();
    let limit = Duration::from_millis(shared.config.message_timeout_ms);
    let written = tokio::time::timeout(limit, async {
        send.write_all(&prefix).await.map_err(|e| e.to_string())?;
        send.write_chunk(message).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| {
        let _ = send.reset(RESET_TIMED_OUT);
        Err("peer did not take the message in time".into())
    });
    let counters = &shared.counters;
    match written {
        Ok(()) => {
            Counters::inc(&counters.messages_sent);
            Counters::add(&counters.bytes_sent, len as u64);
        }
        Err(reason) => {
            tracing::debug!(%reason, "message write failed");
            Counters::inc(&counters.dropped_unreachable);
        }
    }
}
