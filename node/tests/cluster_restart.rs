//! Crashes and data loss in a real cluster: a node killed with SIGKILL catches up with what was
//! written meanwhile, refuses writes until it has, and a node whose data directory was wiped
//! gets every key back (a big set included) without losing anything it had acknowledged.

mod common;

use std::collections::BTreeSet;

use common::Reply;
use common::cluster::{Cluster, WAIT, set_members, wait_for};

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

/// Waits until `node`'s peers see it down (they run degraded meanwhile).
fn wait_seen_down(cluster: &Cluster, observers: &[usize], node: usize) {
    for &i in observers {
        wait_for(
            &format!("node {} to see node {} down", i + 1, node + 1),
            WAIT,
            || {
                let members = cluster.members(i);
                let info = cluster.info(i);
                let down = members
                    .iter()
                    .any(|m| m.id == cluster.id(node) && m.state == "down");
                if down && info["replication_mode"] == "degraded" {
                    Ok(())
                } else {
                    Err(format!("{members:#?}\n{info:#?}"))
                }
            },
        );
    }
}

#[test]
fn killed_node_catches_up_after_restart() {
    let mut cluster = Cluster::start(3);
    let names = ["ctr", "set", "reg", "doc", "doomed"];
    for i in 0..3 {
        let mut r = cluster.raw(i);
        r.cmd(&["INCRBY", "ctr", "10"]).int();
        r.cmd(&["SADD", "set", &format!("before-{i}")]).int();
        r.cmd(&["TEXT.INSERT", "doc", "0", &format!("[{i}]")]).int();
        // The next node inserts after seeing this one: a known order.
        cluster.wait_identical(&keys(&["doc"]), WAIT);
    }
    cluster.raw(2).cmd(&["SET", "reg", "before"]).assert_ok();
    cluster.raw(2).cmd(&["SADD", "doomed", "x"]).int();
    cluster.wait_identical(&keys(&names), WAIT);

    cluster.kill9(2);
    // Written while node 3 is down, on both survivors.
    for round in 0..20 {
        let i = round % 2;
        let mut r = cluster.raw(i);
        r.cmd(&["INCRBY", "ctr", "3"]).int();
        r.cmd(&["SADD", "set", &format!("during-{round}")]).int();
        r.cmd(&["TEXT.INSERT", "doc", "0", "+"]).int();
    }
    cluster.raw(0).cmd(&["SREM", "set", "before-2"]).int();
    cluster.raw(1).cmd(&["DEL", "doomed"]).int();
    cluster.raw(1).cmd(&["SET", "reg", "during"]).assert_ok();
    wait_seen_down(&cluster, &[0, 1], 2);
    // More writes once the survivors know.
    cluster.raw(0).cmd(&["INCRBY", "ctr", "100"]).int();

    cluster.restart(2);
    cluster.wait_writable(2);
    let info = cluster.info(2);
    assert_eq!(info["caught_up"], "1", "{info:#?}");
    assert_eq!(info["writes_accepted"], "1", "{info:#?}");
    let (values, took) = cluster.wait_identical(&keys(&names), WAIT);
    eprintln!("restarted node identical {took:?} after it accepted writes");
    assert_eq!(values[0], format!("string:{}", 30 + 20 * 3 + 100));
    let want: BTreeSet<String> = ["before-0", "before-1"]
        .into_iter()
        .map(String::from)
        .chain((0..20).map(|r| format!("during-{r}")))
        .collect();
    let got: BTreeSet<String> = set_members(&values[1]).into_iter().collect();
    assert_eq!(got, want);
    assert_eq!(values[2], "string:during");
    assert_eq!(values[3], format!("text:{}[2][1][0]", "+".repeat(20)));
    assert_eq!(values[4], "none");

    // The restarted node's own writes reach the others, and add to what it wrote before.
    cluster.raw(2).cmd(&["INCRBY", "ctr", "1"]).int();
    cluster.raw(2).cmd(&["SADD", "set", "after-2"]).int();
    let (values, _) = cluster.wait_identical(&keys(&names), WAIT);
    assert_eq!(values[0], format!("string:{}", 30 + 60 + 100 + 1));
    assert!(set_members(&values[1]).contains(&"after-2".to_owned()));
    cluster.wait_all_alive();
}

