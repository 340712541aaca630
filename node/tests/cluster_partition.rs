//! A real partition: node 1 cut from nodes 2 and 3 with `CLUSTER PARTITION`, writes on both
//! sides, heal, and every node converges to what the CRDT semantics promise for exactly the
//! writes that were acknowledged.
//!
//! Each side runs a random workload (seeded: the seed is printed, `CRDTKV_TEST_SEED=n`
//! replays it) against a model of that side's view. Within side {2, 3} writes go to one node
//! for a while, then the side waits until both of its nodes hold identical states before it
//! switches, so each side's writes form one causal history and the model of the side is exact:
//! every reply is checked against it during the split. After the heal the models of the two
//! sides are combined by the rules of each type (add-wins sets, observed-remove DEL, counters
//! that sum every acknowledged increment, registers that end at one side's last write, text
//! that keeps every insert not deleted, in each side's order).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::cluster::{Cluster, WAIT, crdt_state, set_members, wait_for};
use common::{Raw, Reply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A tag identifies one write: (side, sequence); side 0 is the state before the split.
type Tag = (u8, u32);

/// One side's view of an OR set, and what it did.
#[derive(Debug, Clone, Default)]
struct SetSide {
    view: BTreeMap<String, BTreeSet<Tag>>,
    added: Vec<(String, Tag)>,
    removed: BTreeSet<Tag>,
}

impl SetSide {
    /// SADD: the reply the node must give.
    fn add(&mut self, member: &str, tag: Tag) -> i64 {
        let tags = self.view.entry(member.to_owned()).or_default();
        let new = tags.is_empty();
        tags.insert(tag);
        self.added.push((member.to_owned(), tag));
        i64::from(new)
    }

    /// SREM removes the adds this side has seen.
    fn remove(&mut self, member: &str) -> i64 {
        match self.view.remove(member) {
            Some(tags) if !tags.is_empty() => {
                self.removed.extend(tags);
                1
            }
            _ => 0,
        }
    }

    /// DEL of the whole set: observed-remove of every member.
    fn delete(&mut self) -> i64 {
        let existed = !self.view.is_empty();
        for (_, tags) in std::mem::take(&mut self.view) {
            self.removed.extend(tags);
        }
        i64::from(existed)
    }

    fn members(&self) -> Vec<String> {
        self.view.keys().cloned().collect()
    }
}

/// A member is in the merged set iff some acknowledged add of it was removed by no SREM or DEL
/// that had seen it.
fn merged_set(sides: [&SetSide; 2]) -> BTreeSet<String> {
    let removed: BTreeSet<Tag> = sides.iter().flat_map(|s| s.removed.clone()).collect();
    let mut out = BTreeSet::new();
    // Pre-split adds are in both views' history as their initial state.
    for side in sides {
        for (member, tag) in side.added.iter() {
            if !removed.contains(tag) {
                out.insert(member.clone());
            }
        }
    }
    out
}

/// One side's view of a counter with observed-remove DEL.
#[derive(Debug, Clone, Default)]
struct CounterSide {
    view: Vec<(Tag, i64)>,
    added: Vec<(Tag, i64)>,
    removed: BTreeSet<Tag>,
}

impl CounterSide {
    fn incr(&mut self, tag: Tag, by: i64) -> i64 {
        self.view.push((tag, by));
        self.added.push((tag, by));
        self.view.iter().map(|(_, n)| n).sum()
    }

    fn delete(&mut self) -> i64 {
        let existed = !self.view.is_empty();
        self.removed.extend(self.view.drain(..).map(|(t, _)| t));
        i64::from(existed)
    }
}

fn merged_counter(sides: [&CounterSide; 2]) -> Option<i64> {
    let removed: BTreeSet<Tag> = sides.iter().flat_map(|s| s.removed.clone()).collect();
    let live: BTreeMap<Tag, i64> = sides
        .iter()
        .flat_map(|s| s.added.clone())
        .filter(|(t, _)| !removed.contains(t))
        .collect();
    (!live.is_empty()).then(|| live.values().sum())
}

/// The last write of one side to a register key.
#[derive(Debug, Clone, Default, PartialEq)]
enum Last {
    #[default]
    Untouched,
    Set(String),
    Deleted,
}

/// One side's view of a text.
#[derive(Debug, Clone, Default)]
struct TextSide {
    view: Vec<char>,
    inserted: BTreeSet<char>,
    deleted: BTreeSet<char>,
}

/// Everything one side did and saw.
#[derive(Debug, Clone, Default)]
struct Side {
    counters: BTreeMap<String, CounterSide>,
    sets: BTreeMap<String, SetSide>,
    registers: BTreeMap<String, Last>,
    text: TextSide,
    /// Every acknowledged write, for the report.
    acked: usize,
}

/// Keys of the random workload.
const COUNTERS: [&str; 3] = ["ctr0", "ctr1", "ctr2"];
/// A counter that is also deleted.
const DEL_COUNTER: &str = "dctr";
/// A set that is only SADD/SREM'd, and one that is also deleted.
const SETS: [&str; 2] = ["s", "s2"];
/// A register written by both sides, one by side B only, one also deleted.
const REGISTERS: [&str; 3] = ["r", "r2", "r3"];
const TEXT: &str = "t";
const BASE_TEXT: &str = "0123456789";

/// The state every node holds before the split: a tag-0 write of each workload key.
fn base_side() -> Side {
    let mut side = Side::default();
    for (i, key) in COUNTERS.iter().chain([&DEL_COUNTER]).enumerate() {
        side.counters
            .entry((*key).into())
            .or_default()
            .incr((0, i as u32), 10);
    }
    for key in SETS {
        let set = side.sets.entry(key.into()).or_default();
        for k in 0..6 {
            set.add(&format!("base-{k}"), (0, 100 + k));
        }
    }
    for key in REGISTERS {
        side.registers.insert(key.into(), Last::Untouched);
    }
    side.text.view = BASE_TEXT.chars().collect();
    side
}

fn write_base(r: &mut Raw) {
    for key in COUNTERS.iter().chain([&DEL_COUNTER]) {
        assert_eq!(r.cmd(&["INCRBY", key, "10"]).int(), 10);
    }
    for key in SETS {
        for k in 0..6 {
            assert_eq!(r.cmd(&["SADD", key, &format!("base-{k}")]).int(), 1);
        }
    }
    for key in REGISTERS {
        r.cmd(&["SET", key, "base"]).assert_ok();
    }
    r.cmd(&["TEXT.INSERT", TEXT, "0", BASE_TEXT]).int();
}

/// A character of `side`'s own range: side A writes CJK ideographs, side B Hangul.
fn glyph(side: u8, n: u32) -> char {
    let base = if side == 1 { 0x4e00 } else { 0xac00 };
    char::from_u32(base + n).expect("a valid char")
}

/// One side of the workload: `ops` random writes on `nodes` (all on one side), checking every
/// reply against the side's model.
struct Writer<'a> {
    cluster: &'a Cluster,
    side_no: u8,
    nodes: Vec<usize>,
    current: usize,
    raw: Raw,
    rng: SmallRng,
    seq: u32,
    chars: u32,
    model: Side,
}

