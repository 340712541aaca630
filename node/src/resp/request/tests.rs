use proptest::prelude::*;

use super::*;

const LIMITS: ParseLimits = ParseLimits {
    bulk_bytes_max: 1024,
    array_len_max: 1000,
    inline_bytes_max: 64,
    query_buffer_bytes_max: 4096,
    unauth_bulk_bytes_max: 16,
    unauth_array_len_max: 10,
};

/// Parses every request of `input` (all of it must be complete); returns the argument lists.
fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut buf = input.to_vec();
    let mut parser = RequestParser::new();
    let mut start = 0;
    let mut out = Vec::new();
    while start < buf.len() {
        match parser.parse(&mut buf[start..], &LIMITS, true)? {
            Parsed::Command { consumed } => {
                let req = &buf[start..start + consumed];
                out.push(
                    parser
                        .spans()
                        .iter()
                        .map(|s| req[s.range()].to_vec())
                        .collect(),
                );
                start += consumed;
            }
            Parsed::Nothing { consumed } => start += consumed,
            Parsed::Incomplete => panic!("incomplete at {start}"),
        }
    }
    Ok(out)
}

fn first_error(input: &[u8], authenticated: bool) -> Option<ProtocolError> {
    let mut buf = input.to_vec();
    let mut parser = RequestParser::new();
    let mut start = 0;
    loop {
        match parser.parse(&mut buf[start..], &LIMITS, authenticated) {
            Err(e) => return Some(e),
            Ok(Parsed::Command { consumed } | Parsed::Nothing { consumed }) => start += consumed,
            Ok(Parsed::Incomplete) => return None,
        }
    }
}

fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_and_inline_pipelined() {
    let input = b"*2\r\n$4\r\nECHO\r\n$3\r\na b\r\nPING\r\n\r\n*0\r\n*-1\r\nset k \"v w\"\n";
    assert_eq!(
        parse_all(input).unwrap(),
        vec![
            cmd(&["ECHO", "a b"]),
            cmd(&["PING"]),
            cmd(&["set", "k", "v w"])
        ]
    );
}

#[test]
fn binary_payloads_are_taken_by_length() {
    let input = b"*2\r\n$3\r\nSET\r\n$4\r\n\r\n\0*\r\n";
    assert_eq!(
        parse_all(input).unwrap(),
        vec![vec![b"SET".to_vec(), b"\r\n\0*".to_vec()]]
    );
}

