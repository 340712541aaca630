//! Three real nodes over QUIC: concurrent writes of every type on different nodes converge to
//! identical values everywhere, and to the values the CRDT semantics promise.

mod common;

use std::collections::BTreeSet;
use std::thread;

use common::Reply;
use common::cluster::{Cluster, WAIT, set_members, wait_for};

/// Writes per node in the concurrent phase.
const ROUNDS: usize = 20;

/// A character no other (node, round) uses: node 0 writes Latin, node 1 Greek, node 2 Cyrillic.
fn glyph(node: usize, round: usize) -> char {
    let base = [0x100u32, 0x3b1, 0x410][node];
    char::from_u32(base + round as u32).expect("a valid char")
}

/// What one writer did in the concurrent phase, for the checks.
struct Done {
    node: usize,
    increments: i64,
    last_register: String,
    /// The node's own text key as it should read.
    mine: String,
}

fn writer(cluster: &Cluster, node: usize) -> Done {
    let mut r = cluster.raw(node);
    let mut increments = 0;
    let mut last_register = String::new();
    let mut mine: Vec<char> = Vec::new();
    let own = format!("mine{node}");
    for j in 0..ROUNDS {
        let by = (node as i64 + 1) * j as i64 + 1;
        r.cmd(&["INCRBY", "ctr", &by.to_string()]).int();
        r.cmd(&["DECRBY", "ctr", "2"]).int();
        increments += by - 2;
        let member = format!("m{node}-{j}");
        assert_eq!(r.cmd(&["SADD", "set", &member]).int(), 1);
        if j % 3 == 0 {
            // Removes only the add this node made (and saw): it stays removed everywhere.
            assert_eq!(r.cmd(&["SREM", "set", &member]).int(), 1);
        }
        r.cmd(&["SADD", "set", &format!("shared-{j}")]).int();
        last_register = format!("v{node}-{j}");
        r.cmd(&["SET", "reg", &last_register]).assert_ok();
        let c = glyph(node, j).to_string();
        r.cmd(&["TEXT.INSERT", "doc", "0", &c]).int();
        // The node's own text: appended at the end, the oldest character deleted every 4th
        // round; nobody else writes it, so its value is exact.
        r.cmd(&["TEXT.INSERT", &own, &mine.len().to_string(), &c])
            .int();
        mine.push(glyph(node, j));
        if j % 4 == 3 {
            assert_eq!(r.cmd(&["TEXT.DELETE", &own, "0", "1"]).int(), 1);
            mine.remove(0);
        }
        match (node, j) {
            // DEL of a key nobody else writes: gone everywhere.
            (2, 5) => assert_eq!(r.cmd(&["DEL", "gone"]).int(), 1),
            // DEL racing a concurrent increment on another node.
            (0, 7) => {
                r.cmd(&["DEL", "contested"]).int();
            }
            (1, 7) => {
                r.cmd(&["INCRBY", "contested", "7"]).int();
            }
            // SET over a set: the register replaces it everywhere.
            (1, 9) => r.cmd(&["SET", "overwritten", "reg"]).assert_ok(),
            _ => {}
        }
    }
    Done {
        node,
        increments,
        last_register,
        mine: mine.into_iter().collect(),
    }
}

