//! Crash consistency: clients write continuously, each write acknowledged before the next;
//! the process is killed with SIGKILL at a random moment and restarted on the same data
//! directory. Every acknowledged write must be there after the restart, under both
//! `storage.fsync = "always"` and `"everysec"` (a write is acknowledged only once it is in the
//! write-ahead log, whatever the fsync policy; the policy only matters on power loss).
//!
//! A write whose reply never arrived is unacknowledged: it may or may not have survived. So a
//! counter must lie between the sum of its acknowledged increments and the sum of all attempted
//! ones, a set must hold every acknowledged member and only attempted ones, and a register the
//! last acknowledged value or a later attempted one.
//!
//! The kill moment is drawn from a seeded RNG; the seed is printed, and `CRDTKV_CRASH_SEED=n`
//! replays it.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::resp::encode;
use common::{Node, Reply};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Writer threads, each with its own connection.
const THREADS: usize = 8;
/// Counters every thread increments.
const COUNTERS: usize = 3;
/// Sets the threads add to (thread `t` adds to set `t % SETS`).
const SETS: usize = 2;
/// Kill and restart cycles per fsync policy.
const ROUNDS: u64 = 5;
/// Acknowledged writes to wait for in a round before the kill may come.
const ACKED_BEFORE_KILL: u64 = 200;

/// A minimal client that reports a lost connection as an error instead of panicking, so that a
/// writer can tell an acknowledged write from one whose reply never came.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends a command and reads a one-line reply (`+`, `-` or `:`). Any failure to get the
    /// whole reply is an error: the write is unacknowledged.
    fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.writer.write_all(&encode(&args))?;
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        let Some(body) = line.strip_suffix(b"\r\n") else {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed before the whole reply",
            ));
        };
        let text = String::from_utf8_lossy(&body[1..]).into_owned();
        Ok(match body[0] {
            b'+' => Reply::Simple(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Int(text.parse().expect("integer reply")),
            other => panic!("unexpected reply type {:?}", other as char),
        })
    }
}

/// What one writer attempted and what was acknowledged, in one round.
#[derive(Debug, Default)]
struct Record {
    thread: usize,
    incr_attempted: [i64; COUNTERS],
    incr_acked: [i64; COUNTERS],
    members_attempted: Vec<String>,
    members_acked: Vec<String>,
    register_attempted_max: Option<u64>,
    register_acked_last: Option<u64>,
    writes_attempted: u64,
    writes_acked: u64,
}

fn counter_key(k: usize) -> String {
    format!("cnt:{k}")
}

fn set_key(thread: usize) -> String {
    format!("set:{}", thread % SETS)
}

fn register_key(thread: usize) -> String {
    format!("reg:{thread}")
}

/// Writes until the connection fails (the node was killed) or `stop` is set.
fn writer(
    addr: String,
    thread: usize,
    round: u64,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Record {
    let mut conn = Conn::connect(&addr);
    let mut rec = Record {
        thread,
        ..Record::default()
    };
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        rec.writes_attempted += 1;
        let ok = match i % 3 {
            0 => {
                let k = (i as usize / 3 + thread) % COUNTERS;
                let by = 1 + (i % 7) as i64;
                rec.incr_attempted[k] += by;
                match conn.call(&["INCRBY", &counter_key(k), &by.to_string()]) {
                    Ok(Reply::Int(_)) => {
                        rec.incr_acked[k] += by;
                        true
                    }
                    Ok(other) => panic!("INCRBY answered {other:?}"),
                    Err(_) => false,
                }
            }
            1 => {
                let member = format!("m:{round}:{thread}:{i}");
                rec.members_attempted.push(member.clone());
                match conn.call(&["SADD", &set_key(thread), &member]) {
                    Ok(Reply::Int(1)) => {
                        rec.members_acked.push(member);
                        true
                    }
                    Ok(other) => panic!("SADD answered {other:?}"),
                    Err(_) => false,
                }
            }
            _ => {
                // Values grow across rounds, so "a later attempted value" is "a larger one".
                let value = round * 1_000_000_000 + i;
                rec.register_attempted_max = Some(value);
                match conn.call(&["SET", &register_key(thread), &value.to_string()]) {
                    Ok(Reply::Simple(s)) if s == "OK" => {
                        rec.register_acked_last = Some(value);
                        true
                    }
                    Ok(other) => panic!("SET answered {other:?}"),
                    Err(_) => false,
                }
            }
        };
        if !ok {
            break;
        }
        rec.writes_acked += 1;
        acked.fetch_add(1, Ordering::Relaxed);
    }
    rec
}