/// The start gate, made observable: a node restarted on its data while its peers still cut it
/// off cannot catch up, so it serves reads but refuses writes with `-LOADING`; once the peers
/// let it in, it catches up and accepts them.
#[test]
fn restarted_node_refuses_writes_until_caught_up() {
    let mut cluster = Cluster::start(3);
    let mut r1 = cluster.raw(0);
    r1.cmd(&["INCRBY", "ctr", "5"]).int();
    cluster.raw(2).cmd(&["INCRBY", "ctr", "7"]).int();
    cluster.wait_identical(&keys(&["ctr"]), WAIT);

    cluster.kill9(2);
    cluster.isolate(2);
    r1.cmd(&["INCRBY", "ctr", "100"]).int();
    cluster.restart(2);

    let mut r3 = cluster.raw(2);
    assert_eq!(
        r3.cmd(&["GET", "ctr"]),
        Reply::bulk("12"),
        "reads are served from the local data"
    );
    match r3.cmd(&["INCRBY", "ctr", "1"]) {
        Reply::Error(e) => assert!(e.starts_with("LOADING "), "{e}"),
        other => panic!("a write before catching up was accepted: {other:?}"),
    }
    let info = cluster.info(2);
    assert_eq!(info["caught_up"], "0", "{info:#?}");
    assert_eq!(info["writes_accepted"], "0", "{info:#?}");
    // Still refused a little later: the gate waits for the peers, not for a timer.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(matches!(r3.cmd(&["SADD", "s", "x"]), Reply::Error(e) if e.starts_with("LOADING ")));

    cluster.end_isolation(2);
    cluster.wait_writable(2);
    assert_eq!(r3.cmd(&["INCRBY", "ctr", "1"]).int(), 113);
    let (values, _) = cluster.wait_identical(&keys(&["ctr"]), WAIT);
    assert_eq!(values, ["string:113"]);
}

/// Members of the big set.
const BIG: usize = 3_000;
/// Small keys besides.
const MANY: usize = 10_000;

#[test]
fn wiped_node_catches_up_fully() {
    let mut cluster = Cluster::start(3);
    let names = ["big", "ctr", "reg", "doc", "small"];
    // A set of a few thousand members, written in batches on every node.
    let members: Vec<String> = (0..BIG).map(|i| format!("member-{i:05}")).collect();
    for (n, chunk) in members.chunks(500).enumerate() {
        let mut r = cluster.raw(n % 3);
        let mut args = vec!["SADD", "big"];
        args.extend(chunk.iter().map(String::as_str));
        assert_eq!(r.cmd(&args).int(), chunk.len() as i64);
    }
    for i in 0..3 {
        let mut r = cluster.raw(i);
        r.cmd(&["INCRBY", "ctr", &format!("{}", 10 * (i + 1))])
            .int();
        r.cmd(&["TEXT.INSERT", "doc", "0", &format!("<{i}>")]).int();
        r.cmd(&["SADD", "small", &format!("from-{i}")]).int();
    }
    cluster.raw(1).cmd(&["SET", "reg", "v"]).assert_ok();
    // A value larger than one anti-entropy message's byte budget (1 MiB), sent alone.
    let large = "L".repeat(3 << 20);
    cluster.raw(2).cmd(&["SET", "large", &large]).assert_ok();
    // Many keys: several anti-entropy pages.
    for batch in 0..(MANY / 1000) {
        let pairs: Vec<String> = (batch * 1000..(batch + 1) * 1000)
            .flat_map(|k| [format!("k{k:05}"), format!("v{k}")])
            .collect();
        let mut args = vec!["MSET"];
        args.extend(pairs.iter().map(String::as_str));
        cluster.raw(batch % 3).cmd(&args).assert_ok();
    }
    let (before, _) = cluster.wait_identical(&keys(&names), WAIT);
    assert_eq!(set_members(&before[0]).len(), BIG);
    wait_for("every node to hold every key", WAIT, || {
        let sizes: Vec<Reply> = (0..3).map(|i| cluster.raw(i).cmd(&["DBSIZE"])).collect();
        if sizes.iter().all(|s| *s == Reply::Int(MANY as i64 + 6)) {
            Ok(())
        } else {
            Err(format!("{sizes:?}"))
        }
    });

    let wiped = std::time::Instant::now();
    cluster.wipe_and_restart(1);
    cluster.wait_writable(1);
    let (after, took) = cluster.wait_identical(&keys(&names), WAIT);
    eprintln!(
        "wiped node caught up {:?} after its restart began (identical {took:?} after it \
         accepted writes)",
        wiped.elapsed()
    );
    assert_eq!(after, before, "the wiped node got every key back");
    let mut r2 = cluster.raw(1);
    assert_eq!(r2.cmd(&["SCARD", "big"]), Reply::Int(BIG as i64));
    assert_eq!(r2.cmd(&["DBSIZE"]), Reply::Int(MANY as i64 + 6));
    assert_eq!(r2.cmd(&["STRLEN", "large"]), Reply::Int(large.len() as i64));
    assert_eq!(r2.cmd(&["GET", "k04321"]), Reply::bulk("v4321"));

    // Its writes after catching up add to what it wrote before the wipe.
    cluster.raw(1).cmd(&["INCRBY", "ctr", "1"]).int();
    cluster.raw(1).cmd(&["SADD", "big", "member-new"]).int();
    cluster.raw(1).cmd(&["SREM", "small", "from-1"]).int();
    let (values, _) = cluster.wait_identical(&keys(&names), WAIT);
    assert_eq!(values[1], "string:61");
    assert_eq!(set_members(&values[0]).len(), BIG + 1);
    assert_eq!(values[4], "set:from-0\nfrom-2");
}