impl<'a> Writer<'a> {
    fn new(cluster: &'a Cluster, side_no: u8, nodes: Vec<usize>, seed: u64, base: Side) -> Self {
        Writer {
            cluster,
            side_no,
            raw: cluster.raw(nodes[0]),
            nodes,
            current: 0,
            rng: SmallRng::seed_from_u64(seed ^ u64::from(side_no)),
            seq: 0,
            chars: 0,
            model: base,
        }
    }

    fn node(&self) -> usize {
        self.nodes[self.current]
    }

    /// Moves writing to the next node of the side, once that node holds exactly what the
    /// current one holds: the side's writes stay one causal history.
    fn switch_node(&mut self) {
        if self.nodes.len() < 2 {
            return;
        }
        let from = self.node();
        self.current = (self.current + 1) % self.nodes.len();
        let to = self.node();
        let keys: Vec<&str> = COUNTERS
            .iter()
            .copied()
            .chain([DEL_COUNTER, TEXT])
            .chain(SETS)
            .chain(REGISTERS)
            .collect();
        let (mut a, mut b) = (self.cluster.raw(from), self.cluster.raw(to));
        wait_for(
            &format!("nodes {} and {} to hold the same states", from + 1, to + 1),
            WAIT,
            || {
                for key in &keys {
                    let (x, y) = (crdt_state(&mut a, key), crdt_state(&mut b, key));
                    if x != y {
                        return Err(format!("{key}:\n{x:?}\n{y:?}"));
                    }
                }
                Ok(())
            },
        );
        self.raw = b;
    }

