//! A blocking raw RESP client for tests: send any bytes, read typed replies.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read waits before the test fails (a hang, not a timing assertion).
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One reply, RESP2 or RESP3.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or `_`.
    Null,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(String),
    Bool(bool),
    Verbatim(String, Vec<u8>),
    BigNumber(String),
}

impl Reply {
    /// Convenience for bulk strings.
    pub fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    /// The text of a bulk, verbatim or simple string.
    pub fn text(&self) -> String {
        match self {
            Reply::Bulk(b) | Reply::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Simple(s) => s.clone(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// The value of an integer reply; panics on any other reply.
    #[track_caller]
    pub fn int(self) -> i64 {
        match self {
            Reply::Int(n) => n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    /// Asserts that the reply is `+OK`.
    #[track_caller]
    pub fn assert_ok(self) {
        assert_eq!(self, Reply::Simple("OK".into()));
    }
}

/// A raw connection.
pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    /// Connects to `addr`.
    pub fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).ok();
        Raw {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    /// Sends raw bytes. Errors are returned: the server may have closed the connection.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Sends a command as a multibulk request.
    pub fn send_cmd(&mut self, args: &[&[u8]]) {
        self.send(&encode(args)).expect("send");
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_cmd(&args);
        self.read()
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Reply {
        read_reply(&mut self.reader).unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads exactly `n` raw bytes.
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).expect("read bytes");
        buf
    }

    /// True if the server closed the connection (reads end of stream or a reset) with nothing
    /// more to read.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        }
    }
}

/// A command as RESP multibulk bytes.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    assert!(
        buf.ends_with(b"\r\n"),
        "line without CRLF: {:?}",
        String::from_utf8_lossy(&buf)
    );
    buf.truncate(buf.len() - 2);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn count(s: &str) -> i64 {
    s.parse().unwrap_or_else(|_| panic!("bad length {s:?}"))
}

fn items(r: &mut impl BufRead, n: i64) -> std::io::Result<Vec<Reply>> {
    (0..n).map(|_| read_reply(r)).collect()
}

fn payload(r: &mut impl BufRead, n: i64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; n as usize + 2];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf[n as usize..], b"\r\n", "payload not followed by CRLF");
    buf.truncate(n as usize);
    Ok(buf)
}

/// Reads one reply from `r`.
pub fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let l = line(r)?;
    let (kind, rest) = l.split_at(1);
    Ok(match kind {
        "+" => Reply::Simple(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(count(rest)),
        "$" if rest == "-1" => Reply::Null,
        "$" => Reply::Bulk(payload(r, count(rest))?),
        "*" if rest == "-1" => Reply::Null,
        "*" => Reply::Array(items(r, count(rest))?),
        "~" => Reply::Set(items(r, count(rest))?),
        "%" => {
            let flat = items(r, 2 * count(rest))?;
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        "_" => Reply::Null,
        "," => Reply::Double(rest.into()),
        "#" => Reply::Bool(rest == "t"),
        "(" => Reply::BigNumber(rest.into()),
        "=" => {
            let body = payload(r, count(rest))?;
            Reply::Verbatim(
                String::from_utf8_lossy(&body[..3]).into(),
                body[4..].to_vec(),
            )
        }
        other => panic!("unknown reply type {other:?} in {l:?}"),
    })
}
