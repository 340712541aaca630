//! Everything written survives restarts, clean (SIGTERM) and crashed (SIGKILL): every type,
//! a set and a text large enough that their writes go through the delta log rather than full
//! rewrites (keyspace/entry.rs: values over 1024 encoded bytes), deleted keys that must stay
//! deleted, and keys deleted then written again. After each restart every value is read back
//! and compared whole, DBSIZE and KEYS are checked, and CRDT.INFO of every live key is
//! identical to what it was before (same parts, timestamps, contributions and contexts).
//!
//! The big text is edited by a seeded RNG against a local model; the seed is printed, and
//! `CRDTKV_RESTART_SEED=n` replays it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::data::{args, ok, pipeline, sorted};
use common::{Node, Raw, Reply};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What every key must hold.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    /// A register: GET answers these bytes.
    Register(Vec<u8>),
    /// A PN counter.
    Counter(i64),
    /// A G counter.
    GCounter(i64),
    /// A set with exactly these members.
    Set(BTreeSet<Vec<u8>>),
    /// A text.
    Text(String),
    /// Deleted: must not exist.
    Gone,
}

/// The expected keyspace, and the model of the big text.
struct Model {
    keys: BTreeMap<String, Want>,
    big_text: Vec<char>,
    rng: StdRng,
}

const BIG_SET: &str = "big:set";
const BIG_TEXT: &str = "big:text";
/// Members per SADD/SREM call and commands per pipelined write.
const MEMBERS_PER_CALL: usize = 50;
const PIPELINE: usize = 100;

fn member(i: usize) -> Vec<u8> {
    format!("member:{i:06}").into_bytes()
}

