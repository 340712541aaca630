//! Commands on keys of any type over TCP: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN (MATCH, COUNT,
//! TYPE) and DBSIZE, in RESP2 and RESP3, with Redis' errors for bad arguments.

mod common;

use common::data::{arity, bulks, err, not_integer, ok, resp3, sorted, syntax};
use common::{Node, Raw, Reply};

/// One key of each type: a register, a PN counter, a G counter, a set and a text.
fn one_of_each(c: &mut Raw) {
    assert_eq!(c.cmd(&["SET", "reg", "v"]), ok());
    assert_eq!(c.cmd(&["INCRBY", "cnt", "-3"]), Reply::Int(-3));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "gc", "4"]), Reply::Int(4));
    assert_eq!(c.cmd(&["SADD", "set", "m"]), Reply::Int(1));
    assert_eq!(c.cmd(&["TEXT.INSERT", "txt", "0", "t"]), Reply::Int(1));
}

#[test]
fn type_exists_dbsize_keys_and_del() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(c.cmd(&["KEYS", "*"]), Reply::Array(vec![]));
    one_of_each(&mut c);
    for (key, kind) in [
        ("reg", "string"),
        ("cnt", "string"),
        ("gc", "string"),
        ("set", "set"),
        ("txt", "text"),
        ("missing", "none"),
    ] {
        assert_eq!(c.cmd(&["TYPE", key]), Reply::Simple(kind.into()), "{key}");
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(5));
    // A key named twice counts twice, as in Redis.
    assert_eq!(
        c.cmd(&["EXISTS", "reg", "reg", "missing", "set", "txt", "cnt", "gc"]),
        Reply::Int(6)
    );
    assert_eq!(c.cmd(&["EXISTS", "missing"]), Reply::Int(0));

    assert_eq!(
        sorted(c.cmd(&["KEYS", "*"])),
        bulks(&["cnt", "gc", "reg", "set", "txt"])
    );
    assert_eq!(sorted(c.cmd(&["KEYS", "?e?"])), bulks(&["reg", "set"]));
    assert_eq!(sorted(c.cmd(&["KEYS", "[cg]*"])), bulks(&["cnt", "gc"]));
    assert_eq!(sorted(c.cmd(&["KEYS", "[^cg]*t"])), bulks(&["set", "txt"]));
    assert_eq!(c.cmd(&["KEYS", "nothing*"]), Reply::Array(vec![]));
    assert_eq!(c.cmd(&["SET", "a*b", "1"]), ok());
    assert_eq!(c.cmd(&["SET", "axb", "1"]), ok());
    assert_eq!(c.cmd(&["KEYS", "a\\*b"]), bulks(&["a*b"]));
    assert_eq!(sorted(c.cmd(&["KEYS", "a*b"])), bulks(&["a*b", "axb"]));
    assert_eq!(c.cmd(&["DEL", "a*b", "axb"]), Reply::Int(2));

    // DEL counts the keys that existed; every type can be deleted.
    assert_eq!(
        c.cmd(&["DEL", "reg", "missing", "set", "reg"]),
        Reply::Int(2)
    );
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(3));
    assert_eq!(c.cmd(&["EXISTS", "reg", "set"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TYPE", "reg"]), Reply::Simple("none".into()));
    assert_eq!(c.cmd(&["GET", "reg"]), Reply::Null);
    assert_eq!(c.cmd(&["SMEMBERS", "set"]), Reply::Array(vec![]));
    assert_eq!(c.cmd(&["DEL", "reg"]), Reply::Int(0));
    assert_eq!(
        c.cmd(&["UNLINK", "cnt", "txt", "gc", "nope"]),
        Reply::Int(3)
    );
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(c.cmd(&["KEYS", "*"]), Reply::Array(vec![]));

    // Deleted keys start afresh when written again, with any type.
    assert_eq!(c.cmd(&["INCR", "cnt"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "set", "other"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SMEMBERS", "set"]), bulks(&["other"]));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "reg", "0", "now text"]),
        Reply::Int(8)
    );
    assert_eq!(c.cmd(&["TYPE", "reg"]), Reply::Simple("text".into()));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "txt", "2"]), Reply::Int(2));
    assert_eq!(c.cmd(&["GET", "txt"]), Reply::bulk("2"));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(4));
    // Binary key names.
    c.send_cmd(&[b"SET", b"k\x00\xff", b"v"]);
    assert_eq!(c.read(), ok());
    c.send_cmd(&[b"EXISTS", b"k\x00\xff"]);
    assert_eq!(c.read(), Reply::Int(1));
    c.send_cmd(&[b"DEL", b"k\x00\xff"]);
    assert_eq!(c.read(), Reply::Int(1));
}

