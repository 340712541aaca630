//! `resp`: crdtkv against redis-server over the Redis protocol, side by side in one run.
//!
//! The scenario builds nothing itself. It runs the `crdtkv` binary found next to the bench
//! binary (so `cargo build --release -p node` must have run first; `--crdtkv PATH` overrides)
//! and the `redis-server` and `redis-benchmark` of the system (Debian `redis-server` and
//! `redis-tools`). Both servers get a fresh temporary directory, a free loopback port and the
//! same durability: crdtkv with `fsync = "everysec"`, redis-server with
//! `--appendonly yes --appendfsync everysec` (no RDB snapshots).
//!
//! **Throughput.** `redis-benchmark -c 50 -t set,get,incr,sadd -r 100000 --csv`, once with
//! `-P 1` and once with `-P 16`, against each server, alternating which server goes first from
//! one round to the next so that neither always benefits from a warmer machine. The median
//! requests per second over the rounds is reported per case (`SET P1`, `GET P16`, …) as
//! `ours_ops_per_s` and `reference_ops_per_s`. On a small machine `redis-benchmark` itself
//! takes a core; both servers share what is left the same way.
//!
//! **Memory.** Two fresh servers are each loaded with exactly the same keys `key:0` ..
//! `key:N-1` (`N` = 1,000,000, or 100,000 with `--quick`), each set to a 100-byte value, by a
//! pipelined loader (a few connections, 1000 `SET`s in flight each). After `DBSIZE` confirms
//! the key count, the scenario waits until both resident sizes stay put (background flushes,
//! AOF writes) and reports `VmRSS` from `/proc/PID/status` as `ours_bytes` and
//! `reference_bytes` (case `rss_1M_100B`).
//!
//! Both servers are killed at the end, and on any error or panic (drop guards).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::procs::{Load, cpu_seconds, crdtkv_path, median, redis_benchmark};
use crate::report;

/// Options of the `resp` scenario.
#[derive(clap::Args, Debug)]
pub struct RespArgs {
    /// The crdtkv binary (default: `crdtkv` next to this bench binary, built by
    /// `cargo build --release -p node`).
    #[arg(long)]
    pub crdtkv: Option<PathBuf>,
    /// The redis-server binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// The redis-benchmark binary.
    #[arg(long, default_value = "redis-benchmark")]
    pub redis_benchmark: PathBuf,
    /// A fast run: fewer requests, one round, 100,000 keys for the memory case.
    #[arg(long)]
    pub quick: bool,
    /// Requests per test with `-P 1` (default 200,000; 50,000 with `--quick`).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Requests per test with `-P 16` (default 1,000,000; 200,000 with `--quick`).
    #[arg(long)]
    pub pipelined_requests: Option<u64>,
    /// Rounds per pipeline depth; the median is reported (default 3; 1 with `--quick`).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// redis-benchmark clients (`-c`).
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// Random key space of redis-benchmark (`-r`).
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Keys loaded for the memory case (default 1,000,000; 100,000 with `--quick`).
    #[arg(long)]
    pub keys: Option<u64>,
    /// Value size of the memory case, in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Only these redis-benchmark tests (comma-separated, of set, get, incr, sadd).
    #[arg(long, value_delimiter = ',')]
    pub tests: Option<Vec<String>>,
    /// Skip the throughput cases.
    #[arg(long)]
    pub no_throughput: bool,
    /// Skip the memory case.
    #[arg(long)]
    pub no_memory: bool,
}

/// The tests given to redis-benchmark, in its names.
const TESTS: [&str; 4] = ["SET", "GET", "INCR", "SADD"];
/// Pipeline depths measured.
const PIPELINES: [u32; 2] = [1, 16];
/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which of the two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    Reference,
}

/// A running server, killed (and reaped) when dropped.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    /// Removed (after the kill) when the server is dropped.
    _dir: TempDir,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, with the end of the server's log, if it has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); end of its log:\n{}",
                self.name,
                log_tail(&self.log)
            );
        }
        Ok(())
    }

    /// Waits until the server answers PING.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_alive()?;
            if let Ok(mut conn) = Conn::connect(self.port)
                && conn.command(&[b"PING"]).is_ok_and(|r| r == "+PONG")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer PING on port {} within {:?}; end of its log:\n{}",
                    self.name,
                    self.port,
                    START_TIMEOUT,
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Killed hard: nothing of the run needs to survive, and the directory is removed next.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn start_ours(binary: &Path, port: u16) -> Result<Server> {
    let dir = tempfile::Builder::new().prefix("crdtkv-bench-").tempdir()?;
    let data = dir.path().join("data");
    let config = dir.path().join("crdtkv.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = {data:?}\n\n[server]\nbind = \"127.0.0.1\"\nport = {port}\n\n\
             [storage]\nfsync = \"everysec\"\n\n[log]\nlevel = \"warn\"\n",
            data = data.display().to_string(),
        ),
    )?;
    let log = dir.path().join("crdtkv.log");
    let child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut server = Server {
        name: "crdtkv",
        child,
        port,
        _dir: dir,
        log,
    };
    server.wait_ready()?;
    Ok(server)
}