/// The cases of Redis' tests/unit/protocol.tcl and auth.tcl, with Redis' errors.
#[test]
fn redis_protocol_battery() {
    use ProtocolError::*;
    let cases: &[(&[u8], bool, Option<ProtocolError>)] = &[
        (b"\r\n", true, None),
        (b"*-10\r\n", true, None),
        (b"*20000000\r\n", true, Some(InvalidMultibulkLength)),
        (b"*3000000000\r\n", true, Some(InvalidMultibulkLength)),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
            true,
            Some(ExpectedDollar(b'f')),
        ),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n",
            true,
            Some(InvalidBulkLength),
        ),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n",
            true,
            Some(InvalidBulkLength),
        ),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n",
            true,
            Some(InvalidBulkLength),
        ),
        (b"*1\r\nfoo\r\n", true, Some(ExpectedDollar(b'f'))),
        (b"*abc\r\n", true, Some(InvalidMultibulkLength)),
        (b"*01\r\n", true, Some(InvalidMultibulkLength)),
        (b"*1\r\n$+3\r\n", true, Some(InvalidBulkLength)),
        (
            b"*1\r\n$99999999999999999999\r\n",
            true,
            Some(InvalidBulkLength),
        ),
        (
            b"*99999999999999999999\r\n",
            true,
            Some(InvalidMultibulkLength),
        ),
        (b"set \"a\r\n", true, Some(UnbalancedQuotes)),
        (b"set 'a'b\r\n", true, Some(UnbalancedQuotes)),
        (b"*100\r\n", false, Some(UnauthenticatedMultibulkLength)),
        (b"*1\r\n$1000\r\n", false, Some(UnauthenticatedBulkLength)),
        (b"*1\r\n$100000\r\n", false, Some(InvalidBulkLength)),
        (b"*10\r\n$16\r\n", false, None),
        (b"*1\r\n$1025\r\n", true, Some(InvalidBulkLength)),
        (b"*1001\r\n", true, Some(InvalidMultibulkLength)),
    ];
    for &(input, authenticated, expected) in cases {
        assert_eq!(
            first_error(input, authenticated),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Protocol desync regression tests of Redis: a stray byte followed by an endless line.
#[test]
fn endless_lines_are_refused_once_past_the_limit() {
    let tail = [b'A'; 100];
    for (prefix, expected) in [
        (&b"\x00"[..], ProtocolError::TooBigInlineRequest),
        (b"*\x00", ProtocolError::TooBigMbulkCountString),
        (b"$\x00", ProtocolError::TooBigInlineRequest),
        (b"*1\r\n$", ProtocolError::TooBigBulkCountString),
    ] {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&tail);
        assert_eq!(first_error(&input, true), Some(expected));
        // Short of the limit it is only incomplete.
        let mut short = prefix.to_vec();
        short.extend_from_slice(&tail[..10]);
        assert_eq!(first_error(&short, true), None);
    }
}

#[test]
fn huge_counts_reserve_nothing() {
    let limits = ParseLimits {
        array_len_max: i32::MAX as usize,
        ..LIMITS
    };
    let mut parser = RequestParser::new();
    let mut input = b"*2000000000\r\n$5\r\nhel".to_vec();
    assert_eq!(
        parser.parse(&mut input, &limits, true),
        Ok(Parsed::Incomplete)
    );
    assert!(parser.in_progress());
    assert_eq!(parser.memory_bytes(), 0);
}

#[test]
fn query_buffer_limit_ends_a_request_that_never_completes() {
    let mut parser = RequestParser::new();
    let mut input = b"*5\r\n".to_vec();
    for _ in 0..4 {
        input.extend_from_slice(b"$1000\r\n");
        input.extend_from_slice(&[b'x'; 1000]);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"$1000\r\n");
    input.resize(LIMITS.query_buffer_bytes_max, b'x');
    assert_eq!(
        parser.parse(&mut input, &LIMITS, true),
        Err(ProtocolError::QueryBufferLimit)
    );
}

#[test]
fn unauthenticated_limits_follow_authentication_per_request() {
    let mut parser = RequestParser::new();
    let mut input = b"*11\r\n".to_vec();
    assert_eq!(
        parser.parse(&mut input, &LIMITS, false),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );
    let mut parser = RequestParser::new();
    assert_eq!(
        parser.parse(&mut input, &LIMITS, true),
        Ok(Parsed::Incomplete)
    );
}

fn encode(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        out.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
        for a in c {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

proptest! {
    /// Feeding a pipeline in arbitrary pieces, the way reads deliver it, yields the same
    /// commands as parsing it whole.
    #[test]
    fn incremental_equals_whole(
        cmds in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6), 1..6),
        cuts in prop::collection::vec(1usize..50, 0..30),
    ) {
        let wire = encode(&cmds);
        let mut parser = RequestParser::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut start = 0;
        let mut got = Vec::new();
        let mut fed = 0;
        let mut cuts = cuts.into_iter();
        while fed < wire.len() {
            let n = cuts.next().unwrap_or(wire.len()).min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
            loop {
                match parser.parse(&mut buf[start..], &LIMITS, true).unwrap() {
                    Parsed::Command { consumed } => {
                        let req = &buf[start..start + consumed];
                        got.push(parser.spans().iter().map(|s| req[s.range()].to_vec()).collect::<Vec<_>>());
                        start += consumed;
                    }
                    Parsed::Nothing { consumed } => start += consumed,
                    Parsed::Incomplete => break,
                }
            }
            // Compact like the connection does: the request in progress moves to the front.
            buf.drain(..start);
            start = 0;
        }
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = first_error(&input, true);
        let _ = first_error(&input, false);
    }
}
