//! The encoding of a [`Value`], written by hand: the same bytes as the serde encoding
//! ([`crate::encoding::encode`]), made several times faster.
//!
//! Every local write encodes its delta (and now and then its key's whole state) to persist it,
//! and through serde, one delta of a set cost about a tenth of a pipelined `SADD`: rmp-serde
//! drives each of the twenty-odd numbers and headers of a delta through its compound
//! serialisers and an `io::Write`. Here they are appended to a `Vec` directly, with
//! MessagePack's smallest forms, exactly as rmp picks them.
//!
//! Only the serde encoding defines the format: a property test (`tests/laws.rs`) checks that
//! both give the same bytes for every value its histories produce, and the golden vectors pin
//! the serde encoding. Text (RGA) states, whose encoding is more involved and which are not
//! written at this rate, are handed to serde.

use crate::causal::{CausalContext, Dot, VersionVector};
use crate::encoding::{ENCODE_RESERVE_BYTES, FORMAT_VERSION, encode_into};
use crate::hlc::Timestamp;
use crate::lww_register::LwwRegister;
use crate::or_set::OrSet;

use super::Value;
use super::counter::{Counter, NodeTally};
use super::part::{Data, Part};

/// Encodes `value` with the version marker: the bytes of [`crate::encoding::encode`].
pub fn encode_value(value: &Value) -> Vec<u8> {
    encode_in(value, Order::Canonical)
}

/// Encodes `value` with the version marker as [`encode_value`] does, except that a set's
/// members are listed in the order its table holds them: what storage keeps of a key's whole
/// state. Equal values may give different bytes, which is why anti-entropy fingerprints and the
/// wire use the canonical encoding; decoding accepts members in any order (and refuses a
/// duplicate), so both decode to the same value. Sorting is what this saves: for a set of a
/// hundred thousand members, the sort took more of a rewrite of its state than the encoding.
pub fn encode_state(value: &Value) -> Vec<u8> {
    encode_in(value, Order::Table)
}

/// How an encoding lists the members of a set.
#[derive(Clone, Copy)]
enum Order {
    /// In byte order: the canonical encoding.
    Canonical,
    /// As the set's table holds them.
    Table,
}

/// Appends the encoding of `value` (canonical, as [`encode_value`]) to `run`, a run of values
/// encoded that way ([`crate::encoding::append_to_run`]), without an encoding of its own to
/// copy and free: what a pipeline of writes to one key does for each of its deltas after the
/// first. Returns false, changing nothing, if `run` is of another format version (or empty).
pub fn encode_value_to_run(value: &Value, run: &mut Vec<u8>) -> bool {
    if run.first() != Some(&FORMAT_VERSION) {
        return false;
    }
    body_into(value, Order::Canonical, run);
    true
}

fn encode_in(value: &Value, order: Order) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCODE_RESERVE_BYTES);
    out.push(FORMAT_VERSION);
    body_into(value, order, &mut out);
    out
}

/// The encoding of `value` after its version marker.
fn body_into(value: &Value, order: Order, out: &mut Vec<u8>) {
    let parts = value.slice();
    array(out, parts.len());
    for part in parts {
        part_into(part, order, out);
    }
}

fn part_into(part: &Part, order: Order, out: &mut Vec<u8>) {
    array(out, 3);
    uint(out, u64::from(part.kind().tag()));
    timestamp(out, &part.created());
    match part.data() {
        Data::Register(r) => register(out, r),
        Data::PnCounter(c) | Data::GCounter(c) => counter(out, c),
        Data::Set(s) => set(out, s, order),
        Data::Text(t) => encode_into(&**t, out),
    }
}

fn register(out: &mut Vec<u8>, r: &LwwRegister) {
    array(out, 2);
    let entries = r.entries();
    array(out, entries.len());
    for e in entries {
        array(out, 3);
        dot(out, e.dot);
        timestamp(out, &e.ts);
        bin(out, &e.value);
    }
    context(out, &r.context());
}

fn counter(out: &mut Vec<u8>, c: &Counter) {
    let tallies = c.tallies();
    array(out, tallies.len());
    for (node, t) in tallies {
        array(out, 2);
        uint(out, node.0);
        let NodeTally {
            epoch,
            p,
            n,
            writes,
            rp,
            rn,
            rwrites,
        } = *t;
        array(out, 7);
        for field in [epoch, p, n, writes, rp, rn, rwrites] {
            uint(out, field);
        }
    }
}

