//! The persistent and wire encoding of CRDT state: one version byte, then MessagePack
//! (rmp-serde, structs as arrays).
//!
//! * The **version marker** lets the format evolve: a reader refuses a version it does not know
//!   instead of misreading it. Bump [`FORMAT_VERSION`] (and add a golden vector) on any change.
//! * Encodings are **canonical**: every type keeps a normalised representation (sorted vectors,
//!   compacted contexts, maximal text runs), so equal states encode to equal bytes. Anti-entropy
//!   compares hashes of these bytes, and golden vectors in `tests/golden/` pin them. The one
//!   exception is the state storage rewrites now and then, which lists a set's members in table
//!   order ([`crate::value::encode_state`]); decoding accepts set members in any order.
//! * **Decoding untrusted bytes** returns an error and never panics. It reads from a borrowed
//!   in-memory slice, so a length prefix in the input can never make it allocate more than the
//!   input's own size; serde's sequence visitors cap pre-allocation ("cautious" size hints); nesting depth is
//!   capped by [`MAX_DEPTH`]; and each type validates its invariants while deserialising.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::DecodeError;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Deepest nesting accepted when decoding. Our types nest a handful of levels; hostile input
/// that nests deeper is refused before it can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// Room reserved by [`encode`] before serialising: enough for the state of a small key (a
/// register of a hundred bytes encodes to about 150), so that it is allocated once instead of
/// doubling its way up from one byte.
pub(crate) const ENCODE_RESERVE_BYTES: usize = 256;

/// Encodes `value` with the version marker.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCODE_RESERVE_BYTES);
    out.push(FORMAT_VERSION);
    encode_into(value, &mut out);
    out
}

/// Appends the MessagePack encoding of `value` (without the version marker) to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serialising our own types into a Vec cannot fail: they contain no maps with non-string
    // keys that MessagePack cannot represent and no custom serialisers that error.
    value
        .serialize(&mut rmp_serde::Serializer::new(out))
        .expect("serialising crdt state into memory cannot fail");
}

/// Decodes bytes produced by [`encode`]. Refuses unknown versions, malformed input and trailing
/// bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_body(versioned_body(bytes)?)
}

/// The MessagePack body behind the version marker, if the version is ours.
fn versioned_body(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(body)
}

/// A deserializer over `body` with the nesting limit.
fn deserializer(
    body: &[u8],
) -> rmp_serde::Deserializer<rmp_serde::decode::ReadReader<std::io::Cursor<&[u8]>>> {
    // `ReadReader` over a cursor reads a length-prefixed payload with `take(len).read_to_end`,
    // which grows only as far as the bytes actually present.
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(body));
    de.set_max_depth(MAX_DEPTH);
    de
}

/// Decodes a MessagePack body without version marker (for wire messages that carry the
/// version once for many values).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let mut de = deserializer(body);
    let value = T::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let rest = body.len() - usize::try_from(de.position()).unwrap_or(body.len());
    if rest != 0 {
        return Err(DecodeError::TrailingBytes(rest));
    }
    Ok(value)
}

/// Appends the value encoded in `encoded` (by [`encode`]) to `run`, which holds one or more
/// values encoded the same way, so that [`decode_run`] yields them all. Returns false, changing
/// nothing, if the two were written with different format versions.
///
/// A run costs one record where the values would cost one each: the node stores the deltas
/// of consecutive writes to one key as one run.
pub fn append_to_run(run: &mut Vec<u8>, encoded: &[u8]) -> bool {
    match (run.first(), encoded.split_first()) {
        (Some(a), Some((b, body))) if a == b => {
            run.extend_from_slice(body);
            true
        }
        _ => false,
    }
}

/// Decodes a run of values built by [`encode`] and [`append_to_run`] (a single encoded value
/// is a run of one), calling `each` with every value in order; returns how many there were.
/// Refuses unknown versions, malformed input and an empty run.
pub fn decode_run<T: DeserializeOwned>(
    bytes: &[u8],
    mut each: impl FnMut(T),
) -> Result<usize, DecodeError> {
    let body = versioned_body(bytes)?;
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut de = deserializer(body);
    let mut count = 0;
    while usize::try_from(de.position()).unwrap_or(usize::MAX) < body.len() {
        each(T::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))?);
        count += 1;
    }
    Ok(count)
}

/// A stable 128-bit fingerprint of a state's canonical encoding (xxh3-128). Equal states have
/// equal fingerprints on every node and every build with the same [`FORMAT_VERSION`].
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> u128 {
    let mut buf = Vec::with_capacity(ENCODE_RESERVE_BYTES);
    encode_into(value, &mut buf);
    xxhash_rust::xxh3::xxh3_128(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causal::VersionVector;
    use crate::node_id::NodeId;

    #[test]
    fn round_trip_and_version_marker() {
        let vv: VersionVector = [(NodeId(1), 2)].into_iter().collect();
        let bytes = encode(&vv);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<VersionVector>(&bytes).unwrap(), vv);
    }

    #[test]
    fn refuses_unknown_version_empty_and_trailing() {
        let vv: VersionVector = [(NodeId(1), 2)].into_iter().collect();
        let mut bytes = encode(&vv);
        assert_eq!(decode::<VersionVector>(&[]), Err(DecodeError::Empty));
        bytes.push(0);
        assert_eq!(
            decode::<VersionVector>(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
        bytes[0] = 9;
        assert!(matches!(
            decode::<VersionVector>(&bytes),
            Err(DecodeError::UnsupportedVersion { found: 9, .. })
        ));
    }

    #[test]
    fn runs_hold_several_values_and_decode_in_order() {
        let values: Vec<VersionVector> = (1..=3)
            .map(|c| [(NodeId(1), c)].into_iter().collect())
            .collect();
        let mut run = encode(&values[0]);
        for v in &values[1..] {
            assert!(append_to_run(&mut run, &encode(v)));
        }
        let mut decoded = Vec::new();
        assert_eq!(decode_run(&run, |v: VersionVector| decoded.push(v)), Ok(3));
        assert_eq!(decoded, values);
        // A plain encoding is a run of one; a foreign version is not joined.
        assert_eq!(
            decode_run(&encode(&values[0]), |_: VersionVector| {}),
            Ok(1)
        );
        let mut other = encode(&values[0]);
        other[0] = FORMAT_VERSION + 1;
        assert!(!append_to_run(&mut run, &other));
        // Truncated and empty runs are refused.
        let cut = &run[..run.len() - 1];
        assert!(matches!(
            decode_run(cut, |_: VersionVector| {}),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode_run(&[FORMAT_VERSION], |_: VersionVector| {}),
            Err(DecodeError::Empty)
        );
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // array32 claiming 4 billion elements, with nothing behind it.
        let bytes = [FORMAT_VERSION, 0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode::<VersionVector>(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend(std::iter::repeat_n(0x91u8, 10_000)); // fixarray of 1, nested
        bytes.push(0xc0);
        assert!(decode::<Vec<serde_json::Value>>(&bytes).is_err());
    }
}