#[test]
fn concurrent_writes_of_every_type_converge() {
    let cluster = Cluster::start(3);
    // What exists before the concurrent phase, replicated everywhere first.
    let mut r1 = cluster.raw(0);
    assert_eq!(r1.cmd(&["SADD", "gone", "g1", "g2"]).int(), 2);
    assert_eq!(r1.cmd(&["SADD", "overwritten", "x"]).int(), 1);
    for i in 0..3 {
        cluster.raw(i).cmd(&["INCRBY", "contested", "5"]).int();
    }
    let base: Vec<String> = ["gone", "overwritten", "contested"]
        .map(String::from)
        .to_vec();
    let (values, _) = cluster.wait_identical(&base, WAIT);
    assert_eq!(values, ["set:g1\ng2", "set:x", "string:15"]);

    let done: Vec<Done> = thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let cluster = &cluster;
                s.spawn(move || writer(cluster, i))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut keys: Vec<String> = [
        "ctr",
        "set",
        "reg",
        "doc",
        "gone",
        "contested",
        "overwritten",
    ]
    .map(String::from)
    .to_vec();
    keys.extend((0..3).map(|i| format!("mine{i}")));
    let (values, took) = cluster.wait_identical(&keys, WAIT);
    eprintln!("converged {took:?} after the last write returned");
    let value = |key: &str| values[keys.iter().position(|k| k == key).unwrap()].clone();

    let total: i64 = done.iter().map(|d| d.increments).sum::<i64>();
    assert_eq!(
        value("ctr"),
        format!("string:{total}"),
        "every increment counts"
    );

    let mut expected = BTreeSet::new();
    for node in 0..3 {
        for j in 0..ROUNDS {
            if j % 3 != 0 {
                expected.insert(format!("m{node}-{j}"));
            }
            expected.insert(format!("shared-{j}"));
        }
    }
    let got: BTreeSet<String> = set_members(&value("set")).into_iter().collect();
    assert_eq!(got, expected, "set members");

    let finals: Vec<String> = done
        .iter()
        .map(|d| format!("string:{}", d.last_register))
        .collect();
    assert!(
        finals.contains(&value("reg")),
        "register {} is not one of the last writes {finals:?}",
        value("reg")
    );

    // Every character inserted is there, once; each node's own characters keep the order that
    // node saw (each insert at the front: newest first).
    let doc = value("doc");
    let text = doc.strip_prefix("text:").expect("doc is text");
    assert_eq!(text.chars().count(), 3 * ROUNDS, "{text}");
    for d in &done {
        let own: String = text
            .chars()
            .filter(|&c| (0..ROUNDS).any(|j| glyph(d.node, j) == c))
            .collect();
        let want: String = (0..ROUNDS).rev().map(|j| glyph(d.node, j)).collect();
        assert_eq!(own, want, "node {}'s inserts in doc", d.node + 1);
        assert_eq!(
            value(&format!("mine{}", d.node)),
            format!("text:{}", d.mine)
        );
    }

    assert_eq!(value("gone"), "none");
    assert!(
        ["none", "string:7"].contains(&value("contested").as_str()),
        "DEL removes what it saw; a concurrent INCRBY it did not see survives: {}",
        value("contested")
    );
    assert_eq!(value("overwritten"), "string:reg");

    // Not only the visible values: the whole CRDT state is the same on every node.
    cluster.wait_same_states(&keys);
}

/// Deleted keys become tombstones that are garbage-collected once every member holds them;
/// keys written again afterwards (fresh dots, text ids and counter epochs) converge to the new
/// values only, with nothing of the old ones coming back.
#[test]
fn keys_recreated_after_tombstone_gc_converge() {
    let cluster = Cluster::builder(3).quick_tombstone_gc().start();
    let keys: Vec<String> = ["r", "c", "s", "t"].map(String::from).to_vec();
    for i in 0..3 {
        let mut r = cluster.raw(i);
        r.cmd(&["SET", "r", &format!("old{i}")]).assert_ok();
        r.cmd(&["INCRBY", "c", "10"]).int();
        r.cmd(&["SADD", "s", &format!("old{i}")]).int();
        r.cmd(&["TEXT.INSERT", "t", "0", &format!("old{i}")]).int();
    }
    let (values, _) = cluster.wait_identical(&keys, WAIT);
    assert_eq!(values[1], "string:30");
    let mut r2 = cluster.raw(1);
    assert_eq!(r2.cmd(&["DEL", "r", "c", "s", "t"]).int(), 4);
    let (values, _) = cluster.wait_identical(&keys, WAIT);
    assert!(values.iter().all(|v| v == "none"), "{values:?}");
    for i in 0..3 {
        wait_for("tombstones to be collected", WAIT, || {
            let info = cluster.info(i);
            let dropped: u64 = info["tombstones_dropped"].parse().unwrap();
            if dropped >= 4 {
                Ok(())
            } else {
                Err(format!("node {}: {info:#?}", i + 1))
            }
        });
    }
    // The key is gone from memory everywhere, not just hidden.
    for i in 0..3 {
        assert_eq!(cluster.raw(i).cmd(&["CRDT.INFO", "c"]), Reply::Null);
    }
    let mut r1 = cluster.raw(0);
    let mut r3 = cluster.raw(2);
    r3.cmd(&["INCRBY", "c", "3"]).int();
    r1.cmd(&["INCRBY", "c", "4"]).int();
    r1.cmd(&["SADD", "s", "new"]).int();
    r2.cmd(&["TEXT.INSERT", "t", "0", "new"]).int();
    r3.cmd(&["SET", "r", "new"]).assert_ok();
    let (values, _) = cluster.wait_identical(&keys, WAIT);
    assert_eq!(
        values,
        ["string:new", "string:7", "set:new", "text:new"],
        "only the writes after the delete survive"
    );
}
