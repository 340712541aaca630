//! The replication wire protocol: one enum of messages, sent as transport messages.
//!
//! ## Encoding
//! `[TAG]` then [`crdt::encoding::encode`] of the [`Message`]: the crdt format version byte, then
//! MessagePack. The tag byte tells replication messages apart from other protocols that may share
//! the transport's message channel; the version byte changes whenever the CRDT state format
//! (embedded in deltas and states) changes, so a node never misreads a peer of another version.
//!
//! ## Untrusted input
//! Messages come from authenticated cluster members, but a buggy or hostile member must not
//! crash or bloat a node. Decoding reads from the received slice, so no length in the input can
//! make it allocate more than the input's own size (see `crdt::encoding`); then
//! [`Message::check`] checks every count and size against the receiver's named limits before
//! anything is used. A message failing either is dropped and counted.

use crdt::{Timestamp, Value};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::config::ReplicationConfig;
use crate::digest::Tree;

/// First byte of every replication message ('R').
pub const TAG: u8 = 0x52;

/// Where a node's delta stream stood when it read its digests for anti-entropy (see the
/// freshness section of [`crate::replication`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPoint {
    /// The sender's delta stream (random per run of the replicator).
    pub stream: u64,
    /// The last batch number the sender had assigned.
    pub seq: u64,
    /// Every write the sender acknowledged before its clock read this is in its state.
    pub watermark: Timestamp,
}

/// The keys of one bucket in the key range after `after`, with their entry hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPage {
    /// The bucket.
    pub bucket: u32,
    /// The page covers keys strictly greater than this (all keys if `None`).
    pub after: Option<ByteBuf>,
    /// Keys in ascending order with their entry hashes.
    pub entries: Vec<(ByteBuf, u64)>,
    /// The page reaches the end of the bucket; otherwise it ends at its last key.
    pub complete: bool,
}

/// One replication message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Deltas of the sender's own writes.
    Deltas {
        /// The sender's stream.
        stream: u64,
        /// Batch number in the stream, from 1, without gaps unless batches were dropped.
        seq: u64,
        /// Every write the sender acknowledged before its clock read this is in batches ≤ `seq`.
        watermark: Timestamp,
        /// The oldest write timestamp in the batch (for the replication lag metric).
        oldest: Timestamp,
        /// Keys and merged deltas.
        entries: Vec<(ByteBuf, Value)>,
    },
    /// The watermark of an idle stream.
    Heartbeat {
        /// The sender's stream.
        stream: u64,
        /// The last batch number assigned.
        seq: u64,
        /// Every write acknowledged before this is in batches ≤ `seq`.
        watermark: Timestamp,
    },
    /// Opens an anti-entropy session: the initiator's root digest.
    AeStart {
        /// Session id chosen by the initiator.
        session: u64,
        /// The initiator's stream position and watermark.
        point: SyncPoint,
        /// The initiator's bucket bits; sessions between different trees are refused.
        leaf_bits: u32,
        /// The initiator's root digest.
        root: u64,
    },
    /// The responder's answer to `AeStart`.
    AeAccept {
        /// The session.
        session: u64,
        /// The responder's stream position and watermark.
        point: SyncPoint,
        /// The roots are equal: the session is over.
        in_sync: bool,
    },
    /// The initiator asks for the children digests of `nodes` at `level`.
    AeDescend {
        /// The session.
        session: u64,
        /// Request id, echoed in the reply.
        req: u32,
        /// Level of `nodes`.
        level: u8,
        /// Node indices at `level`.
        nodes: Vec<u32>,
    },
    /// Children digests, at `level`.
    AeDigests {
        /// The session.
        session: u64,
        /// The request answered.
        req: u32,
        /// Level of the digests.
        level: u8,
        /// `(node index, digest)`.
        digests: Vec<(u32, u64)>,
    },
    /// The initiator asks for key pages: `(bucket, after)`.
    AeKeysReq {
        /// The session.
        session: u64,
        /// Request id.
        req: u32,
        /// Buckets and where to start in each.
        pages: Vec<(u32, Option<ByteBuf>)>,
    },
    /// Key pages, in the order asked.
    AeKeys {
        /// The session.
        session: u64,
        /// The request answered.
        req: u32,
        /// One page per bucket asked (possibly empty and incomplete when the message is full).
        pages: Vec<KeyPage>,
    },
    /// The initiator ships states the responder lacks and asks for states it lacks.
    AeStates {
        /// The session.
        session: u64,
        /// Request id.
        req: u32,
        /// Full states.
        states: Vec<(ByteBuf, Value)>,
        /// Keys whose states the initiator wants.
        want: Vec<ByteBuf>,
    },
    /// The states wanted; `missing` lists those that did not fit (asked again).
    AeStatesReply {
        /// The session.
        session: u64,
        /// The request answered.
        req: u32,
        /// Full states.
        states: Vec<(ByteBuf, Value)>,
        /// Wanted keys left out for size.
        missing: Vec<ByteBuf>,
    },
    /// The initiator holds every state of the responder it lacked, and the responder acknowledged
    /// every state pushed: the session is over.
    AeDone {
        /// The session.
        session: u64,
    },
    /// The session cannot go on (different bucket bits); the receiver forgets it.
    AeAbort {
        /// The session.
        session: u64,
    },
}