fn set(out: &mut Vec<u8>, s: &OrSet, order: Order) {
    array(out, 2);
    let members = s.members();
    array(out, members.len());
    match order {
        Order::Canonical => members
            .canonical()
            .for_each(|(m, dots)| member(out, m, dots)),
        Order::Table => members
            .iter_unordered()
            .for_each(|(m, dots)| member(out, m, dots)),
    }
    context(out, s.context());
}

fn member(out: &mut Vec<u8>, m: &[u8], dots: &[Dot]) {
    array(out, 2);
    bin(out, m);
    array(out, dots.len());
    for &d in dots {
        dot(out, d);
    }
}

fn context(out: &mut Vec<u8>, ctx: &CausalContext) {
    array(out, 2);
    version_vector(out, ctx.vv());
    let cloud = ctx.cloud();
    array(out, cloud.len());
    for &d in cloud {
        dot(out, d);
    }
}

fn version_vector(out: &mut Vec<u8>, vv: &VersionVector) {
    array(out, vv.iter().len());
    for (node, counter) in vv.iter() {
        array(out, 2);
        uint(out, node.0);
        uint(out, counter);
    }
}

fn timestamp(out: &mut Vec<u8>, ts: &Timestamp) {
    array(out, 3);
    uint(out, ts.physical_ms);
    uint(out, u64::from(ts.logical));
    uint(out, ts.node.0);
}

fn dot(out: &mut Vec<u8>, d: Dot) {
    array(out, 2);
    uint(out, d.node.0);
    uint(out, d.counter);
}

