//! Inline commands: a line of space-separated words, as typed into `telnet` or sent by
//! `redis-cli` in some modes. The splitting rules are Redis' `sdssplitargs`:
//!
//! * words are separated by spaces, tabs, CR or LF;
//! * `"double quotes"` allow `\xHH` hex escapes and `\n \r \t \b \a` (any other escaped
//!   character stands for itself);
//! * `'single quotes'` allow only `\'`;
//! * a closing quote must be followed by a space or the end of the line, and a quote must be
//!   closed: otherwise the request is refused ("unbalanced quotes");
//! * the line is read as a C string: an unquoted NUL byte ends it.
//!
//! Decoding happens in place. An escape is never shorter than what it decodes to, so each word
//! is rewritten over its own bytes and its [`Span`] points at the decoded text: no allocation.

use super::args::Span;

/// `isspace` of the C locale.
/// Byte `i` of `line`, read like a C string: the line "ends" with NUL; past the end is 0.
fn at(line: &[u8], i: usize) -> u8 {
    line.get(i).copied().unwrap_or(0)
}

/// At byte `r` of `line` a quoted word ends: a closing quote must be followed by a space or the
/// end of the line, and the line must not end (byte 0) inside the quotes.
fn close_quote(line: &[u8], r: usize) -> Result<(), UnbalancedQuotes> {
    if at(line, r) == 0 || (at(line, r + 1) != 0 && !is_space(at(line, r + 1))) {
        return Err(UnbalancedQuotes);
    }
    Ok(())
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The quotes are not balanced (the only way an inline line can be malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbalancedQuotes;

/// Splits `line` (without its line ending) into words, decoding them in place and appending
/// their spans, offset by `base`, to `spans`.
pub fn split_in_place(
    line: &mut [u8],
    base: u32,
    spans: &mut Vec<Span>,
) -> Result<(), UnbalancedQuotes> {
    // `line` is at most `inline_bytes_max` bytes, which validation keeps under 4 GiB.
    let offset = |i: usize| base + i as u32;
    let mut r = 0;
    loop {
        while at(line, r) != 0 && is_space(at(line, r)) {
            r += 1;
        }
        if at(line, r) == 0 {
            return Ok(());
        }
        // Decoded bytes of this word are written from its first byte on; `w <= r` always holds
        // because every decoded byte consumes at least one input byte.
        let start = r;
        let mut w = r;
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        while !done {
            let c = at(line, r);
            if in_double {
                if c == b'\\' && at(line, r + 1) == b'x' {
                    if let (Some(hi), Some(lo)) =
                        (hex_value(at(line, r + 2)), hex_value(at(line, r + 3)))
                    {
                        line[w] = hi * 16 + lo;
                        w += 1;
                        r += 3;
                    } else {
                        // `\x` without two hex digits: an ordinary escape of `x`.
                        r += 1;
                        line[w] = b'x';
                        w += 1;
                    }
                } else if c == b'\\' && at(line, r + 1) != 0 {
                    r += 1;
                    line[w] = match at(line, r) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    };
                    w += 1;
                } else if c == b'"' || c == 0 {
                    close_quote(line, r)?;
                    done = true;
                } else {
                    line[w] = c;
                    w += 1;
                }
            } else if in_single {
                if c == b'\\' && at(line, r + 1) == b'\'' {
                    r += 1;
                    line[w] = b'\'';
                    w += 1;
                } else if c == b'\'' || c == 0 {
                    close_quote(line, r)?;
                    done = true;
                } else {
                    line[w] = c;
                    w += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => {
                        line[w] = c;
                        w += 1;
                    }
                }
            }
            if at(line, r) != 0 {
                r += 1;
            }
        }
        spans.push(Span {
            start: offset(start),
            end: offset(w),
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
        let mut buf = line.to_vec();
        let mut spans = Vec::new();
        split_in_place(&mut buf, 0, &mut spans)?;
        Ok(spans.iter().map(|s| buf[s.range()].to_vec()).collect())
    }

    fn words(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn plain_words() {
        assert_eq!(split(b"set  k\tv").unwrap(), words(&["set", "k", "v"]));
        assert_eq!(split(b"   ").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(split(b"").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            split(br#""foo\x41" 'b c' "\n""#).unwrap(),
            words(&["fooA", "b c", "\n"])
        );
        assert_eq!(
            split(br#""a\"b" 'it\'s'"#).unwrap(),
            words(&["a\"b", "it's"])
        );
        assert_eq!(split(br#""" ''"#).unwrap(), words(&["", ""]));
        assert_eq!(split(br#"a"b c"d"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"a"b c" d"#).unwrap(), words(&["ab c", "d"]));
        assert_eq!(split(br#""\xZZ\q""#).unwrap(), words(&["xZZq"]));
        assert_eq!(
            split(br#""\t\r\a\b""#).unwrap(),
            vec![b"\t\r\x07\x08".to_vec()]
        );
        assert_eq!(split(b"\"\\xff\\x00\"").unwrap(), vec![vec![0xff, 0x00]]);
    }

    #[test]
    fn unbalanced() {
        for line in [
            &br#""abc"#[..],
            br#"'abc"#,
            br#""abc"x"#,
            br#"'a'b"#,
            b"\"a\0b\"",
        ] {
            assert_eq!(
                split(line),
                Err(UnbalancedQuotes),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn nul_ends_the_line_like_a_c_string() {
        assert_eq!(split(b"ping\0 garbage").unwrap(), words(&["ping"]));
        assert_eq!(split(b"\0ping").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn spans_are_offset_by_base() {
        let mut buf = b"a bc".to_vec();
        let mut spans = Vec::new();
        split_in_place(&mut buf, 10, &mut spans).unwrap();
        assert_eq!(
            spans,
            vec![Span { start: 10, end: 11 }, Span { start: 12, end: 14 }]
        );
    }

    proptest! {
        /// Quoting any bytes the way redis-cli does and splitting gives the bytes back.
        #[test]
        fn quoted_round_trip(parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..5)) {
            let mut line = Vec::new();
            for p in &parts {
                line.push(b'"');
                for &b in p {
                    if b.is_ascii_alphanumeric() { line.push(b) } else {
                        line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    }
                }
                line.extend_from_slice(b"\" ");
            }
            prop_assert_eq!(split(&line).unwrap(), parts);
        }

        #[test]
        fn never_panics(line in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = split(&line);
        }
    }
}