/// Why a received message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a replication message, or unreadable.
    #[error("malformed replication message: {0}")]
    Malformed(String),
    /// A count or size beyond the receiver's limits.
    #[error("replication message over limit: {0}")]
    OverLimit(&'static str),
}

impl Message {
    /// The bytes to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TAG, crdt::encoding::FORMAT_VERSION];
        crdt::encoding::encode_into(self, &mut out);
        out
    }

    /// Decodes and checks a received message against `config`'s limits.
    pub fn decode(bytes: &[u8], config: &ReplicationConfig) -> Result<Message, WireError> {
        let body = match bytes.split_first() {
            Some((&TAG, body)) => body,
            _ => return Err(WireError::Malformed("not a replication message".into())),
        };
        let message: Message =
            crdt::encoding::decode(body).map_err(|e| WireError::Malformed(e.to_string()))?;
        message.check(config)?;
        Ok(message)
    }

    /// The session an anti-entropy message belongs to.
    pub fn session(&self) -> Option<u64> {
        match self {
            Message::Deltas { .. } | Message::Heartbeat { .. } => None,
            Message::AeStart { session, .. }
            | Message::AeAccept { session, .. }
            | Message::AeDescend { session, .. }
            | Message::AeDigests { session, .. }
            | Message::AeKeysReq { session, .. }
            | Message::AeKeys { session, .. }
            | Message::AeStates { session, .. }
            | Message::AeStatesReply { session, .. }
            | Message::AeDone { session }
            | Message::AeAbort { session } => Some(*session),
        }
    }

    /// Checks every count, size and index against the receiver's limits.
    pub fn check(&self, c: &ReplicationConfig) -> Result<(), WireError> {
        let keys_ok = |mut keys: Box<dyn Iterator<Item = &ByteBuf> + '_>| {
            keys.all(|k| k.len() <= c.key_bytes_max)
        };
        let depth = Tree::depth_for(c.leaf_bits);
        let buckets = 1u64 << c.leaf_bits;
        let ok = match self {
            Message::Deltas { entries, .. } => {
                limit(entries.len(), c.delta_batch_keys_max, "delta batch keys")?;
                keys_ok(Box::new(entries.iter().map(|(k, _)| k)))
            }
            Message::Heartbeat { .. }
            | Message::AeStart { .. }
            | Message::AeAccept { .. }
            | Message::AeDone { .. }
            | Message::AeAbort { .. } => true,
            Message::AeDescend { level, nodes, .. } => {
                limit(nodes.len(), c.ae_keys_per_message_max / 16, "descend nodes")?;
                *level < depth
                    && nodes
                        .iter()
                        .all(|&n| n < Tree::level_len(c.leaf_bits, *level))
            }
            Message::AeDigests { level, digests, .. } => {
                limit(digests.len(), c.ae_keys_per_message_max, "digests")?;
                *level <= depth
                    && digests
                        .iter()
                        .all(|&(n, _)| n < Tree::level_len(c.leaf_bits, *level))
            }
            Message::AeKeysReq { pages, .. } => {
                limit(pages.len(), c.ae_keys_per_message_max, "key pages")?;
                pages.iter().all(|(b, after)| {
                    u64::from(*b) < buckets
                        && after.as_ref().is_none_or(|k| k.len() <= c.key_bytes_max)
                })
            }
            Message::AeKeys { pages, .. } => {
                limit(pages.len(), c.ae_keys_per_message_max, "key pages")?;
                let keys: usize = pages.iter().map(|p| p.entries.len()).sum();
                limit(keys, c.ae_keys_per_message_max, "page keys")?;
                pages.iter().all(|p| {
                    u64::from(p.bucket) < buckets
                        && p.after.as_ref().is_none_or(|k| k.len() <= c.key_bytes_max)
                        && keys_ok(Box::new(p.entries.iter().map(|(k, _)| k)))
                })
            }
            Message::AeStates { states, want, .. } => {
                limit(
                    states.len() + want.len(),
                    c.ae_keys_per_message_max,
                    "states",
                )?;
                keys_ok(Box::new(states.iter().map(|(k, _)| k).chain(want.iter())))
            }
            Message::AeStatesReply {
                states, missing, ..
            } => {
                limit(
                    states.len() + missing.len(),
                    c.ae_keys_per_message_max,
                    "states",
                )?;
                keys_ok(Box::new(
                    states.iter().map(|(k, _)| k).chain(missing.iter()),
                ))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(WireError::OverLimit("key length, level or index"))
        }
    }
}