/// An unsigned integer in its smallest form (rmp's `write_uint`).
fn uint(out: &mut Vec<u8>, n: u64) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.extend_from_slice(&[0xcc, n as u8]);
    } else if n <= u64::from(u16::MAX) {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An array header (rmp's `write_array_len`).
fn array(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else {
        wide_len(out, len, 0xdc, 0xdd);
    }
}

/// A byte string (rmp's `write_bin`).
fn bin(out: &mut Vec<u8>, bytes: &[u8]) {
    match u8::try_from(bytes.len()) {
        Ok(len) => out.extend_from_slice(&[0xc4, len]),
        Err(_) => wide_len(out, bytes.len(), 0xc5, 0xc6),
    }
    out.extend_from_slice(bytes);
}

/// A header of type `tag16` with a 16-bit length, or `tag32` with a 32-bit one, whichever
/// holds `len`: the larger forms of MessagePack's array and bin headers.
fn wide_len(out: &mut Vec<u8>, len: usize, tag16: u8, tag32: u8) {
    match u16::try_from(len) {
        Ok(len) => {
            out.push(tag16);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            out.push(tag32);
            out.extend_from_slice(&len_u32(len).to_be_bytes());
        }
    }
}

/// A length as MessagePack's largest header holds it. Values never reach 4 GiB (the value size
/// limit is far below); were one to, this panics where rmp would write a truncated header.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a length under 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::encode;
    use crate::node_id::NodeId;

    fn ts(ms: u64, logical: u32, node: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical,
            node: NodeId(node),
        }
    }

    #[test]
    fn a_value_encoded_onto_a_run_is_the_run_of_its_encoding() {
        let mut set = Value::new();
        let (first, _) = set.sadd(ts(1, 0, 7), &[b"a".as_slice()]).unwrap();
        let (second, _) = set.sadd(ts(2, 0, 7), &[b"a".as_slice(), b"b"]).unwrap();
        let mut register = Value::new();
        let third = register.set_register(ts(3, 0, 7), b"v");
        let mut expected = encode_value(&first);
        let mut run = expected.clone();
        for delta in [&second, &third] {
            assert!(crate::encoding::append_to_run(
                &mut expected,
                &encode_value(delta)
            ));
            assert!(encode_value_to_run(delta, &mut run));
        }
        assert_eq!(run, expected);
        let mut decoded = Vec::new();
        crate::encoding::decode_run(&run, |v: Value| decoded.push(v)).unwrap();
        assert_eq!(decoded, vec![first, second, third.clone()]);
        // A run of another format version, or no run at all, is left alone.
        for mut other in [vec![FORMAT_VERSION + 1, 0x90], Vec::new()] {
            let before = other.clone();
            assert!(!encode_value_to_run(&third, &mut other));
            assert_eq!(other, before);
        }
    }

    #[test]
    fn every_integer_and_length_form_matches_serde() {
        // Each boundary of MessagePack's integer, array and bin forms.
        let numbers = [
            0,
            0x7f,
            0x80,
            0xff,
            0x100,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ];
        for &n in &numbers {
            let mut v = Value::new();
            let t = ts(n, u32::try_from(n).unwrap_or(u32::MAX), n.max(1));
            v.set_register(t, &vec![b'x'; (n as usize).min(70_000)]);
            assert_eq!(encode_value(&v), encode(&v), "register at {n}");
            let mut c = Value::new();
            c.incr_by(t, i64::try_from(n).unwrap_or(i64::MAX)).unwrap();
            assert_eq!(encode_value(&c), encode(&c), "counter at {n}");
        }
        for len in [0, 15, 16, 255, 256, 65_535, 65_536] {
            let mut s = Value::new();
            let members: Vec<Vec<u8>> = (0..len.min(300))
                .map(|i: usize| format!("m{i}").into_bytes())
                .collect();
            let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
            if !refs.is_empty() {
                s.sadd(ts(1, 0, 1), &refs).unwrap();
            }
            let long = vec![b'y'; len];
            s.sadd(ts(2, 0, 2), &[long.as_slice()]).unwrap();
            assert_eq!(encode_value(&s), encode(&s), "set with {len}");
        }
    }

    #[test]
    fn wide_vectors_clouds_and_registers_match_serde() {
        // Twenty nodes: version vectors and register entries past the 16 of a short array.
        let mut set = Value::new();
        let mut register = Value::new();
        for node in 1..=20u64 {
            let mut s = Value::new();
            s.sadd(ts(5, 0, node), &[format!("m{node}").as_bytes()])
                .unwrap();
            crate::Merge::merge(&mut set, s);
            let mut r = Value::new();
            r.set_register(ts(5, 0, node), b"v");
            crate::Merge::merge(&mut register, r);
        }
        assert_eq!(encode_value(&set), encode(&set));
        assert_eq!(encode_value(&register), encode(&register));
        // Re-adding every member replaces dots that are not a contiguous prefix: a cloud.
        let (delta, _) = set
            .sadd(
                ts(6, 0, 1),
                &(1..=20u64)
                    .map(|n| format!("m{n}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|m| m.as_bytes())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(encode_value(&delta), encode(&delta));
        assert_eq!(encode_value(&set), encode(&set));
    }

    /// The state encoding lists a set's members in the order memory holds them: the same bytes up to that
    /// order, and the same value decoded; it is the canonical encoding for every other type.
    #[test]
    fn the_state_encoding_decodes_to_the_same_value() {
        let mut set = Value::new();
        let members: Vec<Vec<u8>> = (0..500u32)
            .map(|i| format!("member-{i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
        set.sadd(ts(1, 0, 1), &refs).unwrap();
        set.srem(&refs[..100]).unwrap();
        let mut other = Value::new();
        other.sadd(ts(2, 0, 2), &refs[50..150]).unwrap();
        crate::Merge::merge(&mut set, other);
        let (state, canonical) = (encode_state(&set), encode_value(&set));
        assert_ne!(state, canonical, "500 members in hash order are not sorted");
        let sorted = |bytes: &[u8]| {
            let mut b = bytes.to_vec();
            b.sort_unstable();
            b
        };
        assert_eq!(sorted(&state), sorted(&canonical));
        assert_eq!(crate::encoding::decode::<Value>(&state), Ok(set.clone()));
        let mut text = Value::new();
        text.text_insert(ts(1, 0, 1), 0, "héllo").unwrap();
        let mut counter = Value::new();
        counter.incr_by(ts(1, 0, 1), 7).unwrap();
        for v in [text, counter, Value::new()] {
            assert_eq!(encode_state(&v), encode_value(&v));
        }
    }

    #[test]
    fn text_and_multi_part_values_match_serde() {
        let mut v = Value::new();
        v.text_insert(ts(1, 0, 1), 0, "héllo").unwrap();
        assert_eq!(encode_value(&v), encode(&v));
        let mut other = Value::new();
        other.sadd(ts(1, 1, 2), &[b"a".as_slice()]).unwrap();
        crate::Merge::merge(&mut v, other);
        assert!(v.parts().len() >= 2);
        assert_eq!(encode_value(&v), encode(&v));
        assert_eq!(encode_value(&Value::new()), encode(&Value::new()));
    }
}
