//! Reply encoding, RESP2 and RESP3, straight into the connection's output buffer.
//!
//! A [`ReplyWriter`] owns the bytes that one batch of commands will send in one write. Handlers
//! call its typed methods (`bulk`, `integer`, `map`, ...) and the writer emits the encoding of
//! the connection's protocol version, downgrading RESP3-only types for RESP2 clients the way
//! Redis does:
//!
//! | RESP3            | RESP2                         |
//! |------------------|-------------------------------|
//! | null `_`         | `$-1` (or `*-1` for arrays)   |
//! | map `%n`         | flat array `*2n` of key, value|
//! | set `~n`         | array `*n`                    |
//! | double `,d`      | bulk string of the same text  |
//! | boolean `#t`     | integer `:1` / `:0`           |
//! | verbatim `=n`    | bulk string without `txt:`    |
//! | big number `(n`  | bulk string of the digits     |
//!
//! Nothing here allocates per reply: numbers are formatted on the stack (`itoa`) and appended.
//! Text that comes from clients (error messages quoting arguments, simple strings) has CR and LF
//! replaced by spaces, as Redis does, so a reply can never break the framing.

use std::io::Write as _;

/// The protocol version of a connection, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, what every connection starts with.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The version number (`2` or `3`), as HELLO and CLIENT LIST show it.
    pub fn version(self) -> i64 {
        match self {
            Self::Resp2 => 2,
            Self::Resp3 => 3,
        }
    }
}

/// The output buffer of a connection and the encoder of every reply type.
#[derive(Debug, Default)]
pub struct ReplyWriter {
    buf: Vec<u8>,
    protocol: Protocol,
}

const CRLF: &[u8] = b"\r\n";

