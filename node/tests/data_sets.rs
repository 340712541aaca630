//! OR sets over TCP: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD in RESP2 and RESP3
//! (sets come back as `~` sets), WRONGTYPE, arity, `limits.value_bytes_max`, and the redis
//! crate and redis-py.

mod common;

use std::collections::HashSet;

use common::data::{arity, bulks, err, ints, ok, resp3, set_of, sorted, wrongtype};
use common::{Node, Reply};

#[test]
fn set_commands_in_resp2() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SMEMBERS", "s"]), Reply::Array(vec![]));
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SISMEMBER", "s", "a"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SMISMEMBER", "s", "a", "b"]), ints(&[0, 0]));
    assert_eq!(c.cmd(&["SREM", "s", "a"]), Reply::Int(0));
    assert_eq!(c.cmd(&["EXISTS", "s"]), Reply::Int(0));
    // Duplicates within one SADD count once.
    assert_eq!(c.cmd(&["SADD", "s", "a", "b", "c", "a"]), Reply::Int(3));
    assert_eq!(c.cmd(&["SADD", "s", "c", "d"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "s", "a"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(4));
    assert_eq!(
        sorted(c.cmd(&["SMEMBERS", "s"])),
        bulks(&["a", "b", "c", "d"])
    );
    assert_eq!(c.cmd(&["SISMEMBER", "s", "a"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SISMEMBER", "s", "x"]), Reply::Int(0));
    assert_eq!(
        c.cmd(&["SMISMEMBER", "s", "a", "x", "d", "a"]),
        ints(&[1, 0, 1, 1])
    );
    assert_eq!(c.cmd(&["SREM", "s", "a", "x", "a"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SREM", "s", "a"]), Reply::Int(0));
    assert_eq!(sorted(c.cmd(&["SMEMBERS", "s"])), bulks(&["b", "c", "d"]));
    // A member removed and added again is back.
    assert_eq!(c.cmd(&["SADD", "s", "a"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(4));
    assert_eq!(c.cmd(&["TYPE", "s"]), Reply::Simple("set".into()));
    // Removing the last member removes the key, as in Redis.
    assert_eq!(c.cmd(&["SREM", "s", "a", "b", "c", "d"]), Reply::Int(4));
    assert_eq!(c.cmd(&["EXISTS", "s"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TYPE", "s"]), Reply::Simple("none".into()));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SMEMBERS", "s"]), Reply::Array(vec![]));
    // Members are binary-safe, and may be empty.
    c.send_cmd(&[b"SADD", b"bin", b"\x00\xff", b"", b"a b"]);
    assert_eq!(c.read(), Reply::Int(3));
    c.send_cmd(&[b"SISMEMBER", b"bin", b"\x00\xff"]);
    assert_eq!(c.read(), Reply::Int(1));
    assert_eq!(c.cmd(&["SISMEMBER", "bin", ""]), Reply::Int(1));
    assert_eq!(
        sorted(c.cmd(&["SMEMBERS", "bin"])),
        Reply::Array(vec![
            Reply::bulk(""),
            Reply::Bulk(b"\x00\xff".to_vec()),
            Reply::bulk("a b"),
        ])
    );
}

#[test]
fn set_commands_in_resp3() {
    let node = Node::start();
    let mut c = resp3(&node);
    // An empty or missing set is an empty RESP3 set, as Redis 7 answers.
    assert_eq!(c.cmd(&["SMEMBERS", "s"]), Reply::Set(vec![]));
    assert_eq!(c.cmd(&["SADD", "s", "x", "y", "z"]), Reply::Int(3));
    assert_eq!(sorted(c.cmd(&["SMEMBERS", "s"])), set_of(&["x", "y", "z"]));
    assert_eq!(c.cmd(&["SISMEMBER", "s", "y"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SMISMEMBER", "s", "y", "q"]), ints(&[1, 0]));
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(3));
    assert_eq!(c.cmd(&["SREM", "s", "y"]), Reply::Int(1));
    assert_eq!(sorted(c.cmd(&["SMEMBERS", "s"])), set_of(&["x", "z"]));
    assert_eq!(c.cmd(&["SET", "str", "v"]), ok());
    assert_eq!(c.cmd(&["SMEMBERS", "str"]), wrongtype());
    // The bytes on the wire: `~`, and `*` in RESP2.
    c.send(b"SMEMBERS s\r\n").unwrap();
    assert_eq!(c.read_bytes(4), b"~2\r\n");
    assert_eq!(
        sorted(Reply::Set(vec![c.read(), c.read()])),
        set_of(&["x", "z"])
    );
    let mut c2 = node.raw();
    c2.send(b"SMEMBERS s\r\n").unwrap();
    assert_eq!(c2.read_bytes(4), b"*2\r\n");
}

#[test]
fn wrongtype_and_arity() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SET", "reg", "v"]), ok());
    assert_eq!(c.cmd(&["INCR", "cnt"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "gc", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["TEXT.INSERT", "txt", "0", "t"]), Reply::Int(1));
    for key in ["reg", "cnt", "gc", "txt"] {
        assert_eq!(c.cmd(&["SADD", key, "m"]), wrongtype(), "SADD {key}");
        assert_eq!(c.cmd(&["SREM", key, "m"]), wrongtype(), "SREM {key}");
        assert_eq!(c.cmd(&["SMEMBERS", key]), wrongtype(), "SMEMBERS {key}");
        assert_eq!(c.cmd(&["SISMEMBER", key, "m"]), wrongtype(), "{key}");
        assert_eq!(c.cmd(&["SMISMEMBER", key, "m"]), wrongtype(), "{key}");
        assert_eq!(c.cmd(&["SCARD", key]), wrongtype(), "SCARD {key}");
    }
    assert_eq!(
        c.cmd(&["MGET", "reg", "cnt", "gc", "txt"]),
        bulks(&["v", "1", "1", "t"])
    );
    assert_eq!(c.cmd(&["SADD", "s", "m"]), Reply::Int(1));
    for (args, name) in [
        (&["SADD"][..], "sadd"),
        (&["SADD", "s"], "sadd"),
        (&["SREM", "s"], "srem"),
        (&["SMEMBERS"], "smembers"),
        (&["SMEMBERS", "s", "x"], "smembers"),
        (&["SISMEMBER", "s"], "sismember"),
        (&["SISMEMBER", "s", "a", "b"], "sismember"),
        (&["SMISMEMBER", "s"], "smismember"),
        (&["SCARD"], "scard"),
        (&["SCARD", "s", "x"], "scard"),
    ] {
        assert_eq!(c.cmd(args), arity(name), "{args:?}");
    }
    assert_eq!(c.cmd(&["SMEMBERS", "s"]), bulks(&["m"]));
    // Not implemented: unknown, not silently accepted.
    assert_eq!(
        c.cmd(&["SPOP", "s"]),
        err("ERR unknown command 'SPOP', with args beginning with: 's' ")
    );
    assert_eq!(c.cmd(&["SMEMBERS", "s"]), bulks(&["m"]));
}

#[test]
fn value_bytes_max_bounds_the_whole_set() {
    let node = Node::builder()
        .set("limits", "value_bytes_max", 1024)
        .start();
    let mut c = node.raw();
    let member = |i: usize| format!("{i:0100}");
    let too_big = err("ERR the set would exceed limits.value_bytes_max (1024 bytes)");
    // One member over the limit on its own.
    assert_eq!(
        c.cmd(&["SADD", "s", &"m".repeat(1025)]),
        err("ERR value of 1025 bytes exceeds limits.value_bytes_max (1024 bytes)")
    );
    assert_eq!(c.cmd(&["EXISTS", "s"]), Reply::Int(0));
    // Ten members of 100 bytes: 1000 bytes.
    for i in 0..10 {
        assert_eq!(c.cmd(&["SADD", "s", &member(i)]), Reply::Int(1));
    }
    let before = sorted(c.cmd(&["SMEMBERS", "s"]));
    // 25 more bytes would make 1025.
    assert_eq!(c.cmd(&["SADD", "s", &"y".repeat(25)]), too_big);
    // A refused SADD adds none of its members, not even those that would fit.
    assert_eq!(c.cmd(&["SADD", "s", "a", &"y".repeat(30)]), too_big);
    assert_eq!(c.cmd(&["SISMEMBER", "s", "a"]), Reply::Int(0));
    assert_eq!(sorted(c.cmd(&["SMEMBERS", "s"])), before);
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(10));
    // Members already present take no more room; up to the limit exactly is fine.
    assert_eq!(c.cmd(&["SADD", "s", &member(3), &member(4)]), Reply::Int(0));
    assert_eq!(c.cmd(&["SADD", "s", &"z".repeat(24)]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "s", "!"]), too_big);
    // Room freed by SREM can be used again.
    assert_eq!(c.cmd(&["SREM", "s", &member(0)]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "s", &"w".repeat(100)]), Reply::Int(1));
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(11));
    // SET replaces the set, and is bounded by its own size only.
    assert_eq!(c.cmd(&["SET", "s", &"v".repeat(1024)]), ok());
    assert_eq!(c.cmd(&["STRLEN", "s"]), Reply::Int(1024));
}

#[test]
fn redis_crate_sets_resp2_and_resp3() {
    use redis::Commands;
    let node = Node::start();
    for (url, mut con) in node.redis_connections() {
        let added: usize = con.sadd("s", &["a", "b", "c"]).unwrap();
        assert_eq!(added, 3, "{url}");
        let members: HashSet<String> = con.smembers("s").unwrap();
        assert_eq!(members, HashSet::from(["a".into(), "b".into(), "c".into()]));
        let is: bool = con.sismember("s", "b").unwrap();
        assert!(is);
        let are: Vec<bool> = con.smismember("s", &["a", "x"]).unwrap();
        assert_eq!(are, [true, false]);
        let n: usize = con.scard("s").unwrap();
        assert_eq!(n, 3);
        let removed: usize = con.srem("s", &["a", "x"]).unwrap();
        assert_eq!(removed, 1);
        let raw: redis::Value = redis::cmd("SMEMBERS").arg("s").query(&mut con).unwrap();
        let items = match raw {
            redis::Value::Set(items) if url.contains("resp3") => items,
            redis::Value::Array(items) if !url.contains("resp3") => items,
            other => panic!("SMEMBERS over {url}: {other:?}"),
        };
        let mut items: Vec<redis::Value> = items;
        items.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(
            items,
            [
                redis::Value::BulkString(b"b".to_vec()),
                redis::Value::BulkString(b"c".to_vec())
            ]
        );
        let _: () = con.set("r", "v").unwrap();
        let e = con.sadd::<_, _, usize>("r", "m").unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
        let deleted: usize = con.del(&["s", "r"]).unwrap();
        assert_eq!(deleted, 2);
    }
}

#[test]
fn redis_py_sets() {
    let node = Node::start();
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print(r.sadd("s", "a", "b", "c", "a"))
print(sorted(r.smembers("s")))
print(bool(r.sismember("s", "a")), bool(r.sismember("s", "x")))
print([bool(x) for x in r.smismember("s", ["a", "x", "c"])])
print(r.scard("s"))
print(r.srem("s", "a", "x"))
print(sorted(r.smembers("s")))
print(r.smembers("missing"))
r.set("r", "v")
try:
    r.sadd("r", "m")
except redis.ResponseError as e:
    print("error:", e)
print(r.srem("s", "b", "c"), r.exists("s"))
"#;
    let Some(out) = common::data::run_python(&node, script) else {
        return;
    };
    assert_eq!(
        out,
        "3\n[b'a', b'b', b'c']\nTrue False\n[True, False, True]\n3\n1\n[b'b', b'c']\nset()\n\
         error: WRONGTYPE Operation against a key holding the wrong kind of value\n2 0\n"
    );
}