/// A wiped node that comes back while it cannot reach anyone must not take writes: a fresh
/// counter epoch of its own would replace, on every replica, the increments it acknowledged
/// before the wipe. It refuses them with `-LOADING` until it has caught up, and then nothing
/// acknowledged is lost.
#[test]
fn wiped_isolated_node_refuses_writes_and_loses_nothing() {
    let mut cluster = Cluster::start(3);
    let names = ["ctr", "set"];
    for i in 0..3 {
        cluster
            .raw(i)
            .cmd(&["INCRBY", "ctr", &(10 * (i + 1)).to_string()])
            .int();
        cluster.raw(i).cmd(&["SADD", "set", &format!("m{i}")]).int();
    }
    cluster.wait_identical(&keys(&names), WAIT);

    cluster.isolate(1);
    cluster.wipe_and_restart(1);
    let mut r2 = cluster.raw(1);
    for write in [
        &["INCRBY", "ctr", "1"][..],
        &["SADD", "set", "m-isolated"],
        &["SET", "reg", "x"],
    ] {
        match r2.cmd(write) {
            Reply::Error(e) => assert!(e.starts_with("LOADING "), "{write:?}: {e}"),
            other => panic!("{write:?} accepted by a wiped node that has not caught up: {other:?}"),
        }
    }
    assert_eq!(r2.cmd(&["GET", "ctr"]), Reply::Null, "nothing loaded yet");

    cluster.end_isolation(1);
    cluster.wait_writable(1);
    assert_eq!(r2.cmd(&["INCRBY", "ctr", "1"]).int(), 61);
    let (values, _) = cluster.wait_identical(&keys(&names), WAIT);
    assert_eq!(
        values,
        ["string:61", "set:m0\nm1\nm2"],
        "every acknowledged increment counts once, node 2's from before the wipe included"
    );
}

/// When the peers stay unreachable, the gate opens after `startup_sync_timeout_ms` anyway
/// (availability): the node then takes writes although it has not caught up, and they merge
/// once it is back in touch.
#[test]
fn gate_opens_after_the_startup_sync_timeout() {
    let mut cluster = Cluster::builder(3)
        .set("cluster", "startup_sync_timeout_ms", 1_500)
        .start();
    cluster.raw(2).cmd(&["INCRBY", "ctr", "5"]).int();
    cluster.wait_identical(&keys(&["ctr"]), WAIT);
    cluster.kill9(2);
    cluster.isolate(2);
    cluster.raw(0).cmd(&["INCRBY", "ctr", "10"]).int();
    cluster.restart(2);
    wait_for("the gate to open on its timeout", WAIT, || {
        let info = cluster.info(2);
        if info["writes_accepted"] == "1" {
            Ok(info)
        } else {
            Err(format!("{info:#?}"))
        }
    });
    let info = cluster.info(2);
    assert_eq!(info["caught_up"], "0", "it could not catch up: {info:#?}");
    assert_eq!(cluster.raw(2).cmd(&["INCRBY", "ctr", "1"]).int(), 6);
    cluster.end_isolation(2);
    let (values, _) = cluster.wait_identical(&keys(&["ctr"]), WAIT);
    assert_eq!(values, ["string:16"]);
    cluster.wait_writable(2);
}
