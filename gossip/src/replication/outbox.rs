//! The sending end of this node's delta stream: pending deltas merged per key, batch numbers and
//! the watermark each batch or heartbeat can claim (see "Freshness" in [`super`]).

use std::collections::HashMap;

use crdt::{Merge, Timestamp, Value};
use serde_bytes::ByteBuf;

use super::config::ReplicationConfig;
use super::wire::{Message, SyncPoint};

pub(crate) struct Outbox {
    stream: u64,
    /// The last batch number assigned (including batches that were never sent).
    seq: u64,
    pending: HashMap<Vec<u8>, Value>,
    pending_bytes: usize,
    oldest: Option<Timestamp>,
    /// The node's clock as last sampled by the driver, before it drained the local deltas:
    /// every write acknowledged before this has been submitted.
    latest: Timestamp,
    /// Every write acknowledged before this is in batches ≤ `seq`.
    covered: Timestamp,
    last_flush_ms: Option<u64>,
    scratch: Vec<u8>,
}

impl Outbox {
    pub(crate) fn new(stream: u64, clock: Timestamp) -> Self {
        Outbox {
            stream,
            seq: 0,
            pending: HashMap::new(),
            pending_bytes: 0,
            oldest: None,
            latest: clock,
            // Nothing was acknowledged by this run before it started; writes of earlier runs are
            // not in this stream, which is why a new stream needs anti-entropy first.
            covered: clock,
            last_flush_ms: None,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn stream(&self) -> u64 {
        self.stream
    }

    /// Where the stream stands now, for anti-entropy: everything acknowledged before
    /// `latest` is in the local state, and every assigned batch has been applied locally.
    pub(crate) fn point(&self) -> SyncPoint {
        SyncPoint {
            stream: self.stream,
            seq: self.seq,
            watermark: self.latest,
        }
    }

    /// The node's clock, as last sampled.
    pub(crate) fn clock(&self) -> Timestamp {
        self.latest
    }

    /// Adds a local delta; returns whether the batch is full and must be flushed.
    pub(crate) fn submit(
        &mut self,
        key: Vec<u8>,
        delta: Value,
        ts: Timestamp,
        config: &ReplicationConfig,
    ) -> bool {
        self.scratch.clear();
        crdt::encoding::encode_into(&delta, &mut self.scratch);
        self.pending_bytes += self.scratch.len() + key.len();
        self.oldest = Some(self.oldest.map_or(ts, |o| o.min(ts)));
        match self.pending.get_mut(&key) {
            // Deltas are states: two deltas of one key travel as their join.
            Some(v) => v.merge(delta),
            None => {
                self.pending.insert(key, delta);
            }
        }
        self.pending_bytes >= config.delta_batch_bytes_max
            || self.pending.len() >= config.delta_batch_keys_max
    }

    /// A local delta was lost before it reached the outbox: burn a batch number so that every
    /// peer sees a gap and repairs by anti-entropy instead of trusting later watermarks.
    pub(crate) fn skip(&mut self) {
        self.seq += 1;
    }

    /// A fresh clock sample.
    pub(crate) fn set_clock(&mut self, clock: Timestamp) {
        self.latest = self.latest.max(clock);
        if self.pending.is_empty() {
            self.covered = self.latest;
        }
    }

    /// Whether the pending batch should go now: it is due `delay_ms` after the previous flush,
    /// which sends a delta at once after a quiet period.
    pub(crate) fn flush_due(&self, now_ms: u64, delay_ms: u64) -> Option<u64> {
        if self.pending.is_empty() {
            return None;
        }
        Some(
            self.last_flush_ms
                .map_or(now_ms, |t| t.saturating_add(delay_ms)),
        )
    }

    /// Takes the pending deltas as the next batch: `(message, keys)`.
    pub(crate) fn flush(&mut self, now_ms: u64) -> Option<(Message, usize)> {
        if self.pending.is_empty() {
            return None;
        }
        self.seq += 1;
        self.covered = self.latest;
        self.last_flush_ms = Some(now_ms);
        self.pending_bytes = 0;
        let entries: Vec<(ByteBuf, Value)> = self
            .pending
            .drain()
            .map(|(k, v)| (ByteBuf::from(k), v))
            .collect();
        let keys = entries.len();
        let message = Message::Deltas {
            stream: self.stream,
            seq: self.seq,
            watermark: self.covered,
            oldest: self.oldest.take().unwrap_or(self.covered),
            entries,
        };
        Some((message, keys))
    }

    /// A heartbeat with what the stream can claim now.
    pub(crate) fn heartbeat(&self) -> Message {
        Message::Heartbeat {
            stream: self.stream,
            seq: self.seq,
            watermark: self.covered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::NodeId;

    fn t(ms: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(1),
        }
    }

    #[test]
    fn deltas_of_one_key_merge_and_watermarks_only_cover_flushed_writes() {
        let config = ReplicationConfig::default();
        let mut out = Outbox::new(5, t(0));
        let mut v = Value::new();
        let (d1, _) = v.incr_by(t(1), 1).unwrap();
        let (d2, _) = v.incr_by(t(2), 2).unwrap();
        assert!(!out.submit(b"k".to_vec(), d1, t(1), &config));
        assert!(!out.submit(b"k".to_vec(), d2, t(2), &config));
        out.set_clock(t(3));
        let Message::Heartbeat { watermark, seq, .. } = out.heartbeat() else {
            panic!()
        };
        assert_eq!(
            (seq, watermark),
            (0, t(0)),
            "pending writes are not covered yet"
        );
        let (batch, keys) = out.flush(10).unwrap();
        assert_eq!(keys, 1);
        let Message::Deltas {
            seq,
            watermark,
            oldest,
            entries,
            ..
        } = batch
        else {
            panic!()
        };
        assert_eq!((seq, watermark, oldest), (1, t(3), t(1)));
        assert_eq!(entries[0].1, v, "the two increments travel as one state");
        assert_eq!(out.flush_due(10, 2), None);
        out.skip();
        assert_eq!(out.point().seq, 2);
    }

    #[test]
    fn flush_is_immediate_after_quiet_and_delayed_under_load() {
        let config = ReplicationConfig::default();
        let mut out = Outbox::new(5, t(0));
        let mut v = Value::new();
        out.submit(b"a".to_vec(), v.set_register(t(1), b"x"), t(1), &config);
        assert_eq!(out.flush_due(100, 2), Some(100));
        out.flush(100);
        out.submit(b"a".to_vec(), v.set_register(t(2), b"y"), t(2), &config);
        assert_eq!(out.flush_due(100, 2), Some(102));
    }

    #[test]
    fn a_full_batch_asks_to_flush() {
        let config = ReplicationConfig {
            delta_batch_keys_max: 2,
            ..ReplicationConfig::default()
        };
        let mut out = Outbox::new(5, t(0));
        let mut v = Value::new();
        assert!(!out.submit(b"a".to_vec(), v.set_register(t(1), b"x"), t(1), &config));
        assert!(out.submit(b"b".to_vec(), v.set_register(t(2), b"x"), t(2), &config));
    }
}