/// Sends `commands` in pipelined chunks and checks each reply against `expected`.
fn run_all(c: &mut Raw, commands: Vec<Vec<Vec<u8>>>, expected: Vec<Reply>) {
    assert_eq!(commands.len(), expected.len());
    for (cmds, want) in commands.chunks(PIPELINE).zip(expected.chunks(PIPELINE)) {
        let got = pipeline(c, cmds);
        for ((cmd, got), want) in cmds.iter().zip(&got).zip(want) {
            assert_eq!(
                got,
                want,
                "{}",
                String::from_utf8_lossy(&cmd.concat()[..cmd.concat().len().min(80)])
            );
        }
    }
}

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            keys: BTreeMap::new(),
            big_text: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Adds members `range` to the big set, then removes every 7th of them.
    fn grow_big_set(&mut self, c: &mut Raw, range: std::ops::Range<usize>) {
        let Want::Set(members) = self
            .keys
            .entry(BIG_SET.into())
            .or_insert_with(|| Want::Set(BTreeSet::new()))
        else {
            unreachable!()
        };
        let ids: Vec<usize> = range.collect();
        let (mut commands, mut expected) = (Vec::new(), Vec::new());
        for chunk in ids.chunks(MEMBERS_PER_CALL) {
            let mut cmd = args(&["SADD", BIG_SET]);
            cmd.extend(chunk.iter().map(|&i| member(i)));
            commands.push(cmd);
            let new = chunk.iter().filter(|&&i| members.insert(member(i))).count();
            expected.push(Reply::Int(new as i64));
        }
        let removed: Vec<usize> = ids.iter().copied().filter(|i| i % 7 == 3).collect();
        for chunk in removed.chunks(MEMBERS_PER_CALL) {
            let mut cmd = args(&["SREM", BIG_SET]);
            cmd.extend(chunk.iter().map(|&i| member(i)));
            commands.push(cmd);
            let gone = chunk
                .iter()
                .filter(|&&i| members.remove(&member(i)))
                .count();
            expected.push(Reply::Int(gone as i64));
        }
        run_all(c, commands, expected);
    }

    /// `ops` random inserts and deletes on the big text, mostly inserts.
    fn edit_big_text(&mut self, c: &mut Raw, ops: usize) {
        const ALPHABET: &[char] = &['a', 'b', 'c', ' ', 'é', 'ü', '€', '中', '👋', '\n'];
        let (mut commands, mut expected) = (Vec::new(), Vec::new());
        for _ in 0..ops {
            let len = self.big_text.len();
            if len == 0 || self.rng.random_bool(0.7) {
                let at = self.rng.random_range(0..=len);
                let n = self.rng.random_range(1..=20);
                let s: String = (0..n)
                    .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())])
                    .collect();
                self.big_text.splice(at..at, s.chars());
                commands.push(args(&["TEXT.INSERT", BIG_TEXT, &at.to_string(), &s]));
                expected.push(Reply::Int(self.big_text.len() as i64));
            } else {
                let at = self.rng.random_range(0..len);
                let n = self.rng.random_range(1..=30);
                let end = (at + n).min(len);
                self.big_text.drain(at..end);
                commands.push(args(&[
                    "TEXT.DELETE",
                    BIG_TEXT,
                    &at.to_string(),
                    &n.to_string(),
                ]));
                expected.push(Reply::Int((end - at) as i64));
            }
        }
        run_all(c, commands, expected);
        self.keys
            .insert(BIG_TEXT.into(), Want::Text(self.big_text.iter().collect()));
    }

    fn want(&mut self, key: &str, want: Want) {
        self.keys.insert(key.into(), want);
    }

    /// Reads every key back and compares it whole; then DBSIZE and KEYS.
    fn verify(&self, node: &Node, context: &str) {
        let mut c = node.raw();
        let mut live = Vec::new();
        for (key, want) in &self.keys {
            let what = format!("{context}: {key}");
            match want {
                Want::Register(bytes) => {
                    assert_eq!(c.cmd(&["GET", key]), Reply::Bulk(bytes.clone()), "{what}");
                    assert_eq!(c.cmd(&["TYPE", key]), Reply::Simple("string".into()));
                }
                Want::Counter(n) | Want::GCounter(n) => {
                    assert_eq!(c.cmd(&["GET", key]), Reply::bulk(&n.to_string()), "{what}");
                    assert_eq!(c.cmd(&["TYPE", key]), Reply::Simple("string".into()));
                }
                Want::Set(members) => {
                    let want =
                        Reply::Array(members.iter().map(|m| Reply::Bulk(m.clone())).collect());
                    assert!(
                        sorted(c.cmd(&["SMEMBERS", key])) == want,
                        "{what}: members differ"
                    );
                    assert_eq!(
                        c.cmd(&["SCARD", key]),
                        Reply::Int(members.len() as i64),
                        "{what}"
                    );
                    assert_eq!(c.cmd(&["TYPE", key]), Reply::Simple("set".into()));
                }
                Want::Text(text) => {
                    assert!(
                        c.cmd(&["TEXT.GET", key]) == Reply::bulk(text),
                        "{what}: text differs"
                    );
                    assert_eq!(
                        c.cmd(&["TEXT.LEN", key]),
                        Reply::Int(text.chars().count() as i64),
                        "{what}"
                    );
                    assert_eq!(c.cmd(&["TYPE", key]), Reply::Simple("text".into()));
                }
                Want::Gone => {
                    assert_eq!(c.cmd(&["EXISTS", key]), Reply::Int(0), "{what}");
                    assert_eq!(c.cmd(&["TYPE", key]), Reply::Simple("none".into()));
                    assert_eq!(c.cmd(&["GET", key]), Reply::Null, "{what}");
                }
            }
            if *want != Want::Gone {
                live.push(key.clone());
            }
        }
        // Counters keep their CRDT type: a G counter refuses a negative increment, a PN
        // counter does not convert (it is not a register any more).
        for (key, want) in &self.keys {
            let kind = match want {
                Want::Counter(_) => "pn-counter",
                Want::GCounter(_) => "g-counter",
                Want::Register(_) => "lww-register",
                _ => continue,
            };
            match c.cmd(&["CRDT.INFO", key]) {
                Reply::Array(fields) => assert_eq!(
                    fields[2..4],
                    [Reply::bulk("crdt"), Reply::bulk(kind)],
                    "{context}: {key}"
                ),
                other => panic!("{context}: CRDT.INFO {key} answered {other:?}"),
            }
        }
        assert_eq!(
            c.cmd(&["DBSIZE"]),
            Reply::Int(live.len() as i64),
            "{context}"
        );
        let keys: Vec<&str> = live.iter().map(String::as_str).collect();
        assert_eq!(
            sorted(c.cmd(&["KEYS", "*"])),
            common::data::bulks(&keys),
            "{context}"
        );
    }

    /// CRDT.INFO of every live key: the whole CRDT state as the node describes it.
    fn snapshot(&self, node: &Node) -> Snapshot {
        let mut c = node.raw();
        self.keys
            .iter()
            .filter(|(_, w)| **w != Want::Gone)
            .map(|(k, _)| (k.clone(), without_runs(c.cmd(&["CRDT.INFO", k]))))
            .collect()
    }
}