    fn step(&mut self) {
        let r = &mut self.raw;
        let m = &mut self.model;
        let side = self.side_no;
        match self.rng.random_range(0..100) {
            0..20 => {
                let key = COUNTERS[self.rng.random_range(0..COUNTERS.len())];
                let by: i64 = self.rng.random_range(-50..=50);
                self.seq += 1;
                let tag = (side, self.seq);
                let want = m.counters.get_mut(key).unwrap().incr(tag, by);
                let reply = if by < 0 {
                    r.cmd(&["DECRBY", key, &(-by).to_string()])
                } else {
                    r.cmd(&["INCRBY", key, &by.to_string()])
                };
                assert_eq!(reply.int(), want, "{key} on side {side}");
            }
            20..26 => {
                let by: i64 = self.rng.random_range(1..=9);
                self.seq += 1;
                let tag = (side, self.seq);
                let want = m.counters.get_mut(DEL_COUNTER).unwrap().incr(tag, by);
                let got = r.cmd(&["INCRBY", DEL_COUNTER, &by.to_string()]).int();
                assert_eq!(got, want, "{DEL_COUNTER} on side {side}");
            }
            26..29 => {
                let want = m.counters.get_mut(DEL_COUNTER).unwrap().delete();
                assert_eq!(
                    r.cmd(&["DEL", DEL_COUNTER]).int(),
                    want,
                    "DEL {DEL_COUNTER}"
                );
            }
            29..55 => {
                let key = SETS[self.rng.random_range(0..SETS.len())];
                // Own members, or contested ones both sides may add.
                let member = if self.rng.random_bool(0.5) {
                    format!("side{side}-{}", self.rng.random_range(0..30))
                } else {
                    format!("contested-{}", self.rng.random_range(0..8))
                };
                self.seq += 1;
                let tag = (side, self.seq);
                let want = m.sets.get_mut(key).unwrap().add(&member, tag);
                assert_eq!(
                    r.cmd(&["SADD", key, &member]).int(),
                    want,
                    "SADD {key} {member}"
                );
            }
            55..72 => {
                let key = SETS[self.rng.random_range(0..SETS.len())];
                let set = m.sets.get_mut(key).unwrap();
                let members = set.members();
                let member = if !members.is_empty() && self.rng.random_bool(0.8) {
                    members[self.rng.random_range(0..members.len())].clone()
                } else {
                    format!("contested-{}", self.rng.random_range(0..8))
                };
                let want = set.remove(&member);
                assert_eq!(
                    r.cmd(&["SREM", key, &member]).int(),
                    want,
                    "SREM {key} {member}"
                );
            }
            72..74 => {
                let want = m.sets.get_mut("s2").unwrap().delete();
                assert_eq!(r.cmd(&["DEL", "s2"]).int(), want, "DEL s2");
            }
            74..84 => {
                let key = REGISTERS[self.rng.random_range(0..REGISTERS.len())];
                // r2 is side B's alone.
                let key = if key == "r2" && side == 1 { "r" } else { key };
                let last = m.registers.get_mut(key).unwrap();
                if key == "r3" && self.rng.random_bool(0.3) {
                    let existed = *last != Last::Deleted;
                    *last = Last::Deleted;
                    assert_eq!(r.cmd(&["DEL", key]).int(), i64::from(existed), "DEL {key}");
                } else {
                    self.seq += 1;
                    let value = format!("side{side}-{}", self.seq);
                    r.cmd(&["SET", key, &value]).assert_ok();
                    *last = Last::Set(value);
                }
            }
            84..94 => {
                let n = self.rng.random_range(1..=3);
                let text: String = (0..n).map(|i| glyph(side, self.chars + i)).collect();
                self.chars += n;
                let pos = self.rng.random_range(0..=m.text.view.len());
                m.text.view.splice(pos..pos, text.chars());
                m.text.inserted.extend(text.chars());
                let got = r.cmd(&["TEXT.INSERT", TEXT, &pos.to_string(), &text]).int();
                assert_eq!(got, m.text.view.len() as i64, "TEXT.INSERT side {side}");
            }
            _ => {
                let len = m.text.view.len();
                if len == 0 {
                    return;
                }
                let pos = self.rng.random_range(0..len);
                let count = self.rng.random_range(1..=3);
                let end = (pos + count).min(len);
                m.text.deleted.extend(m.text.view.drain(pos..end));
                let got = r
                    .cmd(&["TEXT.DELETE", TEXT, &pos.to_string(), &count.to_string()])
                    .int();
                assert_eq!(got, (end - pos) as i64, "TEXT.DELETE side {side}");
            }
        }
        self.model.acked += 1;
    }

