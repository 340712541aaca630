//! How user keys become RocksDB keys in the `state` and `deltas` column families.
//!
//! A user key is arbitrary bytes (Redis keys are binary-safe, the empty key included). It is
//! written *escaped and terminated*: every `0x00` byte becomes `0x00 0xFF`, and the key ends
//! with `0x00 0x01`. This encoding is
//!
//! * **order-preserving**: encoded keys compare like the user keys, so a RocksDB iteration is
//!   in user-key order and both column families can be merge-joined in one pass;
//! * **prefix-free**: no encoded key is a prefix of another, so the deltas of one key — stored
//!   as `encoded key ++ seq (u64 big-endian)` — are exactly the RocksDB keys starting with the
//!   encoded key, one contiguous range `[encoded, range_end)` where `range_end` replaces the
//!   final `0x01` by `0x02`. That range is what `PutState` deletes.
//!
//! Length prefixes would also be prefix-free, but they order keys by length first; escaping
//! keeps the natural byte order that a `BTreeMap<Vec<u8>, _>` model and a human expect, at the
//! price of one extra byte per `0x00` in a key.
//!
//! Decoding is strict: anything that is not a well-formed encoding is reported as corrupt
//! instead of being guessed at.

/// Escape marker: the byte that needs escaping, and the first byte of the terminator.
const ESC: u8 = 0x00;
/// Follows [`ESC`] to mean a literal `0x00` in the key.
const ESC_ZERO: u8 = 0xFF;
/// Follows [`ESC`] to end the key.
const ESC_END: u8 = 0x01;
/// Length of the sequence number suffix of a delta key.
const SEQ_BYTES: usize = 8;

/// Appends the escaped, terminated form of `key` to `out`.
pub(crate) fn encode_into(key: &[u8], out: &mut Vec<u8>) {
    out.reserve(key.len() + 2);
    for &b in key {
        out.push(b);
        if b == ESC {
            out.push(ESC_ZERO);
        }
    }
    out.extend_from_slice(&[ESC, ESC_END]);
}

/// The `state` column family key of `key`.
pub(crate) fn state_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2);
    encode_into(key, &mut out);
    out
}

/// Appends the `deltas` column family key of (`key`, `seq`) to `out`.
pub(crate) fn delta_key_into(key: &[u8], seq: u64, out: &mut Vec<u8>) {
    encode_into(key, out);
    out.extend_from_slice(&seq.to_be_bytes());
}

/// The exclusive end of the range holding every delta of the key whose encoding is `encoded`.
pub(crate) fn range_end(encoded: &[u8]) -> Vec<u8> {
    let mut end = encoded.to_vec();
    // `encoded` always ends with ESC_END; bumping it makes the smallest key above every key
    // that has `encoded` as a prefix.
    if let Some(last) = end.last_mut() {
        *last = ESC_END + 1;
    }
    end
}

/// Decodes a whole `state` key (or the encoded-key prefix of a delta key). Returns the user
/// key, or what is wrong.
pub(crate) fn decode_state_key(raw: &[u8]) -> Result<Vec<u8>, String> {
    let used = prefix_len(raw)?;
    if used != raw.len() {
        return Err(format!(
            "{} bytes after the key terminator",
            raw.len() - used
        ));
    }
    let mut key = Vec::with_capacity(raw.len() - 2);
    let mut bytes = raw[..used - 2].iter();
    while let Some(&b) = bytes.next() {
        key.push(b);
        if b == ESC {
            bytes.next(); // the ESC_ZERO that prefix_len checked
        }
    }
    Ok(key)
}

/// Checks a `deltas` key without allocating. Returns the length of its encoded-key prefix (to
/// compare with a `state` key, or to decode) and the sequence number.
pub(crate) fn decode_delta_key(raw: &[u8]) -> Result<(usize, u64), String> {
    let used = prefix_len(raw)?;
    let seq: [u8; SEQ_BYTES] = raw[used..].try_into().map_err(|_| {
        format!(
            "delta key has {} bytes after the key, expected {SEQ_BYTES}",
            raw.len() - used
        )
    })?;
    Ok((used, u64::from_be_bytes(seq)))
}

/// Validates the escaped key at the start of `raw`; returns its length, terminator included.
fn prefix_len(raw: &[u8]) -> Result<usize, String> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != ESC {
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(&ESC_ZERO) => i += 2,
            Some(&ESC_END) => return Ok(i + 2),
            Some(other) => return Err(format!("invalid escape 0x00 0x{other:02x} at byte {i}")),
            None => break,
        }
    }
    Err("key terminator missing".to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn delta_key(key: &[u8], seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        delta_key_into(key, seq, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        assert_eq!(state_key(b""), [0x00, 0x01]);
        assert_eq!(state_key(b"a\x00"), [b'a', 0x00, 0xFF, 0x00, 0x01]);
        assert_eq!(delta_key(b"k", 258), [b'k', 0, 1, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(range_end(&state_key(b"k")), [b'k', 0x00, 0x02]);
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(decode_state_key(b"abc").is_err(), "no terminator");
        assert!(decode_state_key(&[b'a', 0x00]).is_err(), "cut escape");
        assert!(
            decode_state_key(&[0x00, 0x07, 0x00, 0x01]).is_err(),
            "bad escape"
        );
        assert!(
            decode_state_key(&[0x00, 0x01, b'x']).is_err(),
            "trailing bytes"
        );
        assert!(
            decode_delta_key(&[b'k', 0x00, 0x01, 1, 2]).is_err(),
            "short seq"
        );
        assert!(decode_delta_key(&[b'k', 0x00, 0x01]).is_err(), "no seq");
    }

    fn any_key() -> impl Strategy<Value = Vec<u8>> {
        // Bias towards the bytes that matter for the escaping.
        prop::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(2), Just(0xff), any::<u8>()],
            0..8,
        )
    }

    proptest! {
        #[test]
        fn round_trip(key in any_key(), seq in any::<u64>()) {
            prop_assert_eq!(decode_state_key(&state_key(&key)).unwrap(), key.clone());
            let enc = delta_key(&key, seq);
            let (prefix, s) = decode_delta_key(&enc).unwrap();
            prop_assert_eq!(s, seq);
            prop_assert_eq!(&enc[..prefix], &state_key(&key)[..]);
            prop_assert_eq!(decode_state_key(&enc[..prefix]).unwrap(), key.clone());
        }

        #[test]
        fn order_is_preserved(a in any_key(), b in any_key()) {
            prop_assert_eq!(state_key(&a).cmp(&state_key(&b)), a.cmp(&b));
        }

        #[test]
        fn deltas_of_a_key_are_exactly_its_range(
            a in any_key(), b in any_key(), sa in any::<u64>(), sb in any::<u64>()
        ) {
            let (start, end) = (state_key(&a), range_end(&state_key(&a)));
            let da = delta_key(&a, sa);
            prop_assert!(start <= da && da < end);
            let db = delta_key(&b, sb);
            prop_assert_eq!(start <= db && db < end, a == b);
            // Deltas of one key sort by sequence number.
            prop_assert_eq!(delta_key(&a, sa).cmp(&delta_key(&a, sb)), sa.cmp(&sb));
            // Keys and deltas interleave in user-key order, so one merge-join pass works.
            if a < b {
                prop_assert!(da < state_key(&b) && da < db);
            }
        }
    }
}
