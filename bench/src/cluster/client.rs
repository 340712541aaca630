//! A small blocking RESP2 client: single commands, pipelines (queue, flush, read the replies in
//! order) and `name:value` info replies. Enough for the scenario's timed loops, where knowing
//! exactly when a request leaves and a reply arrives matters more than convenience.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Fails on an error reply, with the command's name for context.
    pub fn ok(self, what: &str) -> Result<Reply> {
        match self {
            Reply::Error(e) => bail!("{what}: -{e}"),
            other => Ok(other),
        }
    }
}

/// A connection to one server on 127.0.0.1.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
    line: String,
}

impl Conn {
    pub fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Conn {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone()?),
            writer: stream,
            out: Vec::with_capacity(1 << 16),
            line: String::new(),
        })
    }

    /// Adds a command to the outgoing buffer without sending it.
    pub fn queue(&mut self, args: &[&[u8]]) {
        let out = &mut self.out;
        out.push(b'*');
        out.extend_from_slice(args.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        for a in args {
            out.push(b'$');
            out.extend_from_slice(a.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sends everything queued.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.queue(args);
        self.flush()?;
        self.read()
    }

    /// An integer reply.
    pub fn int(&mut self, args: &[&[u8]]) -> Result<i64> {
        match self.cmd(args)? {
            Reply::Int(n) => Ok(n),
            other => bail!(
                "expected an integer reply to {:?}, got {other:?}",
                words(args)
            ),
        }
    }

    /// `DBSIZE`.
    pub fn dbsize(&mut self) -> Result<u64> {
        Ok(self.int(&[b"DBSIZE"])?.max(0) as u64)
    }

    /// A bulk reply of `name:value` lines (`CLUSTER INFO`, `INFO`) as a map.
    pub fn info(&mut self, args: &[&[u8]]) -> Result<Info> {
        match self.cmd(args)? {
            Reply::Bulk(Some(text)) => Ok(Info::parse(&String::from_utf8_lossy(&text))),
            other => bail!("expected a bulk reply to {:?}, got {other:?}", words(args)),
        }
    }

    /// `CLUSTER INFO`.
    pub fn cluster_info(&mut self) -> Result<Info> {
        self.info(&[b"CLUSTER", b"INFO"])
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Result<Reply> {
        self.line.clear();
        let n = self.reader.read_line(&mut self.line)?;
        ensure!(n > 0, "the server closed the connection");
        let line = self.line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(1.min(line.len()));
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(rest.parse().context("bad integer reply")?),
            "$" => {
                let len: i64 = rest.parse().context("bad bulk length")?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut data = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(len as usize);
                    Reply::Bulk(Some(data))
                }
            }
            "*" => {
                let len: i64 = rest.parse().context("bad array length")?;
                if len < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::with_capacity(len.min(1 << 16) as usize);
                    for _ in 0..len {
                        items.push(self.read()?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => bail!("unexpected reply line {line:?}"),
        })
    }
}

fn words(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `name:value` lines; `#` section headers and blank lines are skipped.
#[derive(Debug, Clone, Default)]
pub struct Info(pub HashMap<String, String>);

impl Info {
    fn parse(text: &str) -> Self {
        Info(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
        )
    }

    pub fn str(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// A numeric field; 0 when missing or not a number (`-`).
    pub fn u64(&self, name: &str) -> u64 {
        self.str(name).parse().unwrap_or(0)
    }
}