    /// `ops` writes, switching nodes every `burst`.
    fn run(&mut self, ops: usize, burst: usize) {
        for i in 0..ops {
            if i > 0 && i % burst == 0 {
                self.switch_node();
            }
            self.step();
        }
    }
}

/// Keys with a fixed script around DEL during the split: (key, setup, side A, side B, expected).
struct Scripted {
    key: &'static str,
    setup: &'static [&'static [&'static str]],
    side_a: &'static [&'static [&'static str]],
    side_b: &'static [&'static [&'static str]],
    expected: &'static str,
}

const SCRIPTED: &[Scripted] = &[
    // DEL on one side, SET on the other: the SET did not see the old value either way, and
    // the DEL did not see the SET.
    Scripted {
        key: "del-vs-set",
        setup: &[&["SET", "del-vs-set", "x"]],
        side_a: &[&["DEL", "del-vs-set"]],
        side_b: &[&["SET", "del-vs-set", "y"]],
        expected: "string:y",
    },
    // DEL with nothing concurrent: gone everywhere.
    Scripted {
        key: "del-alone",
        setup: &[&["SADD", "del-alone", "m"]],
        side_a: &[],
        side_b: &[&["DEL", "del-alone"]],
        expected: "none",
    },
    // DEL of a counter on one side, INCRBY on the other: only the unseen increment survives.
    Scripted {
        key: "del-vs-incr",
        setup: &[&["INCRBY", "del-vs-incr", "5"]],
        side_a: &[&["DEL", "del-vs-incr"]],
        side_b: &[&["INCRBY", "del-vs-incr", "2"]],
        expected: "string:2",
    },
    // DEL of a set on one side, SADD on the other: the unseen member survives.
    Scripted {
        key: "del-vs-sadd",
        setup: &[&["SADD", "del-vs-sadd", "a", "b"]],
        side_a: &[&["DEL", "del-vs-sadd"]],
        side_b: &[&["SADD", "del-vs-sadd", "c"]],
        expected: "set:c",
    },
    // DEL of a text on one side, an insert on the other: the unseen insert survives.
    Scripted {
        key: "del-vs-insert",
        setup: &[&["TEXT.INSERT", "del-vs-insert", "0", "abc"]],
        side_a: &[&["DEL", "del-vs-insert"]],
        side_b: &[&["TEXT.INSERT", "del-vs-insert", "3", "XY"]],
        expected: "text:XY",
    },
    // DEL on both sides: gone.
    Scripted {
        key: "del-both",
        setup: &[&["SET", "del-both", "x"]],
        side_a: &[&["DEL", "del-both"]],
        side_b: &[&["DEL", "del-both"]],
        expected: "none",
    },
    // Both sides remove the same base member and add it back on one side.
    Scripted {
        key: "srem-both",
        setup: &[&["SADD", "srem-both", "m", "n"]],
        side_a: &[&["SREM", "srem-both", "m", "n"]],
        side_b: &[&["SREM", "srem-both", "m"], &["SADD", "srem-both", "n"]],
        expected: "set:n",
    },
    // Both sides delete the same characters, one side inserts between them.
    Scripted {
        key: "text-both",
        setup: &[&["TEXT.INSERT", "text-both", "0", "abcdef"]],
        side_a: &[&["TEXT.DELETE", "text-both", "1", "3"]],
        side_b: &[
            &["TEXT.DELETE", "text-both", "2", "3"],
            &["TEXT.INSERT", "text-both", "2", "Z"],
        ],
        expected: "text:aZf",
    },
];

fn run_script(r: &mut Raw, commands: &[&[&str]]) {
    for c in commands {
        if let Reply::Error(e) = r.cmd(c) {
            panic!("{c:?}: {e}");
        }
    }
}

fn info_field(cluster: &Cluster, i: usize, name: &str) -> String {
    cluster.info(i).get(name).cloned().unwrap_or_default()
}

/// Waits until node `i` sees exactly `down` as down and runs degraded.
fn wait_split_seen(cluster: &Cluster, i: usize, down: &[u64], alive: usize) {
    wait_for(
        &format!("node {} to see {down:?} down and run degraded", i + 1),
        WAIT,
        || {
            let info = cluster.info(i);
            let members = cluster.members(i);
            let all_down = down
                .iter()
                .all(|id| members.iter().any(|m| m.id == *id && m.state == "down"));
            let cut: Vec<String> = down.iter().map(u64::to_string).collect();
            if all_down
                && info["replication_mode"] == "degraded"
                && info["members_alive"] == alive.to_string()
                && info["partitioned_from"] == cut.join(",")
            {
                Ok(())
            } else {
                Err(format!("{info:#?}\n{members:#?}"))
            }
        },
    );
}

#[test]
fn partitioned_writes_merge_to_every_acknowledged_write() {
    let seed = common::seed_from_env("CRDTKV_TEST_SEED");
    eprintln!("seed {seed} (CRDTKV_TEST_SEED={seed} replays the workload)");

    let cluster = Cluster::start(3);
    let mut r1 = cluster.raw(0);
    write_base(&mut r1);
    for s in SCRIPTED {
        run_script(&mut r1, s.setup);
    }
    let mut keys: Vec<String> = COUNTERS
        .iter()
        .chain([&DEL_COUNTER, &TEXT])
        .chain(SETS.iter())
        .chain(REGISTERS.iter())
        .map(|k| k.to_string())
        .collect();
    keys.extend(SCRIPTED.iter().map(|s| s.key.to_string()));
    cluster.wait_identical(&keys, WAIT);

    // The split: {1} | {2, 3}.
    cluster.partition(&[&[0], &[1, 2]]);
    let split_at = Instant::now();
    let mut side_a = Writer::new(&cluster, 1, vec![0], seed, base_side());
    let mut side_b = Writer::new(&cluster, 2, vec![1, 2], seed, base_side());
    for s in SCRIPTED {
        run_script(&mut side_a.raw, s.side_a);
        run_script(&mut side_b.raw, s.side_b);
    }
    std::thread::scope(|scope| {
        scope.spawn(|| side_a.run(100, 100));
        scope.spawn(|| side_b.run(100, 20));
    });

    // Both sides notice: the peers across the cut are down, replication is degraded.
    wait_split_seen(&cluster, 0, &[2, 3], 1);
    wait_split_seen(&cluster, 1, &[1], 2);
    wait_split_seen(&cluster, 2, &[1], 2);
    eprintln!("both sides saw the split within {:?}", split_at.elapsed());
    // Nothing crossed the cut: a key written on one side only is not on the other.
    assert_eq!(
        cluster.values(0, &["del-alone".into()]),
        ["set:m"],
        "node 1 still holds what only side B deleted"
    );

    // More writes while both sides know they are split.
    std::thread::scope(|scope| {
        scope.spawn(|| side_a.run(100, 100));
        scope.spawn(|| side_b.run(100, 20));
    });
    let (a, b) = (side_a.model, side_b.model);
    eprintln!(
        "acknowledged during the split: {} writes on node 1, {} on nodes 2 and 3",
        a.acked, b.acked
    );

    let healed = Instant::now();
    cluster.heal();
    let (values, _) = cluster.wait_identical(&keys, WAIT);
    let took = healed.elapsed();
    eprintln!("heal to identical values on every node: {took:?}");
    let value = |key: &str| values[keys.iter().position(|k| k == key).unwrap()].clone();

    for key in COUNTERS.iter().chain([&DEL_COUNTER]) {
        let want = merged_counter([&a.counters[*key], &b.counters[*key]]);
        let want = want.map_or_else(|| "none".to_owned(), |n| format!("string:{n}"));
        assert_eq!(
            value(key),
            want,
            "{key}: every acknowledged increment, once"
        );
    }
    for key in SETS {
        let (sa, sb) = (&a.sets[key], &b.sets[key]);
        let got: BTreeSet<String> = set_members(&value(key)).into_iter().collect();
        let want = merged_set([sa, sb]);
        let removed: BTreeSet<Tag> = sa.removed.union(&sb.removed).copied().collect();
        for (member, tag) in sa.added.iter().chain(&sb.added) {
            if !removed.contains(tag) {
                assert!(
                    got.contains(member),
                    "{key}: {member} was added ({tag:?}) and never removed by a write that \
                     saw the add, yet it is missing"
                );
            }
        }
        for member in &got {
            let adds: Vec<&Tag> = sa
                .added
                .iter()
                .chain(&sb.added)
                .filter(|(m, _)| m == member)
                .map(|(_, t)| t)
                .collect();
            assert!(
                adds.iter().any(|t| !removed.contains(t)),
                "{key}: {member} came back although every add of it ({adds:?}) was removed \
                 by a write that saw it"
            );
        }
        assert_eq!(got, want, "{key}");
    }
    for key in REGISTERS {
        let lasts = [&a.registers[key], &b.registers[key]];
        let mut allowed: Vec<String> = lasts
            .iter()
            .filter_map(|l| match l {
                Last::Set(v) => Some(format!("string:{v}")),
                _ => None,
            })
            .collect();
        if allowed.is_empty() {
            allowed.push(if lasts.iter().all(|l| **l == Last::Untouched) {
                "string:base".into()
            } else {
                "none".into()
            });
        }
        assert!(
            allowed.contains(&value(key)),
            "{key} = {} but the last writes of the sides were {lasts:?}",
            value(key)
        );
    }

    // Text: every acknowledged insert that no side deleted, nothing else, and each side's
    // characters in the order that side saw them.
    let text: Vec<char> = value(TEXT)
        .strip_prefix("text:")
        .expect("t is text")
        .chars()
        .collect();
    let deleted: BTreeSet<char> = a.text.deleted.union(&b.text.deleted).copied().collect();
    let all: BTreeSet<char> = BASE_TEXT
        .chars()
        .chain(a.text.inserted.iter().copied())
        .chain(b.text.inserted.iter().copied())
        .collect();
    let want: BTreeSet<char> = all.difference(&deleted).copied().collect();
    let got: BTreeSet<char> = text.iter().copied().collect();
    assert_eq!(got.len(), text.len(), "a character appears twice: {text:?}");
    assert_eq!(got, want, "text characters");
    for (name, side) in [("node 1", &a), ("nodes 2 and 3", &b)] {
        let universe: BTreeSet<char> = BASE_TEXT
            .chars()
            .chain(side.text.inserted.iter().copied())
            .collect();
        let merged: String = text.iter().filter(|c| universe.contains(c)).collect();
        let seen: String = side
            .text
            .view
            .iter()
            .filter(|c| !deleted.contains(c))
            .collect();
        assert_eq!(merged, seen, "the order {name} saw is kept");
    }

    for s in SCRIPTED {
        assert_eq!(value(s.key), s.expected, "{}", s.key);
    }

    // The whole CRDT state, not only the visible values, is the same everywhere.
    cluster.wait_same_states(&keys);

    // And the cluster is whole again.
    cluster.wait_all_alive();
    for i in 0..3 {
        wait_for("replication back to normal", WAIT, || {
            let info = cluster.info(i);
            if info["replication_mode"] == "normal"
                && info["partitioned_from"].is_empty()
                && info["members_alive"] == "3"
            {
                Ok(())
            } else {
                Err(format!("{info:#?}"))
            }
        });
    }
    assert_eq!(info_field(&cluster, 0, "caught_up"), "1");
}

fn counter(cluster: &Cluster, i: usize, name: &str) -> u64 {
    cluster.info(i)[name].parse().expect("a number")
}

/// Tombstone GC waits for every member, reachable or not: a DEL on one side of a split is not
/// collected while the other side cannot have seen it, so the value the other side still holds
/// does not come back at the heal; afterwards it is collected everywhere.
#[test]
fn tombstones_outlive_a_partition() {
    let cluster = Cluster::builder(3).quick_tombstone_gc().start();
    let keys: Vec<String> = ["k", "s", "c", "control"].map(String::from).to_vec();
    let mut r1 = cluster.raw(0);
    r1.cmd(&["SET", "k", "v"]).assert_ok();
    r1.cmd(&["SADD", "s", "a"]).int();
    r1.cmd(&["INCRBY", "c", "5"]).int();
    r1.cmd(&["SET", "control", "x"]).assert_ok();
    cluster.wait_identical(&keys, WAIT);
    // GC works while everyone is connected.
    assert_eq!(r1.cmd(&["DEL", "control"]).int(), 1);
    for i in 0..3 {
        wait_for("the control tombstone to be collected", WAIT, || {
            let n = counter(&cluster, i, "tombstones_dropped");
            if n >= 1 {
                Ok(())
            } else {
                Err(format!("node {}: {n}", i + 1))
            }
        });
    }

    cluster.partition(&[&[0], &[1, 2]]);
    let mut r2 = cluster.raw(1);
    assert_eq!(r2.cmd(&["DEL", "k", "s", "c"]).int(), 3);
    r1.cmd(&["SADD", "s", "b"]).int();
    let dropped: Vec<u64> = (1..3)
        .map(|i| counter(&cluster, i, "tombstones_dropped"))
        .collect();
    // Give collection every chance on side {2, 3}: many anti-entropy rounds between them,
    // each long past the grace period's worth of GC runs.
    let rounds = counter(&cluster, 1, "ae_rounds_completed");
    wait_for("side {2, 3} to run anti-entropy for a while", WAIT, || {
        let now = counter(&cluster, 1, "ae_rounds_completed");
        if now >= rounds + 15 {
            Ok(())
        } else {
            Err(format!("{rounds} -> {now}"))
        }
    });
    for (i, before) in (1..3).zip(dropped) {
        assert_eq!(
            counter(&cluster, i, "tombstones_dropped"),
            before,
            "node {} collected a tombstone node 1 cannot have seen",
            i + 1
        );
    }

    cluster.heal();
    let (values, took) = cluster.wait_identical(&keys, WAIT);
    eprintln!("heal to identical values on every node: {took:?}");
    assert_eq!(values, ["none", "set:b", "none", "none"]);
    for i in 0..3 {
        wait_for(
            "the tombstones to be collected after the heal",
            WAIT,
            || {
                let n = counter(&cluster, i, "tombstones_dropped");
                if n >= 3 {
                    Ok(())
                } else {
                    Err(format!("node {}: {n}", i + 1))
                }
            },
        );
    }
    let (values, _) = cluster.wait_identical(&keys, WAIT);
    assert_eq!(
        values,
        ["none", "set:b", "none", "none"],
        "nothing came back"
    );
}
