//! One key in memory and how its writes reach the disk.
//!
//! Storage keeps per key a *base* state and a log of *deltas* (see the `storage` crate). Small
//! values are simply rewritten in full on every write: one put of a few dozen bytes. A large
//! value (a set of a million members, a long text) would cost its whole encoding on every write,
//! so once its base is larger than [`FULL_STATE_BELOW_BYTES`] writes append deltas instead, and
//! the base is rewritten when the deltas written since add up to its size: each byte of state is
//! rewritten a bounded number of times, whatever the value size (amortised O(delta) per write).
//!
//! Every record carries a per-key sequence number that only grows (it is never reset, not even
//! by a new base), and a base records the sequence number it includes. Connections commit their
//! batches independently, so two writes of one key may reach the disk in the opposite order to
//! the one they happened in memory: storage keeps the base with the highest sequence number, and
//! a delta arriving after a newer base is merely redundant, because merge is idempotent.

use crdt::Value;
use crdt::encoding::encode;
use storage::Op;

/// Values whose encoded base is at most this many bytes are rewritten in full on every write.
pub const FULL_STATE_BELOW_BYTES: usize = 1024;

/// A key's state and its persistence bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The CRDT state.
    pub value: Value,
    /// Encoded size of the base on disk (0: no base yet).
    base_bytes: u32,
    /// Bytes of deltas written since the base.
    delta_bytes: u32,
    /// The next sequence number to use.
    next_seq: u64,
    /// Anti-entropy bookkeeping: the entry hash counted in the shard's bucket digest.
    pub digest: gossip::digest::EntryDigest,
}

impl Entry {
    /// An entry loaded from disk.
    pub fn loaded(value: Value, base_bytes: usize, delta_bytes: usize, next_seq: u64) -> Self {
        Entry {
            value,
            base_bytes: clamp_u32(base_bytes),
            delta_bytes: clamp_u32(delta_bytes),
            next_seq,
            digest: gossip::digest::EntryDigest::default(),
        }
    }

    /// The op that makes the current state (just changed by `delta`) durable: the delta itself
    /// or a new base, by the policy in the module doc.
    pub fn persist(&mut self, key: &[u8], delta: &Value) -> Op {
        let seq = self.next_seq;
        self.next_seq += 1;
        if (self.base_bytes as usize) > FULL_STATE_BELOW_BYTES {
            let delta = encode(delta);
            if (self.delta_bytes as usize) + delta.len() <= self.base_bytes as usize {
                self.delta_bytes = clamp_u32(self.delta_bytes as usize + delta.len());
                return Op::AppendDelta {
                    key: key.to_vec(),
                    seq,
                    delta,
                };
            }
        }
        self.rebase(key, seq)
    }

    /// Bytes this key occupies on disk: its base and the deltas written since.
    pub fn stored_bytes(&self) -> usize {
        self.base_bytes as usize + self.delta_bytes as usize
    }

    /// The op that writes the whole current state as the new base (after a merge from a peer,
    /// which can change a lot at once).
    pub fn persist_full(&mut self, key: &[u8]) -> Op {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.rebase(key, seq)
    }

    fn rebase(&mut self, key: &[u8], seq: u64) -> Op {
        let state = encode(&self.value);
        self.base_bytes = clamp_u32(state.len());
        self.delta_bytes = 0;
        Op::PutState {
            key: key.to_vec(),
            state,
            version: seq,
        }
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{NodeId, Timestamp};

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(1),
        }
    }

    #[test]
    fn small_values_are_rewritten_large_ones_logged_then_rebased() {
        let mut e = Entry::default();
        let d = e.value.set_register(ts(1), b"small");
        assert!(matches!(
            e.persist(b"k", &d),
            Op::PutState { version: 0, .. }
        ));

        let mut big = Entry::default();
        let members: Vec<Vec<u8>> = (0..200u32)
            .map(|i| format!("member-{i:05}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
        let (d, _) = big.value.sadd(ts(2), &refs).unwrap();
        assert!(matches!(big.persist(b"s", &d), Op::PutState { .. }));
        let mut appended = 0;
        let mut rebased = 0;
        for i in 0..2000u32 {
            let (d, _) = big
                .value
                .sadd(ts(3 + u64::from(i)), &[format!("x{i}").as_bytes()])
                .unwrap();
            match big.persist(b"s", &d) {
                Op::AppendDelta { .. } => appended += 1,
                Op::PutState { .. } => rebased += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(appended > 1900, "large values append deltas ({appended})");
        assert!((1..20).contains(&rebased), "and rebase rarely ({rebased})");
    }

    #[test]
    fn sequence_numbers_only_grow() {
        let mut e = Entry::default();
        let mut last = None;
        for i in 0..5 {
            let d = e.value.set_register(ts(i), b"v");
            let seq = match e.persist(b"k", &d) {
                Op::PutState { version, .. } => version,
                Op::AppendDelta { seq, .. } => seq,
                other => panic!("unexpected {other:?}"),
            };
            assert!(last.is_none_or(|l| seq > l));
            last = Some(seq);
        }
    }
}