fn limit(n: usize, max: usize, what: &'static str) -> Result<(), WireError> {
    if n > max {
        Err(WireError::OverLimit(what))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::NodeId;

    fn ts() -> Timestamp {
        Timestamp {
            physical_ms: 5,
            logical: 1,
            node: NodeId(2),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let config = ReplicationConfig::default();
        let mut v = Value::new();
        v.set_register(ts(), b"x");
        let m = Message::Deltas {
            stream: 7,
            seq: 1,
            watermark: ts(),
            oldest: ts(),
            entries: vec![(ByteBuf::from(b"k".to_vec()), v)],
        };
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes, &config), Ok(m));
        assert!(matches!(
            Message::decode(&[], &config),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Message::decode(&bytes[1..], &config),
            Err(WireError::Malformed(_))
        ));
        let mut truncated = bytes.clone();
        truncated.pop();
        assert!(matches!(
            Message::decode(&truncated, &config),
            Err(WireError::Malformed(_))
        ));
        let mut bad_version = bytes.clone();
        bad_version[1] = 99;
        assert!(matches!(
            Message::decode(&bad_version, &config),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn limits_are_checked() {
        let config = ReplicationConfig {
            leaf_bits: 8,
            key_bytes_max: 4,
            ..ReplicationConfig::default()
        };
        let long_key = Message::AeStates {
            session: 1,
            req: 1,
            states: vec![],
            want: vec![ByteBuf::from(vec![0u8; 5])],
        };
        assert!(matches!(
            Message::decode(&long_key.encode(), &config),
            Err(WireError::OverLimit(_))
        ));
        let bad_bucket = Message::AeKeysReq {
            session: 1,
            req: 1,
            pages: vec![(256, None)],
        };
        assert!(bad_bucket.check(&config).is_err());
        let bad_level = Message::AeDescend {
            session: 1,
            req: 1,
            level: 2,
            nodes: vec![0],
        };
        assert!(bad_level.check(&config).is_err());
        let ok = Message::AeDescend {
            session: 1,
            req: 1,
            level: 1,
            nodes: vec![15],
        };
        assert!(ok.check(&config).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let config = ReplicationConfig::default();
        let mut seed = 0x1234_5678_u64;
        for len in 0..400 {
            let mut bytes = vec![TAG, crdt::encoding::FORMAT_VERSION];
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            let _ = Message::decode(&bytes, &config);
        }
        // A huge claimed array with nothing behind it.
        let bytes = [
            TAG,
            crdt::encoding::FORMAT_VERSION,
            0x81,
            0xa6,
            b'D',
            b'e',
            b'l',
            b't',
            b'a',
            b's',
            0xdd,
            0xff,
            0xff,
            0xff,
            0xff,
        ];
        assert!(Message::decode(&bytes, &config).is_err());
    }
}