#[test]
fn keys_commands_in_resp3() {
    let node = Node::start();
    let mut c = resp3(&node);
    one_of_each(&mut c);
    assert_eq!(c.cmd(&["TYPE", "set"]), Reply::Simple("set".into()));
    assert_eq!(c.cmd(&["TYPE", "nope"]), Reply::Simple("none".into()));
    assert_eq!(c.cmd(&["EXISTS", "set", "nope"]), Reply::Int(1));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(5));
    assert_eq!(
        sorted(c.cmd(&["KEYS", "*"])),
        bulks(&["cnt", "gc", "reg", "set", "txt"])
    );
    match c.cmd(&["SCAN", "0", "COUNT", "1000"]) {
        Reply::Array(parts) => {
            assert_eq!(parts.len(), 2);
            assert_eq!(parts[0], Reply::bulk("0"));
            assert_eq!(
                sorted(parts[1].clone()),
                bulks(&["cnt", "gc", "reg", "set", "txt"])
            );
        }
        other => panic!("SCAN answered {other:?}"),
    }
    assert_eq!(c.cmd(&["DEL", "set", "reg"]), Reply::Int(2));
    assert_eq!(c.cmd(&["UNLINK", "set"]), Reply::Int(0));
    assert_eq!(c.cmd(&["GET", "reg"]), Reply::Null);
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(3));
}

/// Every key SCAN returns from cursor 0 until it answers cursor 0, and the number of calls.
fn scan_all(c: &mut Raw, options: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_owned();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(options);
        let reply = c.cmd(&args);
        calls += 1;
        let Reply::Array(parts) = reply else {
            panic!("SCAN {options:?} answered {reply:?}")
        };
        let [Reply::Bulk(next), Reply::Array(found)] = parts.as_slice() else {
            panic!("SCAN {options:?} answered {parts:?}")
        };
        keys.extend(found.iter().map(Reply::text));
        cursor = String::from_utf8(next.clone()).unwrap();
        assert!(cursor.parse::<u64>().is_ok(), "cursor {cursor:?}");
        if cursor == "0" {
            break;
        }
        assert!(calls < 100_000, "SCAN never ends");
    }
    keys.sort();
    (keys, calls)
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

#[test]
fn scan_visits_every_key_once_with_match_count_and_type() {
    let node = Node::start();
    let mut c = node.raw();
    let (regs, cnts, sets, txts) = (
        names("reg", 40),
        names("cnt", 30),
        names("set", 20),
        names("txt", 10),
    );
    for k in &regs {
        assert_eq!(c.cmd(&["SET", k, "x"]), ok());
    }
    for k in &cnts {
        assert_eq!(c.cmd(&["INCR", k]), Reply::Int(1));
    }
    for k in &sets {
        assert_eq!(c.cmd(&["SADD", k, "m"]), Reply::Int(1));
    }
    for k in &txts {
        assert_eq!(c.cmd(&["TEXT.INSERT", k, "0", "t"]), Reply::Int(1));
    }
    // A deleted key is not returned.
    assert_eq!(c.cmd(&["SET", "deleted", "x"]), ok());
    assert_eq!(c.cmd(&["DEL", "deleted"]), Reply::Int(1));
    let sorted_union = |groups: &[&Vec<String>]| {
        let mut all: Vec<String> = groups.iter().flat_map(|g| g.iter().cloned()).collect();
        all.sort();
        all
    };
    let all = sorted_union(&[&regs, &cnts, &sets, &txts]);

    let (keys, calls) = scan_all(&mut c, &[]);
    assert_eq!(keys, all, "default COUNT");
    assert!(calls > 1, "100 keys in one call of default COUNT 10");
    let (keys, calls_small) = scan_all(&mut c, &["COUNT", "3"]);
    assert_eq!(keys, all, "COUNT 3");
    let (keys, calls_big) = scan_all(&mut c, &["COUNT", "1000"]);
    assert_eq!(keys, all, "COUNT 1000");
    assert!(
        calls_small > calls_big,
        "COUNT 3 took {calls_small} calls, COUNT 1000 {calls_big}"
    );
    assert_eq!(calls_big, 1);

    assert_eq!(
        scan_all(&mut c, &["MATCH", "reg:*"]).0,
        sorted_union(&[&regs])
    );
    let mut teens: Vec<String> = (10..20)
        .flat_map(|i| ["cnt", "reg", "set"].map(|p| format!("{p}:{i}")))
        .collect();
    teens.sort();
    assert_eq!(scan_all(&mut c, &["MATCH", "*:1?", "COUNT", "5"]).0, teens);
    assert_eq!(scan_all(&mut c, &["TYPE", "set"]).0, sorted_union(&[&sets]));
    assert_eq!(scan_all(&mut c, &["TYPE", "SET"]).0, sorted_union(&[&sets]));
    assert_eq!(
        scan_all(&mut c, &["TYPE", "text"]).0,
        sorted_union(&[&txts])
    );
    assert_eq!(
        scan_all(&mut c, &["TYPE", "string"]).0,
        sorted_union(&[&regs, &cnts])
    );
    assert_eq!(
        scan_all(&mut c, &["MATCH", "cnt:*", "TYPE", "string", "COUNT", "7"]).0,
        sorted_union(&[&cnts])
    );
    assert_eq!(
        scan_all(&mut c, &["MATCH", "reg:*", "TYPE", "set"]).0,
        Vec::<String>::new()
    );
    assert_eq!(scan_all(&mut c, &["TYPE", "hash"]).0, Vec::<String>::new());
    // Options in any order and case; the last of a repeated option wins.
    assert_eq!(
        scan_all(
            &mut c,
            &["type", "text", "match", "nope*", "MATCH", "txt:*"]
        )
        .0,
        sorted_union(&[&txts])
    );
}

