//! One key in memory and how its writes reach the disk.
//!
//! Storage keeps per key a *base* state and a log of *deltas* (see the `storage` crate). Small
//! values are simply rewritten in full on every write: one put of a few dozen bytes. A large
//! value (a set of a million members, a long text) would cost its whole encoding on every write,
//! so once its base is larger than [`FULL_STATE_BELOW_BYTES`] writes append deltas instead, and
//! the base is rewritten when the deltas written since add up to [`DELTA_BYTES_PER_BASE_BYTE`]
//! times its size: each byte of state is rewritten a bounded number of times, whatever the value
//! size (amortised O(delta) per write), and the deltas a load merges are bounded by the base.
//!
//! Every record carries a per-key sequence number that only grows (it is never reset, not even
//! by a new base), and a base records the sequence number it includes. Connections commit their
//! batches independently, so two writes of one key may reach the disk in the opposite order to
//! the one they happened in memory: storage keeps the base with the highest sequence number, and
//! a delta arriving after a newer base is merely redundant, because merge is idempotent.

use crdt::Value;
use crdt::value::{encode_state, encode_value, encode_value_to_run};
use gossip::digest::EntryDigest;
use storage::Op;

use super::Key;
use crate::write_set::WriteSet;

/// Values whose encoded base is at most this many bytes are rewritten in full on every write.
pub const FULL_STATE_BELOW_BYTES: usize = 1024;

/// How many bytes of deltas a large value's base may collect, per byte of base, before the base
/// is rewritten. Each rewrite re-encodes the whole value (a hundred thousand members of a set
/// take milliseconds), so the budget trades that CPU against the deltas on disk that a restart
/// merges: with 4, rewriting costs a write about a quarter of its delta's size in re-encoded
/// state, and a key's records stay within five times its base.
pub const DELTA_BYTES_PER_BASE_BYTE: usize = 4;

/// A key, its state and its persistence bookkeeping.
///
/// Laid out for a million keys: one allocation of 128 bytes holds the key (inline when short),
/// the value (its one part inline) and the sequence number, which is all a small value on a
/// standalone node needs. The sizes of a large value's records and the anti-entropy digest of
/// a replicated node live behind [`Extra`], allocated for the keys that need them.
#[derive(Debug, Clone)]
pub struct Entry {
    key: Key,
    /// The CRDT state.
    pub value: Value,
    /// The next sequence number to use.
    next_seq: u64,
    /// `None`: the base (if any) is small, no delta is stored since it, and the node keeps no
    /// digest of this key.
    extra: Option<Box<Extra>>,
}

/// What only a large value, or a replicated node's key, needs.
#[derive(Debug, Clone, Default)]
struct Extra {
    /// Encoded size of the base on disk (0: no base yet).
    base_bytes: u32,
    /// Bytes of deltas written since the base.
    delta_bytes: u32,
    /// Anti-entropy bookkeeping: the entry hash counted in the shard's bucket digest.
    digest: EntryDigest,
}

impl Entry {
    /// The entry of a key never written: no part, nothing on disk.
    pub fn new(key: Key) -> Self {
        Entry {
            key,
            value: Value::new(),
            next_seq: 0,
            extra: None,
        }
    }