/// What all rounds so far attempted and acknowledged.
#[derive(Default)]
struct Totals {
    incr_attempted: [i64; COUNTERS],
    incr_acked: [i64; COUNTERS],
    members_attempted: [BTreeSet<String>; SETS],
    members_acked: [BTreeSet<String>; SETS],
    register_attempted_max: [Option<u64>; THREADS],
    register_acked_last: [Option<u64>; THREADS],
    writes_attempted: u64,
    writes_acked: u64,
}

impl Totals {
    fn add(&mut self, rec: Record) {
        for k in 0..COUNTERS {
            self.incr_attempted[k] += rec.incr_attempted[k];
            self.incr_acked[k] += rec.incr_acked[k];
        }
        let s = rec.thread % SETS;
        self.members_attempted[s].extend(rec.members_attempted);
        self.members_acked[s].extend(rec.members_acked);
        let t = rec.thread;
        if rec.register_attempted_max.is_some() {
            self.register_attempted_max[t] = rec.register_attempted_max;
        }
        if rec.register_acked_last.is_some() {
            self.register_acked_last[t] = rec.register_acked_last;
        }
        self.writes_attempted += rec.writes_attempted;
        self.writes_acked += rec.writes_acked;
    }

    /// Checks the restarted node against what was acknowledged; returns how many acknowledged
    /// writes are missing (each counter short of its acknowledged sum counts as at least one).
    /// Values no write could have produced fail the test at once.
    fn verify(&self, node: &Node, context: &str) -> u64 {
        let mut c = node.raw();
        let mut lost = 0;
        let mut expected_keys = BTreeSet::new();
        for k in 0..COUNTERS {
            let key = counter_key(k);
            let value = match c.cmd(&["GET", &key]) {
                Reply::Null => 0,
                reply => {
                    expected_keys.insert(key.clone());
                    reply.text().parse::<i64>().expect("a counter")
                }
            };
            if value < self.incr_acked[k] {
                eprintln!(
                    "{context}: {key} = {value}, below the acknowledged {}",
                    self.incr_acked[k]
                );
                lost += ((self.incr_acked[k] - value) / 7).max(1) as u64;
            }
            assert!(
                value <= self.incr_attempted[k],
                "{context}: {key} = {value}, above every attempted increment ({})",
                self.incr_attempted[k]
            );
        }
        for s in 0..SETS {
            let key = format!("set:{s}");
            let members: BTreeSet<String> = match c.cmd(&["SMEMBERS", &key]) {
                Reply::Array(items) => items.iter().map(Reply::text).collect(),
                other => panic!("{context}: SMEMBERS {key} answered {other:?}"),
            };
            if !members.is_empty() {
                expected_keys.insert(key.clone());
            }
            let missing: Vec<&String> = self.members_acked[s].difference(&members).collect();
            if !missing.is_empty() {
                eprintln!(
                    "{context}: {key} lacks {} acknowledged members, first {:?}",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                );
                lost += missing.len() as u64;
            }
            let phantom: Vec<&String> = members.difference(&self.members_attempted[s]).collect();
            assert!(
                phantom.is_empty(),
                "{context}: {key} has members never added: {phantom:?}"
            );
        }
        for t in 0..THREADS {
            let key = register_key(t);
            let value = match c.cmd(&["GET", &key]) {
                Reply::Null => None,
                reply => {
                    expected_keys.insert(key.clone());
                    Some(reply.text().parse::<u64>().expect("a register"))
                }
            };
            if let Some(acked) = self.register_acked_last[t]
                && value.is_none_or(|v| v < acked)
            {
                eprintln!("{context}: {key} = {value:?}, older than the acknowledged {acked}");
                lost += 1;
            }
            if let Some(v) = value {
                assert!(
                    self.register_attempted_max[t].is_some_and(|max| v <= max),
                    "{context}: {key} = {v}, never written (last attempted {:?})",
                    self.register_attempted_max[t]
                );
            }
        }
        let mut keys: Vec<String> = match c.cmd(&["KEYS", "*"]) {
            Reply::Array(items) => items.iter().map(Reply::text).collect(),
            other => panic!("KEYS answered {other:?}"),
        };
        keys.sort();
        assert_eq!(
            keys,
            expected_keys.iter().cloned().collect::<Vec<_>>(),
            "{context}"
        );
        assert_eq!(
            c.cmd(&["DBSIZE"]),
            Reply::Int(keys.len() as i64),
            "{context}"
        );
        lost
    }
}