impl ReplyWriter {
    /// An empty writer for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            buf: Vec::new(),
            protocol,
        }
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the encoding for every later reply (HELLO, RESET).
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// True for RESP3.
    pub fn is_resp3(&self) -> bool {
        self.protocol == Protocol::Resp3
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded replies.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Drops every reply, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Drops what was written after `len` (a handler that failed half-way through its reply).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// Capacity of the buffer, for memory accounting.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Releases memory beyond `bytes` after an unusually large batch.
    pub fn shrink_to(&mut self, bytes: usize) {
        self.buf.shrink_to(bytes);
    }

    /// Direct access for the connection, which replaces replies after a failed commit.
    pub(crate) fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn header(&mut self, prefix: u8, n: usize) {
        self.buf.push(prefix);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(CRLF);
    }

    /// Appends `text` with CR and LF turned into spaces.
    fn push_line(&mut self, text: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(text);
        if memchr::memchr2(b'\r', b'\n', text).is_some() {
            for b in &mut self.buf[start..] {
                if *b == b'\r' || *b == b'\n' {
                    *b = b' ';
                }
            }
        }
        self.buf.extend_from_slice(CRLF);
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (`+text`).
    pub fn simple(&mut self, text: &str) {
        self.buf.push(b'+');
        self.push_line(text.as_bytes());
    }

    /// An error reply. `message` starts with the error code and has no leading `-`:
    /// `"ERR syntax error"`, `"WRONGTYPE Operation against ..."`.
    pub fn error(&mut self, message: &str) {
        self.error_bytes(message.as_bytes());
    }

    /// An error reply from bytes (messages that quote client arguments).
    pub fn error_bytes(&mut self, message: &[u8]) {
        self.buf.push(b'-');
        self.push_line(message);
    }

    /// An integer (`:n`).
    pub fn integer(&mut self, value: i64) {
        self.buf.push(b':');
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.buf.extend_from_slice(CRLF);
    }

    /// An integer that may not fit in 64 bits (counter values): an integer when it fits, else a
    /// RESP3 big number or, for RESP2, a bulk string of its digits.
    pub fn integer_i128(&mut self, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.integer(v),
            Err(_) => self.big_number(itoa::Buffer::new().format(value)),
        }
    }

    /// A bulk string.
    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len());
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(CRLF);
    }

    /// A bulk string holding the decimal form of `value` (TIME, INFO-like fields).
    pub fn bulk_integer(&mut self, value: i64) {
        self.bulk(itoa::Buffer::new().format(value).as_bytes());
    }

    /// The null reply: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// The null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.buf.extend_from_slice(b"*-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// The header of an array of `len` replies; the elements follow.
    pub fn array(&mut self, len: usize) {
        self.header(b'*', len);
    }

    /// The header of a map of `pairs` key/value pairs; keys and values follow alternately.
    /// RESP2 gets a flat array of `2 * pairs` elements.
    pub fn map(&mut self, pairs: usize) {
        match self.protocol {
            Protocol::Resp2 => self.header(b'*', pairs * 2),
            Protocol::Resp3 => self.header(b'%', pairs),
        }
    }

    /// The header of a set of `len` elements; RESP2 gets an array.
    pub fn set(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.header(b'*', len),
            Protocol::Resp3 => self.header(b'~', len),
        }
    }

    /// A double: `,1.5` in RESP3, the same text as a bulk string in RESP2. Formatting is the
    /// shortest text that reads back as the same double; integral values print without a
    /// fraction (`3`), very large or small ones with an exponent (`1e+300`), and the special
    /// values as `inf`, `-inf` and `nan`, like Redis.
    pub fn double(&mut self, value: f64) {
        let mut text = [0u8; 40];
        let len = format_double(value, &mut text);
        match self.protocol {
            Protocol::Resp2 => self.bulk(&text[..len]),
            Protocol::Resp3 => {
                self.buf.push(b',');
                self.buf.extend_from_slice(&text[..len]);
                self.buf.extend_from_slice(CRLF);
            }
        }
    }

    /// A boolean: `#t` / `#f` in RESP3, `:1` / `:0` in RESP2.
    pub fn boolean(&mut self, value: bool) {
        match (self.protocol, value) {
            (Protocol::Resp2, true) => self.buf.extend_from_slice(b":1\r\n"),
            (Protocol::Resp2, false) => self.buf.extend_from_slice(b":0\r\n"),
            (Protocol::Resp3, true) => self.buf.extend_from_slice(b"#t\r\n"),
            (Protocol::Resp3, false) => self.buf.extend_from_slice(b"#f\r\n"),
        }
    }

    /// A verbatim string of `format` (`txt` or `mkd`): `=len\r\ntxt:...` in RESP3, a plain
    /// bulk string in RESP2.
    pub fn verbatim(&mut self, format: &[u8; 3], data: &[u8]) {
        match self.protocol {
            Protocol::Resp2 => self.bulk(data),
            Protocol::Resp3 => {
                self.header(b'=', data.len() + 4);
                self.buf.extend_from_slice(format);
                self.buf.push(b':');
                self.buf.extend_from_slice(data);
                self.buf.extend_from_slice(CRLF);
            }
        }
    }

    /// A big number (decimal digits with an optional `-`): `(digits` in RESP3, a bulk string in
    /// RESP2.
    pub fn big_number(&mut self, digits: &str) {
        match self.protocol {
            Protocol::Resp2 => self.bulk(digits.as_bytes()),
            Protocol::Resp3 => {
                self.buf.push(b'(');
                self.push_line(digits.as_bytes());
            }
        }
    }
}

