//! Integers as Redis reads them (`string2ll` in Redis' util.c): an optional `-`, then either
//! `0` alone or a digit 1-9 followed by digits, nothing else — no `+`, no spaces, no leading
//! zeros, no `-0`. Used for `*N` / `$N` headers and for integer arguments, so that `SELECT 01`
//! or `$+5` are refused exactly where Redis refuses them.

/// Parses `s` as a signed 64-bit integer with Redis' rules; `None` if it is not one or
/// overflows.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if first == b'0' {
        // "0" alone is zero; "-0", "00" and "01" are not integers for Redis.
        return (!negative && rest.is_empty()).then_some(0);
    }
    if !first.is_ascii_digit() {
        return None;
    }
    // Accumulate as a negative number so that i64::MIN, whose magnitude does not fit in an
    // i64, parses without a special case.
    let mut acc: i64 = -i64::from(first - b'0');
    for &b in rest {
        if !b.is_ascii_digit() {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(acc)
    } else {
        acc.checked_neg()
    }
}

/// Parses `s` as a non-negative integer with Redis' rules; `None` otherwise.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    parse_i64(s).and_then(|v| u64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn redis_rules() {
        for (s, v) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("00", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1a", None),
            ("0x10", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), v, "{s:?}");
        }
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"18"), Some(18));
    }

    proptest! {
        #[test]
        fn agrees_with_display(v in any::<i64>()) {
            prop_assert_eq!(parse_i64(v.to_string().as_bytes()), Some(v));
        }

        #[test]
        fn never_panics(s in prop::collection::vec(any::<u8>(), 0..24)) {
            let _ = parse_i64(&s);
        }
    }
}