fn start_reference(binary: &Path, port: u16) -> Result<Server> {
    let dir = tempfile::Builder::new().prefix("redis-bench-").tempdir()?;
    let log = dir.path().join("redis.log");
    let child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--save", ""])
        .args(["--daemonize", "no", "--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (Debian: apt-get install redis-server)",
                binary.display()
            )
        })?;
    let mut server = Server {
        name: "redis-server",
        child,
        port,
        _dir: dir,
        log,
    };
    server.wait_ready()?;
    Ok(server)
}

/// Starts both servers on distinct free ports.
fn start_both(args: &RespArgs, crdtkv: &Path) -> Result<(Server, Server)> {
    let (a, b) = (free_port()?, free_port()?);
    let b = if a == b { free_port()? } else { b };
    let ours = start_ours(crdtkv, a)?;
    let reference = start_reference(&args.redis_server, b)?;
    Ok((ours, reference))
}

/// A blocking RESP connection, enough for PING, DBSIZE, INFO and the loader.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Conn {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and returns its reply: a simple string, error or integer line as is
    /// (`+PONG`, `:42`), a bulk string's content.
    fn command(&mut self, args: &[&[u8]]) -> Result<String> {
        let mut buf = Vec::new();
        encode_command(&mut buf, args);
        self.writer.write_all(&buf)?;
        let line = self.line()?;
        if let Some(len) = line.strip_prefix('$') {
            let len: i64 = len.parse().context("bad bulk length")?;
            if len < 0 {
                return Ok(String::new());
            }
            let mut data = vec![0; len as usize + 2];
            self.reader.read_exact(&mut data)?;
            data.truncate(len as usize);
            return Ok(String::from_utf8_lossy(&data).into_owned());
        }
        Ok(line)
    }

    /// One reply line without its CRLF.
    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line)?;
        ensure!(n > 0, "the server closed the connection");
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn integer(&mut self, args: &[&[u8]]) -> Result<i64> {
        let reply = self.command(args)?;
        reply
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("expected an integer reply, got {reply:?}"))
    }
}

fn encode_command(buf: &mut Vec<u8>, args: &[&[u8]]) {
    buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Samples of one case: requests per second and server CPU microseconds per request.
#[derive(Default, Clone)]
struct Samples {
    ops: Vec<f64>,
    cpu_us: Vec<f64>,
}

fn throughput(args: &RespArgs, crdtkv: &Path) -> Result<()> {
    let (mut ours, mut reference) = start_both(args, crdtkv)?;
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let tests: Vec<&str> = TESTS
        .iter()
        .copied()
        .filter(|t| {
            args.tests
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o.eq_ignore_ascii_case(t)))
        })
        .collect();
    for pipeline in PIPELINES {
        let requests = if pipeline == 1 {
            args.requests
                .unwrap_or(if args.quick { 50_000 } else { 200_000 })
        } else {
            args.pipelined_requests
                .unwrap_or(if args.quick { 200_000 } else { 1_000_000 })
        };
        let load = Load {
            clients: args.clients,
            requests,
            keyspace: args.keyspace,
            pipeline,
        };
        // Per test: (ours, reference).
        let mut samples: Vec<(Samples, Samples)> = vec![Default::default(); tests.len()];
        for round in 0..rounds {
            for (i, test) in tests.iter().enumerate() {
                // Alternate which server goes first, per test and per round.
                let order = if (round + i) % 2 == 0 {
                    [Side::Ours, Side::Reference]
                } else {
                    [Side::Reference, Side::Ours]
                };
                for side in order {
                    let (server, sample) = match side {
                        Side::Ours => (&mut ours, &mut samples[i].0),
                        Side::Reference => (&mut reference, &mut samples[i].1),
                    };
                    let cpu = cpu_seconds(server.pid())?;
                    let rps = redis_benchmark(&args.redis_benchmark, server.port, test, load)
                        .with_context(|| format!("benchmarking {}", server.name))?;
                    let cpu = cpu_seconds(server.pid())? - cpu;
                    server.check_alive()?;
                    sample.ops.push(rps);
                    sample.cpu_us.push(cpu * 1e6 / requests as f64);
                }
            }
        }
        for (test, (o, r)) in tests.iter().zip(samples) {
            report::Result::new("resp", &format!("{test} P{pipeline}"))
                .compare("ops_per_s", median(o.ops), "redis-server", median(r.ops))
                .field("ours_cpu_us_per_op", round3(median(o.cpu_us)))
                .field("reference_cpu_us_per_op", round3(median(r.cpu_us)))
                .field("requests", requests)
                .field("clients", args.clients)
                .field("pipeline", pipeline)
                .field("keyspace", args.keyspace)
                .field("rounds", rounds)
                .emit();
        }
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Loads `key:0` .. `key:{keys-1}` with `value_bytes`-byte values over a few pipelined
/// connections; returns when every SET was answered `+OK`.
fn load(port: u16, keys: u64, value_bytes: usize) -> Result<()> {
    const CONNECTIONS: u64 = 4;
    const DEPTH: u64 = 1000;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                scope.spawn(move || -> Result<()> {
                    let mut conn = Conn::connect(port)?;
                    let mut buf = Vec::new();
                    // Every connection loads the keys congruent to `c`.
                    let mine: Vec<u64> = (c..keys).step_by(CONNECTIONS as usize).collect();
                    for chunk in mine.chunks(DEPTH as usize) {
                        buf.clear();
                        for &i in chunk {
                            let key = format!("key:{i}");
                            encode_command(
                                &mut buf,
                                &[b"SET", key.as_bytes(), &value_of(i, value_bytes)],
                            );
                        }
                        conn.writer.write_all(&buf)?;
                        for _ in chunk {
                            let reply = conn.line()?;
                            ensure!(reply == "+OK", "SET answered {reply:?}");
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a loader thread panicked"))??;
        }
        Ok(())
    })
}

/// The value of `key:{i}`: `len` printable bytes, different for every key, identical for both
/// servers.
fn value_of(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect()
}

/// `VmRSS` of `pid`, in bytes.
fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb * 1024)
}