/// A CRDT.INFO reply (RESP2) without a text's `runs`: how many runs memory holds depends on
/// the order edits arrived in (a loaded text may join runs the live one kept apart), not on
/// the CRDT state.
fn without_runs(reply: Reply) -> Reply {
    match reply {
        Reply::Array(items) => {
            let mut out: Vec<Reply> = Vec::with_capacity(items.len());
            for item in items {
                let after_runs = out.last() == Some(&Reply::bulk("runs"));
                out.push(if after_runs {
                    Reply::Simple("runs elided".into())
                } else {
                    without_runs(item)
                });
            }
            Reply::Array(out)
        }
        other => other,
    }
}

/// CRDT.INFO of every live key.
type Snapshot = BTreeMap<String, Reply>;

/// Fails naming every key whose CRDT.INFO differs between `before` and `after`.
fn assert_same_state(before: &Snapshot, after: &Snapshot, context: &str) {
    let differing: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}:\n  before {}\n  after  {}",
                render(v),
                after.get(k).map_or("-".into(), render)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "CRDT.INFO changed {context}:\n{}",
        differing.join("\n")
    );
}

/// A compact rendering of a reply for failure messages.
fn render(r: &Reply) -> String {
    match r {
        Reply::Bulk(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Reply::Array(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(" ")
        ),
        other => format!("{other:?}"),
    }
}

/// Registers, counters, small sets and texts, deletes and re-creations.
fn write_small_values(c: &mut Raw, m: &mut Model) {
    c.send_cmd(&[b"SET", b"reg:bin", b"\x00\x01binary\r\n\xff"]);
    assert_eq!(c.read(), ok());
    m.want(
        "reg:bin",
        Want::Register(b"\x00\x01binary\r\n\xff".to_vec()),
    );
    assert_eq!(c.cmd(&["SET", "reg:empty", ""]), ok());
    m.want("reg:empty", Want::Register(vec![]));
    assert_eq!(c.cmd(&["MSET", "reg:a", "1st", "reg:b", "2nd"]), ok());
    assert_eq!(c.cmd(&["SET", "reg:a", "overwritten"]), ok());
    m.want("reg:a", Want::Register(b"overwritten".to_vec()));
    m.want("reg:b", Want::Register(b"2nd".to_vec()));
    let long = "l".repeat(5000);
    assert_eq!(c.cmd(&["SET", "reg:long", &long]), ok());
    m.want("reg:long", Want::Register(long.into_bytes()));

    assert_eq!(c.cmd(&["INCRBY", "pn:neg", "100"]), Reply::Int(100));
    assert_eq!(c.cmd(&["DECRBY", "pn:neg", "250"]), Reply::Int(-150));
    m.want("pn:neg", Want::Counter(-150));
    for i in 1..=500 {
        assert_eq!(c.cmd(&["INCR", "pn:many"]), Reply::Int(i));
    }
    m.want("pn:many", Want::Counter(500));
    assert_eq!(c.cmd(&["SET", "pn:conv", "41"]), ok());
    assert_eq!(c.cmd(&["INCR", "pn:conv"]), Reply::Int(42));
    m.want("pn:conv", Want::Counter(42));
    assert_eq!(
        c.cmd(&["INCRBY", "pn:min", "-9223372036854775808"]),
        Reply::Int(i64::MIN)
    );
    m.want("pn:min", Want::Counter(i64::MIN));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "7"]), Reply::Int(7));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "8"]), Reply::Int(15));
    m.want("g", Want::GCounter(15));

    assert_eq!(c.cmd(&["SADD", "set:small", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(c.cmd(&["SREM", "set:small", "b"]), Reply::Int(1));
    c.send_cmd(&[b"SADD", b"set:small", b"\x00\xff", b""]);
    assert_eq!(c.read(), Reply::Int(2));
    m.want(
        "set:small",
        Want::Set(
            [&b"a"[..], b"c", b"\x00\xff", b""]
                .map(<[u8]>::to_vec)
                .into(),
        ),
    );
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "text:small", "0", "héllo wörld"]),
        Reply::Int(11)
    );
    assert_eq!(
        c.cmd(&["TEXT.DELETE", "text:small", "0", "1"]),
        Reply::Int(1)
    );
    m.want("text:small", Want::Text("éllo wörld".into()));

    // Deleted keys of every type, which must stay deleted.
    assert_eq!(c.cmd(&["SET", "gone:reg", "x"]), ok());
    assert_eq!(c.cmd(&["INCR", "gone:pn"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "gone:g", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "gone:set", "a", "b"]), Reply::Int(2));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "gone:text", "0", "abc"]),
        Reply::Int(3)
    );
    assert_eq!(
        c.cmd(&[
            "DEL",
            "gone:reg",
            "gone:pn",
            "gone:g",
            "gone:set",
            "gone:text"
        ]),
        Reply::Int(5)
    );
    assert_eq!(c.cmd(&["SADD", "gone:emptied", "only"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SREM", "gone:emptied", "only"]), Reply::Int(1));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "gone:erased", "0", "xyz"]),
        Reply::Int(3)
    );
    assert_eq!(
        c.cmd(&["TEXT.DELETE", "gone:erased", "0", "3"]),
        Reply::Int(3)
    );
    for key in [
        "gone:reg",
        "gone:pn",
        "gone:g",
        "gone:set",
        "gone:text",
        "gone:emptied",
        "gone:erased",
    ] {
        m.want(key, Want::Gone);
    }

    // Deleted, then written again: only what came after the delete.
    assert_eq!(c.cmd(&["SADD", "re:set", "a", "b"]), Reply::Int(2));
    assert_eq!(c.cmd(&["DEL", "re:set"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "re:set", "c"]), Reply::Int(1));
    m.want("re:set", Want::Set([b"c".to_vec()].into()));
    assert_eq!(c.cmd(&["INCRBY", "re:pn", "10"]), Reply::Int(10));
    assert_eq!(c.cmd(&["DEL", "re:pn"]), Reply::Int(1));
    assert_eq!(c.cmd(&["INCRBY", "re:pn", "3"]), Reply::Int(3));
    m.want("re:pn", Want::Counter(3));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "re:text", "0", "old"]),
        Reply::Int(3)
    );
    assert_eq!(c.cmd(&["UNLINK", "re:text"]), Reply::Int(1));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "re:text", "0", "new"]),
        Reply::Int(3)
    );
    m.want("re:text", Want::Text("new".into()));
    assert_eq!(c.cmd(&["SET", "re:reg", "old"]), ok());
    assert_eq!(c.cmd(&["DEL", "re:reg"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SET", "re:reg", "new"]), ok());
    m.want("re:reg", Want::Register(b"new".to_vec()));
    // Type changes: SET over a set, a text over a deleted register.
    assert_eq!(c.cmd(&["SADD", "re:typed", "a"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SET", "re:typed", "str"]), ok());
    m.want("re:typed", Want::Register(b"str".to_vec()));
    assert_eq!(c.cmd(&["SET", "re:retyped", "str"]), ok());
    assert_eq!(c.cmd(&["DEL", "re:retyped"]), Reply::Int(1));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "re:retyped", "0", "txt"]),
        Reply::Int(3)
    );
    m.want("re:retyped", Want::Text("txt".into()));
}

/// Writes after a restart, on top of the state loaded from disk.
fn write_more(c: &mut Raw, m: &mut Model, step: i64) {
    assert_eq!(c.cmd(&["INCRBY", "pn:neg", "-1"]), Reply::Int(-150 - step));
    m.want("pn:neg", Want::Counter(-150 - step));
    assert_eq!(
        c.cmd(&["GCOUNTER.INCRBY", "g", "5"]),
        Reply::Int(15 + 5 * step)
    );
    m.want("g", Want::GCounter(15 + 5 * step));
    let value = format!("after restart {step}");
    assert_eq!(c.cmd(&["SET", "reg:a", &value]), ok());
    m.want("reg:a", Want::Register(value.into_bytes()));
    assert_eq!(
        c.cmd(&["SADD", "re:set", &format!("d{step}")]),
        Reply::Int(1)
    );
    if let Some(Want::Set(s)) = m.keys.get_mut("re:set") {
        s.insert(format!("d{step}").into_bytes());
    }
    // Keys deleted before the restart are still deleted after it.
    assert_eq!(c.cmd(&["DEL", "gone:pn"]), Reply::Int(0));
    assert_eq!(c.cmd(&["EXISTS", "gone:set"]), Reply::Int(0));
}

#[test]
fn every_value_survives_clean_and_crash_restarts() {
    let seed = common::seed_from_env("CRDTKV_RESTART_SEED");
    println!("seed {seed} (replay with CRDTKV_RESTART_SEED={seed})");
    let mut node = Node::start();
    let mut m = Model::new(seed);
    let mut c = node.raw();
    write_small_values(&mut c, &mut m);
    m.grow_big_set(&mut c, 0..20_000);
    m.edit_big_text(&mut c, 3000);
    drop(c);
    m.verify(&node, "before any restart");
    let Want::Text(text) = &m.keys[BIG_TEXT] else {
        unreachable!()
    };
    println!(
        "big set: {} members; big text: {} characters, {} bytes",
        match &m.keys[BIG_SET] {
            Want::Set(s) => s.len(),
            _ => unreachable!(),
        },
        text.chars().count(),
        text.len()
    );
    let before = m.snapshot(&node);

    // A clean stop.
    let status = node.signal_and_wait("TERM");
    assert!(status.success(), "SIGTERM exit: {status}");
    node.restart();
    m.verify(&node, "after SIGTERM");
    assert_same_state(&before, &m.snapshot(&node), "across SIGTERM");

    // More writes on top of the loaded state, then a crash.
    let mut c = node.raw();
    write_more(&mut c, &mut m, 1);
    m.grow_big_set(&mut c, 20_000..22_000);
    m.edit_big_text(&mut c, 1000);
    drop(c);
    m.verify(&node, "before SIGKILL");
    let before = m.snapshot(&node);
    node.kill9();
    node.restart();
    m.verify(&node, "after SIGKILL");
    assert_same_state(&before, &m.snapshot(&node), "across SIGKILL");

    // A crash right after a restart, with nothing written in between; then writes again and a
    // last clean stop.
    node.kill9();
    node.restart();
    m.verify(&node, "after a second SIGKILL");
    assert_same_state(&before, &m.snapshot(&node), "across a second SIGKILL");
    let mut c = node.raw();
    write_more(&mut c, &mut m, 2);
    m.edit_big_text(&mut c, 500);
    drop(c);
    let before = m.snapshot(&node);
    let status = node.signal_and_wait("INT");
    assert!(status.success(), "SIGINT exit: {status}");
    node.restart();
    m.verify(&node, "after SIGINT");
    assert_same_state(&before, &m.snapshot(&node), "across SIGINT");
}