/// Writes the text of `value` into `out`, returning its length (at most 40 bytes: a sign, 17
/// significant digits, a point and an exponent).
fn format_double(value: f64, out: &mut [u8; 40]) -> usize {
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    // Writing under 40 bytes into a 40-byte buffer cannot fail.
    let _ = if value.is_nan() {
        cursor.write_all(b"nan")
    } else if value.is_infinite() {
        cursor.write_all(if value > 0.0 { b"inf" } else { b"-inf" })
    } else if value == value.trunc() && value.abs() < 1e17 {
        // Integral and exactly representable as i64: Redis prints no fraction ("%.17g").
        write!(cursor, "{}", value as i64)
    } else if value != 0.0 && (value.abs() >= 1e17 || value.abs() < 1e-4) {
        let mut tmp = [0u8; 40];
        let mut c = std::io::Cursor::new(&mut tmp[..]);
        let _ = write!(c, "{value:e}");
        let n = usize::try_from(c.position()).unwrap_or(0);
        let text = &tmp[..n];
        // `{:e}` prints `1e300` and `1e-7`; %g-style readers expect an explicit `+`.
        match memchr::memchr(b'e', text) {
            Some(e) if text.get(e + 1) != Some(&b'-') => {
                let _ = cursor.write_all(&text[..=e]);
                let _ = cursor.write_all(b"+");
                cursor.write_all(&text[e + 1..])
            }
            _ => cursor.write_all(text),
        }
    } else {
        write!(cursor, "{value}")
    };
    usize::try_from(cursor.position()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(proto: Protocol, f: impl FnOnce(&mut ReplyWriter)) -> String {
        let mut w = ReplyWriter::new(proto);
        f(&mut w);
        String::from_utf8_lossy(w.as_bytes()).into_owned()
    }

    #[test]
    fn scalars() {
        let r2 = Protocol::Resp2;
        assert_eq!(encode(r2, |w| w.ok()), "+OK\r\n");
        assert_eq!(encode(r2, |w| w.simple("PONG")), "+PONG\r\n");
        assert_eq!(
            encode(r2, |w| w.error("ERR bad\r\nthing")),
            "-ERR bad  thing\r\n"
        );
        assert_eq!(encode(r2, |w| w.integer(-42)), ":-42\r\n");
        assert_eq!(encode(r2, |w| w.bulk(b"hi")), "$2\r\nhi\r\n");
        assert_eq!(encode(r2, |w| w.bulk(b"")), "$0\r\n\r\n");
        assert_eq!(
            encode(r2, |w| w.bulk_integer(1700000000)),
            "$10\r\n1700000000\r\n"
        );
    }

    #[test]
    fn resp3_types_and_their_resp2_downgrades() {
        let (r2, r3) = (Protocol::Resp2, Protocol::Resp3);
        assert_eq!(encode(r2, |w| w.null()), "$-1\r\n");
        assert_eq!(encode(r2, |w| w.null_array()), "*-1\r\n");
        assert_eq!(encode(r3, |w| w.null()), "_\r\n");
        assert_eq!(encode(r3, |w| w.null_array()), "_\r\n");
        assert_eq!(encode(r2, |w| w.map(2)), "*4\r\n");
        assert_eq!(encode(r3, |w| w.map(2)), "%2\r\n");
        assert_eq!(encode(r2, |w| w.set(3)), "*3\r\n");
        assert_eq!(encode(r3, |w| w.set(3)), "~3\r\n");
        assert_eq!(encode(r2, |w| w.boolean(true)), ":1\r\n");
        assert_eq!(encode(r3, |w| w.boolean(false)), "#f\r\n");
        assert_eq!(encode(r2, |w| w.double(1.5)), "$3\r\n1.5\r\n");
        assert_eq!(encode(r3, |w| w.double(1.5)), ",1.5\r\n");
        assert_eq!(encode(r2, |w| w.verbatim(b"txt", b"hi")), "$2\r\nhi\r\n");
        assert_eq!(
            encode(r3, |w| w.verbatim(b"txt", b"hi")),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(encode(r2, |w| w.big_number("-123")), "$4\r\n-123\r\n");
        assert_eq!(encode(r3, |w| w.big_number("-123")), "(-123\r\n");
        let big = i128::from(i64::MAX) + 1;
        assert_eq!(
            encode(r3, |w| w.integer_i128(big)),
            "(9223372036854775808\r\n"
        );
        assert_eq!(encode(r2, |w| w.integer_i128(7)), ":7\r\n");
    }

    #[test]
    fn doubles_read_back() {
        for (v, text) in [
            (0.0, "0"),
            (3.0, "3"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e300, "1e+300"),
            (1.5e-7, "1.5e-7"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (f64::MAX, "1.7976931348623157e+308"),
        ] {
            let mut buf = [0u8; 40];
            let n = format_double(v, &mut buf);
            let s = std::str::from_utf8(&buf[..n]).unwrap();
            assert_eq!(s, text);
            if v.is_finite() {
                assert_eq!(s.parse::<f64>().unwrap(), v);
            }
        }
    }

    #[test]
    fn truncate_drops_a_partial_reply() {
        let mut w = ReplyWriter::new(Protocol::Resp2);
        w.ok();
        let mark = w.len();
        w.array(2);
        w.truncate(mark);
        assert_eq!(w.as_bytes(), b"+OK\r\n");
    }
}