/// Waits until the RSS of both servers has moved less than 1% over two seconds (at most a
/// minute), then returns them.
fn settled_rss(servers: &mut [&mut Server]) -> Result<Vec<u64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Vec<u64> = Vec::new();
    let mut stable_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let mut now = Vec::new();
        for s in servers.iter_mut() {
            s.check_alive()?;
            now.push(rss_bytes(s.pid())?);
        }
        let moved = last.len() != now.len()
            || last
                .iter()
                .zip(&now)
                .any(|(&a, &b)| (a as f64 - b as f64).abs() > 0.01 * a as f64);
        if moved {
            stable_since = Instant::now();
            last = now;
        } else if stable_since.elapsed() >= Duration::from_secs(2) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Ok(last);
        }
    }
}

fn count_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn memory(args: &RespArgs, crdtkv: &Path) -> Result<()> {
    let keys = args
        .keys
        .unwrap_or(if args.quick { 100_000 } else { 1_000_000 });
    let (mut ours, mut reference) = start_both(args, crdtkv)?;
    let idle = (rss_bytes(ours.pid())?, rss_bytes(reference.pid())?);
    let mut load_s = [0.0; 2];
    for (i, server) in [&mut ours, &mut reference].into_iter().enumerate() {
        let started = Instant::now();
        load(server.port, keys, args.value_bytes)
            .with_context(|| format!("loading {}", server.name))?;
        load_s[i] = started.elapsed().as_secs_f64();
        let n = Conn::connect(server.port)?.integer(&[b"DBSIZE"])?;
        ensure!(
            n as u64 == keys,
            "{} holds {n} keys after loading {keys}",
            server.name
        );
    }
    let rss = settled_rss(&mut [&mut ours, &mut reference])?;
    let used_memory = Conn::connect(reference.port)?
        .command(&[b"INFO", b"memory"])?
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut result = report::Result::new(
        "resp",
        &format!("rss_{}_{}B", count_label(keys), args.value_bytes),
    )
    .compare_counts("bytes", rss[0], "redis-server", rss[1])
    .field("keys", keys)
    .field("value_bytes", args.value_bytes)
    .field("ours_idle_bytes", idle.0)
    .field("reference_idle_bytes", idle.1)
    .field("ours_load_s", (load_s[0] * 1000.0).round() / 1000.0)
    .field("reference_load_s", (load_s[1] * 1000.0).round() / 1000.0);
    if let Some(used) = used_memory {
        result = result.field("reference_used_memory_bytes", used);
    }
    result.emit();
    Ok(())
}

/// Runs the scenario.
pub fn run(args: RespArgs) -> Result<()> {
    let crdtkv = crdtkv_path(args.crdtkv.as_deref())?;
    if !args.no_throughput {
        throughput(&args, &crdtkv)?;
    }
    if !args.no_memory {
        memory(&args, &crdtkv)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_values() {
        assert_eq!(count_label(1_000_000), "1M");
        assert_eq!(count_label(100_000), "100k");
        assert_eq!(count_label(1234), "1234");
        assert_eq!(value_of(7, 100), value_of(7, 100));
        assert_ne!(value_of(7, 100), value_of(8, 100));
        assert_eq!(value_of(7, 100).len(), 100);
    }
}