    /// An entry loaded from disk.
    pub fn loaded(
        key: Key,
        value: Value,
        base_bytes: usize,
        delta_bytes: usize,
        next_seq: u64,
    ) -> Self {
        let mut entry = Entry {
            key,
            value,
            next_seq,
            extra: None,
        };
        entry.set_sizes(base_bytes, delta_bytes);
        entry
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The anti-entropy bookkeeping of this key (the default if none was kept).
    pub fn digest(&self) -> EntryDigest {
        self.extra
            .as_ref()
            .map_or_else(EntryDigest::default, |e| e.digest)
    }

    /// The anti-entropy bookkeeping of this key, to change (kept from now on).
    pub fn digest_mut(&mut self) -> &mut EntryDigest {
        self.digest_parts_mut().2
    }

    /// The key and the value, with the anti-entropy bookkeeping to change (kept from now on):
    /// what a digest refresh reads and updates at once.
    pub fn digest_parts_mut(&mut self) -> (&[u8], &Value, &mut EntryDigest) {
        let extra = self.extra.get_or_insert_with(Box::default);
        (&self.key, &self.value, &mut extra.digest)
    }

    /// The op that makes the current state (just changed by `delta`) durable: the delta itself
    /// or a new base, by the policy in the module doc.
    pub fn persist(&mut self, delta: &Value) -> Op {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(extra) = self.extra.as_deref_mut()
            && let Some(budget) = extra.delta_budget()
        {
            let delta = encode_value(delta);
            if (extra.delta_bytes as usize) + delta.len() <= budget {
                extra.delta_bytes = clamp_u32(extra.delta_bytes as usize + delta.len());
                return Op::AppendDelta {
                    key: self.key.to_vec(),
                    seq,
                    delta,
                };
            }
        }
        self.rebase(seq)
    }

    /// Makes the current state (just changed by `delta`) durable through `ws`, by the policy
    /// of [`persist`](Self::persist). A delta that follows one of the same key in the batch
    /// (a pipeline of writes to one large set) is encoded straight onto that record's run,
    /// without a buffer or key copy of its own: about 3% of the CPU of `SADD -P 16`.
    pub fn persist_into(&mut self, delta: &Value, ws: &mut WriteSet) {
        let seq = self.next_seq;
        if let Some(extra) = self.extra.as_deref_mut()
            && let Some(budget) = extra.delta_budget()
            && let Some(grown) =
                ws.append_to_delta_run(&self.key, |run| encode_value_to_run(delta, run))
        {
            self.next_seq += 1;
            extra.delta_bytes = clamp_u32(extra.delta_bytes as usize + grown);
            if extra.delta_bytes as usize > budget {
                // The new base replaces the run it follows in the batch (it includes it).
                let op = self.rebase(seq);
                ws.push_op(op);
            }
            return;
        }
        let op = self.persist(delta);
        ws.push_op(op);
    }

    /// Whether the key's records on disk, its base and the deltas written since, are at most
    /// [`FULL_STATE_BELOW_BYTES`]: a small value, rewritten whole on every change.
    pub fn is_small(&self) -> bool {
        self.extra.as_ref().is_none_or(|e| {
            e.base_bytes as usize + e.delta_bytes as usize <= FULL_STATE_BELOW_BYTES
        })
    }

    /// The op that writes the whole current state as the new base (after a merge from a peer,
    /// which can change a lot at once).
    pub fn persist_full(&mut self) -> Op {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.rebase(seq)
    }

    fn rebase(&mut self, seq: u64) -> Op {
        // Members in the order memory holds them: sorting a large set's costs more than encoding it.
        let state = encode_state(&self.value);
        self.set_sizes(state.len(), 0);
        Op::PutState {
            key: self.key.to_vec(),
            state,
            version: seq,
        }
    }

    /// Records the sizes of the key's records; allocates [`Extra`] only for a large value.
    fn set_sizes(&mut self, base_bytes: usize, delta_bytes: usize) {
        let large = base_bytes > FULL_STATE_BELOW_BYTES || delta_bytes > 0;
        match self.extra.as_deref_mut() {
            Some(extra) => {
                extra.base_bytes = clamp_u32(base_bytes);
                extra.delta_bytes = clamp_u32(delta_bytes);
            }
            None if large => {
                self.extra = Some(Box::new(Extra {
                    base_bytes: clamp_u32(base_bytes),
                    delta_bytes: clamp_u32(delta_bytes),
                    digest: EntryDigest::default(),
                }));
            }
            // Small and no digest kept: nothing to record.
            None => {}
        }
    }
}

impl Extra {
    /// The bytes of deltas the base may collect before it is rewritten; `None` for a small
    /// base, which is rewritten on every write instead.
    fn delta_budget(&self) -> Option<usize> {
        let base = self.base_bytes as usize;
        (base > FULL_STATE_BELOW_BYTES).then(|| base.saturating_mul(DELTA_BYTES_PER_BASE_BYTE))
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

    /// The entry of a set too large to be rewritten on every write, and the delta that made it.
    fn large_set(at: Timestamp) -> (Entry, Value) {
        let mut big = Entry::new(b"s".as_slice().into());
        let members: Vec<Vec<u8>> = (0..200u32)
            .map(|i| format!("member-{i:05}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
        let (d, _) = big.value.sadd(at, &refs).unwrap();
        (big, d)
    }

    /// Re-adds `member` to `entry`'s set and persists the delta through `ws`; the delta.
    fn readd(entry: &mut Entry, at: Timestamp, member: &[u8], ws: &mut WriteSet) -> Value {
        let (d, _) = entry.value.sadd(at, &[member]).unwrap();
        entry.persist_into(&d, ws);
        d
    }

    #[test]
    fn small_values_are_rewritten_large_ones_logged_then_rebased() {
        let mut e = Entry::new(b"k".as_slice().into());
        let d = e.value.set_register(ts(1), b"small");
        assert!(matches!(e.persist(&d), Op::PutState { version: 0, .. }));

        let (mut big, d) = large_set(ts(2));
        assert!(matches!(big.persist(&d), Op::PutState { .. }));
        let mut appended = 0;
        let mut rebased = 0;
        for i in 0..2000u32 {
            let (d, _) = big
                .value
                .sadd(ts(3 + u64::from(i)), &[format!("x{i}").as_bytes()])
                .unwrap();
            match big.persist(&d) {
                Op::AppendDelta { .. } => appended += 1,
                Op::PutState { .. } => rebased += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(appended > 1900, "large values append deltas ({appended})");
        assert!((1..20).contains(&rebased), "and rebase rarely ({rebased})");
    }

    #[test]
    fn deltas_of_one_large_key_in_a_batch_are_encoded_onto_one_run() {
        let (mut big, d) = large_set(ts(1));
        let mut ws = WriteSet::new();
        big.persist_into(&d, &mut ws);
        assert!(matches!(ws.ops(), [Op::PutState { .. }]));
        ws.clear();
        let mut deltas = Vec::new();
        for i in 0..3u64 {
            let d = readd(&mut big, ts(2 + i), b"member-00001", &mut ws);
            deltas.push(d);
        }
        let [Op::AppendDelta { key, seq, delta }] = ws.ops() else {
            panic!("one record expected: {:?}", ws.ops());
        };
        assert_eq!((key.as_slice(), *seq), (b"s".as_slice(), 1));
        let mut decoded = Vec::new();
        crdt::encoding::decode_run(delta, |v: Value| decoded.push(v)).unwrap();
        assert_eq!(decoded, deltas);
        assert_eq!(big.next_seq, 4);
        // Past the budget, a new base replaces the run it follows.
        let mut rebased = false;
        for i in 0..2000u64 {
            readd(&mut big, ts(10 + i), b"member-00002", &mut ws);
            if let [.., Op::PutState { version, .. }] = ws.ops() {
                assert_eq!(*version, big.next_seq - 1);
                rebased = true;
                break;
            }
            assert_eq!(ws.ops().len(), 1, "one run while under the budget");
        }
        assert!(rebased && ws.ops().len() == 1);
    }

    #[test]
    fn a_small_value_on_a_standalone_node_takes_no_extra_allocation() {
        let mut e = Entry::new(b"k".as_slice().into());
        let d = e.value.set_register(ts(1), b"small");
        e.persist(&d);
        assert!(e.extra.is_none() && e.is_small());
        // Growing large records the sizes; a digest is kept once asked for.
        let big = vec![b'x'; 2 * FULL_STATE_BELOW_BYTES];
        let d = e.value.set_register(ts(2), &big);
        e.persist(&d);
        assert!(e.extra.is_some() && !e.is_small());
        let mut small = Entry::new(b"s".as_slice().into());
        small.digest_mut();
        assert!(small.extra.is_some() && small.is_small());
    }

    #[test]
    fn sequence_numbers_only_grow() {
        let mut e = Entry::new(b"k".as_slice().into());
        let mut last = None;
        for i in 0..5 {
            let d = e.value.set_register(ts(i), b"v");
            let seq = match e.persist(&d) {
                Op::PutState { version, .. } => version,
                Op::AppendDelta { seq, .. } => seq,
                other => panic!("unexpected {other:?}"),
            };
            assert!(last.is_none_or(|l| seq > l));
            last = Some(seq);
        }
    }
}