#[test]
fn bad_arguments_get_redis_errors() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    for (args, name) in [
        (&["DEL"][..], "del"),
        (&["UNLINK"], "unlink"),
        (&["EXISTS"], "exists"),
        (&["TYPE"], "type"),
        (&["TYPE", "a", "b"], "type"),
        (&["KEYS"], "keys"),
        (&["KEYS", "*", "x"], "keys"),
        (&["SCAN"], "scan"),
        (&["DBSIZE", "x"], "dbsize"),
    ] {
        assert_eq!(c.cmd(args), arity(name), "{args:?}");
    }
    // Command names are case-insensitive; the error names the command in lowercase.
    assert_eq!(c.cmd(&["dEl"]), arity("del"));
    for cursor in ["x", "-1", "1.5", "", "18446744073709551616"] {
        assert_eq!(
            c.cmd(&["SCAN", cursor]),
            err("ERR invalid cursor"),
            "cursor {cursor:?}"
        );
    }
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "0"]), syntax());
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "-5"]), syntax());
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "x"]), not_integer());
    assert_eq!(c.cmd(&["SCAN", "0", "MATCH"]), syntax());
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT"]), syntax());
    assert_eq!(c.cmd(&["SCAN", "0", "NOPE", "x"]), syntax());
    // Nothing was changed by the refused commands.
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v"));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(1));
    // Commands crdtkv does not have are unknown, not silently accepted.
    for name in ["FLUSHDB", "FLUSHALL", "EXPIRE", "RENAME"] {
        match c.cmd(&[name, "k"]) {
            Reply::Error(e) => assert_eq!(
                e,
                format!("ERR unknown command '{name}', with args beginning with: 'k' ")
            ),
            other => panic!("{name} answered {other:?}"),
        }
    }
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v"));
}

#[test]
fn redis_crate_keys_resp2_and_resp3() {
    use redis::{Commands, ScanOptions};
    use std::collections::HashSet;
    let node = Node::start();
    for (url, mut con) in node.redis_connections() {
        one_of_each(&mut node.raw());
        let n: usize = con.exists(&["reg", "set", "nope"]).unwrap();
        assert_eq!(n, 2, "{url}");
        let kind: String = redis::cmd("TYPE").arg("txt").query(&mut con).unwrap();
        assert_eq!(kind, "text");
        let mut keys: Vec<String> = con.keys("*").unwrap();
        keys.sort();
        assert_eq!(keys, ["cnt", "gc", "reg", "set", "txt"]);
        let scanned: HashSet<String> = con
            .scan_options::<String>(ScanOptions::default().with_pattern("[rs]*").with_count(2))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(scanned, HashSet::from(["reg".into(), "set".into()]));
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(size, 5);
        let deleted: usize = con
            .del(&["reg", "cnt", "gc", "set", "txt", "nope"])
            .unwrap();
        assert_eq!(deleted, 5);
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(size, 0);
    }
}

#[test]
fn redis_py_keys() {
    let node = Node::start();
    one_of_each(&mut node.raw());
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), decode_responses=True)
print(r.exists("reg", "set", "nope"))
print([r.type(k) for k in ("reg", "cnt", "gc", "set", "txt", "nope")])
print(sorted(r.keys("*")))
print(sorted(r.scan_iter(match="*t", count=2)))
print(sorted(r.scan_iter(_type="string")))
print(r.dbsize())
print(r.delete("reg", "cnt", "nope"), r.unlink("set"))
print(r.dbsize())
"#;
    let Some(out) = common::data::run_python(&node, script) else {
        return;
    };
    assert_eq!(
        out,
        "2\n['string', 'string', 'string', 'set', 'text', 'none']\n\
         ['cnt', 'gc', 'reg', 'set', 'txt']\n['cnt', 'set', 'txt']\n['cnt', 'gc', 'reg']\n5\n2 1\n2\n"
    );
}