/// Runs [`ROUNDS`] write-kill-restart cycles under `fsync`; returns (acknowledged, lost).
fn crash_rounds(fsync: &str, seed: u64) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut node = Node::builder().set("storage", "fsync", fsync).start();
    let mut totals = Totals::default();
    let mut lost = 0;
    for round in 1..=ROUNDS {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (addr, acked, stop) = (node.addr(), acked.clone(), stop.clone());
                std::thread::spawn(move || writer(addr, t, round, acked, stop))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.load(Ordering::Relaxed) < ACKED_BEFORE_KILL {
            assert!(
                Instant::now() < deadline,
                "fsync={fsync} round {round}: only {} writes acknowledged in 20 s",
                acked.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let delay = Duration::from_millis(rng.random_range(0..1500));
        std::thread::sleep(delay);
        node.kill9();
        // Writers still blocked on a reply see the connection end now; the flag is a backstop.
        stop.store(true, Ordering::Relaxed);
        let mut round_acked = 0;
        let mut round_attempted = 0;
        for w in writers {
            let rec = w.join().expect("writer thread");
            round_acked += rec.writes_acked;
            round_attempted += rec.writes_attempted;
            totals.add(rec);
        }
        node.restart();
        let round_lost = totals.verify(&node, &format!("fsync={fsync} round {round}"));
        println!(
            "fsync={fsync} round {round}: killed {} ms after {ACKED_BEFORE_KILL} acks; \
             {round_acked} writes acknowledged, {} unacknowledged, {round_lost} lost",
            delay.as_millis(),
            round_attempted - round_acked
        );
        lost += round_lost;
    }
    // And once more after a clean restart: nothing changes.
    node.restart();
    lost += totals.verify(&node, &format!("fsync={fsync} final"));
    (totals.writes_acked, lost)
}

/// Runs [`crash_rounds`] under `fsync` with a printed seed and checks that no acknowledged
/// write was lost.
fn sigkill_loses_nothing(fsync: &str) {
    let seed = common::seed_from_env("CRDTKV_CRASH_SEED");
    println!("seed {seed} (replay with CRDTKV_CRASH_SEED={seed})");
    let (acked, lost) = crash_rounds(fsync, seed);
    println!("fsync={fsync}: {acked} acknowledged writes, {lost} lost");
    assert_eq!(
        lost, 0,
        "fsync={fsync} lost acknowledged writes (seed {seed})"
    );
    assert!(acked >= ROUNDS * ACKED_BEFORE_KILL);
}

#[test]
fn sigkill_loses_no_acknowledged_write_with_fsync_always() {
    sigkill_loses_nothing("always");
}

#[test]
fn sigkill_loses_no_acknowledged_write_with_fsync_everysec() {
    sigkill_loses_nothing("everysec");
}
