//! Registers read and written as Redis strings over TCP: GET, SET (NX, XX, GET, and the refused
//! expiry options), SETNX, GETSET, MGET, MSET, STRLEN, in RESP2 and RESP3; WRONGTYPE, arity,
//! commands crdtkv does not have, and `limits.value_bytes_max`.

mod common;

use common::data::{arity, err, ok, resp3, syntax, wrongtype};
use common::{Node, Raw, Reply};

const NO_EXPIRY: &str = "ERR crdtkv keys do not expire: EX, PX, EXAT and PXAT are not supported";

#[test]
fn set_and_get_with_every_implemented_option() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["GET", "k"]), Reply::Null);
    assert_eq!(c.cmd(&["SET", "k", "v1"]), ok());
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v1"));
    // NX: only when missing; a refused SET answers nil and changes nothing.
    assert_eq!(c.cmd(&["SET", "k", "v2", "NX"]), Reply::Null);
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v1"));
    assert_eq!(c.cmd(&["SET", "n", "v", "nx"]), ok());
    assert_eq!(c.cmd(&["GET", "n"]), Reply::bulk("v"));
    // XX: only when present.
    assert_eq!(c.cmd(&["SET", "x", "v", "XX"]), Reply::Null);
    assert_eq!(c.cmd(&["EXISTS", "x"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SET", "k", "v3", "XX"]), ok());
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v3"));
    // GET: the previous value (nil if none), whether or not the condition held.
    assert_eq!(c.cmd(&["SET", "k", "v4", "GET"]), Reply::bulk("v3"));
    assert_eq!(c.cmd(&["SET", "g", "v", "GET"]), Reply::Null);
    assert_eq!(c.cmd(&["GET", "g"]), Reply::bulk("v"));
    assert_eq!(c.cmd(&["SET", "k", "v5", "NX", "GET"]), Reply::bulk("v4"));
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v4"));
    assert_eq!(c.cmd(&["SET", "k", "v5", "XX", "GET"]), Reply::bulk("v4"));
    assert_eq!(c.cmd(&["SET", "y", "v", "XX", "GET"]), Reply::Null);
    assert_eq!(c.cmd(&["EXISTS", "y"]), Reply::Int(0));
    // KEEPTTL is accepted: there is no TTL to keep.
    assert_eq!(c.cmd(&["SET", "k", "v6", "KEEPTTL"]), ok());
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v6"));
    // Expiry options are refused with a clear error, never ignored.
    for option in [
        &["EX", "10"][..],
        &["PX", "100"],
        &["EXAT", "99999999999"],
        &["PXAT", "99999999999999"],
        &["ex", "10"],
        &["NX", "EX", "10"],
    ] {
        let mut args = vec!["SET", "k", "expiring"];
        args.extend_from_slice(option);
        assert_eq!(c.cmd(&args), err(NO_EXPIRY), "{option:?}");
    }
    assert_eq!(c.cmd(&["SET", "k", "v7", "NX", "XX"]), syntax());
    assert_eq!(c.cmd(&["SET", "k", "v7", "XX", "NX"]), syntax());
    assert_eq!(c.cmd(&["SET", "k", "v7", "BOGUS"]), syntax());
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v6"));
    assert_eq!(c.cmd(&["EXISTS", "expiring"]), Reply::Int(0));
    // Values are binary-safe, and may be empty.
    c.send_cmd(&[b"SET", b"bin", b"\x00\r\n\xff"]);
    assert_eq!(c.read(), ok());
    assert_eq!(
        c.cmd(&["GET", "bin"]),
        Reply::Bulk(b"\x00\r\n\xff".to_vec())
    );
    assert_eq!(c.cmd(&["STRLEN", "bin"]), Reply::Int(4));
    assert_eq!(c.cmd(&["SET", "empty", ""]), ok());
    assert_eq!(c.cmd(&["GET", "empty"]), Reply::bulk(""));
    assert_eq!(c.cmd(&["EXISTS", "empty"]), Reply::Int(1));
    assert_eq!(c.cmd(&["STRLEN", "empty"]), Reply::Int(0));
}

#[test]
fn setnx_getset_mget_mset_strlen() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SETNX", "a", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SETNX", "a", "2"]), Reply::Int(0));
    assert_eq!(c.cmd(&["GET", "a"]), Reply::bulk("1"));
    assert_eq!(c.cmd(&["GETSET", "a", "3"]), Reply::bulk("1"));
    assert_eq!(c.cmd(&["GETSET", "fresh", "x"]), Reply::Null);
    assert_eq!(c.cmd(&["GET", "fresh"]), Reply::bulk("x"));
    assert_eq!(c.cmd(&["MSET", "a", "A", "b", "B", "c", "C"]), ok());
    // A key named twice in MSET gets the last value.
    assert_eq!(c.cmd(&["MSET", "d", "first", "d", "last"]), ok());
    assert_eq!(
        c.cmd(&["MGET", "a", "nope", "b", "c", "d", "a"]),
        Reply::Array(vec![
            Reply::bulk("A"),
            Reply::Null,
            Reply::bulk("B"),
            Reply::bulk("C"),
            Reply::bulk("last"),
            Reply::bulk("A"),
        ])
    );
    assert_eq!(c.cmd(&["STRLEN", "d"]), Reply::Int(4));
    assert_eq!(c.cmd(&["STRLEN", "nope"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SET", "utf8", "héllo"]), ok());
    assert_eq!(
        c.cmd(&["STRLEN", "utf8"]),
        Reply::Int(6),
        "bytes, not characters"
    );

    // Counters and texts read as strings; a set reads as nil in MGET, WRONGTYPE elsewhere.
    assert_eq!(c.cmd(&["INCRBY", "cnt", "-42"]), Reply::Int(-42));
    assert_eq!(c.cmd(&["TEXT.INSERT", "txt", "0", "wörd"]), Reply::Int(4));
    assert_eq!(c.cmd(&["SADD", "set", "m"]), Reply::Int(1));
    assert_eq!(
        c.cmd(&["MGET", "cnt", "txt", "set", "a"]),
        Reply::Array(vec![
            Reply::bulk("-42"),
            Reply::bulk("wörd"),
            Reply::Null,
            Reply::bulk("A"),
        ])
    );
    assert_eq!(c.cmd(&["GET", "cnt"]), Reply::bulk("-42"));
    assert_eq!(c.cmd(&["STRLEN", "cnt"]), Reply::Int(3));
    assert_eq!(c.cmd(&["STRLEN", "txt"]), Reply::Int(5));
    assert_eq!(c.cmd(&["GETSET", "cnt", "reg"]), Reply::bulk("-42"));
    assert_eq!(c.cmd(&["GET", "cnt"]), Reply::bulk("reg"));
    assert_eq!(c.cmd(&["SET", "txt", "v", "GET"]), Reply::bulk("wörd"));
    assert_eq!(c.cmd(&["TYPE", "txt"]), Reply::Simple("string".into()));
    assert_eq!(c.cmd(&["TEXT.LEN", "txt"]), wrongtype());
}

#[test]
fn wrongtype_and_set_replacing_any_type() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SADD", "s", "a", "b"]), Reply::Int(2));
    assert_eq!(c.cmd(&["GET", "s"]), wrongtype());
    assert_eq!(c.cmd(&["STRLEN", "s"]), wrongtype());
    assert_eq!(c.cmd(&["GETSET", "s", "v"]), wrongtype());
    assert_eq!(c.cmd(&["SET", "s", "v", "GET"]), wrongtype());
    // SETNX and SET NX/XX do not read the value: they only look at existence.
    assert_eq!(c.cmd(&["SETNX", "s", "v"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SET", "s", "v", "NX"]), Reply::Null);
    // None of the refused writes changed the set.
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(2));
    assert_eq!(c.cmd(&["TYPE", "s"]), Reply::Simple("set".into()));
    // SET replaces a key of any type, as in Redis.
    assert_eq!(c.cmd(&["SET", "s", "now a string", "XX"]), ok());
    assert_eq!(c.cmd(&["GET", "s"]), Reply::bulk("now a string"));
    assert_eq!(c.cmd(&["SMEMBERS", "s"]), wrongtype());
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", "abc"]), Reply::Int(3));
    assert_eq!(c.cmd(&["MSET", "t", "1", "u", "2"]), ok());
    assert_eq!(c.cmd(&["TYPE", "t"]), Reply::Simple("string".into()));
    assert_eq!(c.cmd(&["INCR", "t"]), Reply::Int(2));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "5"]), Reply::Int(5));
    assert_eq!(c.cmd(&["SET", "g", "x"]), ok());
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "1"]), wrongtype());
    assert_eq!(c.cmd(&["GET", "g"]), Reply::bulk("x"));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(4));
}

#[test]
fn string_replies_in_resp3() {
    let node = Node::start();
    let mut c = resp3(&node);
    assert_eq!(c.cmd(&["GET", "k"]), Reply::Null);
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(c.cmd(&["SET", "k", "w", "NX"]), Reply::Null);
    assert_eq!(c.cmd(&["SET", "k", "w", "GET"]), Reply::bulk("v"));
    assert_eq!(c.cmd(&["SET", "m", "w", "GET"]), Reply::Null);
    assert_eq!(c.cmd(&["SETNX", "k", "x"]), Reply::Int(0));
    assert_eq!(c.cmd(&["GETSET", "k", "x"]), Reply::bulk("w"));
    assert_eq!(c.cmd(&["GETSET", "new", "x"]), Reply::Null);
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(
        c.cmd(&["MGET", "a", "none", "b"]),
        Reply::Array(vec![Reply::bulk("1"), Reply::Null, Reply::bulk("2")])
    );
    assert_eq!(c.cmd(&["STRLEN", "k"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "s", "m"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GET", "s"]), wrongtype());
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "1"]), err(NO_EXPIRY));
    // The null of RESP3 is `_`, not `$-1`: check the bytes themselves.
    let mut raw = resp3(&node);
    raw.send(b"GET nothing\r\n").unwrap();
    assert_eq!(raw.read_bytes(3), b"_\r\n");
    let mut raw2 = node.raw();
    raw2.send(b"GET nothing\r\n").unwrap();
    assert_eq!(raw2.read_bytes(5), b"$-1\r\n");
}

#[test]
fn arity_errors_and_missing_commands() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    for (args, name) in [
        (&["GET"][..], "get"),
        (&["GET", "k", "x"], "get"),
        (&["SET"], "set"),
        (&["SET", "k"], "set"),
        (&["SETNX", "k"], "setnx"),
        (&["SETNX", "k", "v", "x"], "setnx"),
        (&["GETSET", "k"], "getset"),
        (&["GETSET", "k", "v", "x"], "getset"),
        (&["MGET"], "mget"),
        (&["MSET"], "mset"),
        (&["MSET", "k"], "mset"),
        (&["MSET", "k", "v", "k2"], "mset"),
        (&["STRLEN"], "strlen"),
        (&["STRLEN", "k", "x"], "strlen"),
    ] {
        assert_eq!(c.cmd(args), arity(name), "{args:?}");
    }
    assert_eq!(c.cmd(&["EXISTS", "k2"]), Reply::Int(0));
    // Not implemented: unknown commands with Redis' error, nothing changed.
    for (args, beginning) in [
        (&["APPEND", "k", "x"][..], "'k' 'x' "),
        (&["GETDEL", "k"], "'k' "),
        (&["GETEX", "k"], "'k' "),
        (&["SETEX", "k", "10", "v"], "'k' '10' 'v' "),
        (&["INCRBYFLOAT", "k", "1.5"], "'k' '1.5' "),
    ] {
        assert_eq!(
            c.cmd(args),
            err(&format!(
                "ERR unknown command '{}', with args beginning with: {beginning}",
                args[0]
            )),
        );
    }
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v"));
}

fn big(n: usize) -> String {
    "x".repeat(n)
}

fn too_big(n: usize) -> Reply {
    err(&format!(
        "ERR value of {n} bytes exceeds limits.value_bytes_max (1024 bytes)"
    ))
}

fn small_node() -> (Node, Raw) {
    let node = Node::builder()
        .set("limits", "value_bytes_max", 1024)
        .start();
    let c = node.raw();
    (node, c)
}

#[test]
fn value_bytes_max_refuses_big_values_and_keeps_the_old_one() {
    let (_node, mut c) = small_node();
    assert_eq!(c.cmd(&["SET", "k", "old"]), ok());
    assert_eq!(c.cmd(&["SET", "k", &big(1025)]), too_big(1025));
    assert_eq!(c.cmd(&["SET", "k", &big(5000), "GET"]), too_big(5000));
    assert_eq!(c.cmd(&["GETSET", "k", &big(1025)]), too_big(1025));
    assert_eq!(c.cmd(&["SETNX", "new", &big(1025)]), too_big(1025));
    // MSET is all or nothing: one value too big and no key is written.
    assert_eq!(
        c.cmd(&["MSET", "m1", "a", "m2", &big(1025), "k", "b"]),
        too_big(1025)
    );
    assert_eq!(
        c.cmd(&["MGET", "k", "new", "m1", "m2"]),
        Reply::Array(vec![
            Reply::bulk("old"),
            Reply::Null,
            Reply::Null,
            Reply::Null
        ])
    );
    // Exactly at the limit is fine.
    assert_eq!(c.cmd(&["SET", "k", &big(1024)]), ok());
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk(&big(1024)));
    assert_eq!(c.cmd(&["MSET", "m1", &big(1024), "m2", "y"]), ok());
    assert_eq!(c.cmd(&["STRLEN", "m1"]), Reply::Int(1024));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(3));
}

#[test]
fn redis_crate_strings_resp2_and_resp3() {
    use redis::Commands;
    let node = Node::start();
    for (url, mut con) in node.redis_connections() {
        let _: () = con.set("k", "v").unwrap();
        let v: String = con.get("k").unwrap();
        assert_eq!(v, "v", "{url}");
        let missing: Option<String> = con.get("missing").unwrap();
        assert_eq!(missing, None);
        let set: bool = con.set_nx("k", "w").unwrap();
        assert!(!set);
        let old: Option<String> = con.getset("k", "w").unwrap();
        assert_eq!(old.as_deref(), Some("v"));
        let _: () = con.mset(&[("a", "1"), ("b", "2")]).unwrap();
        let all: Vec<Option<String>> = con.mget(&["a", "missing", "b", "k"]).unwrap();
        assert_eq!(
            all,
            [Some("1".into()), None, Some("2".into()), Some("w".into())]
        );
        let len: usize = con.strlen("k").unwrap();
        assert_eq!(len, 1);
        let nx: Option<String> = redis::cmd("SET")
            .arg("k")
            .arg("z")
            .arg("NX")
            .query(&mut con)
            .unwrap();
        assert_eq!(nx, None);
        let prev: Option<String> = redis::cmd("SET")
            .arg("k")
            .arg("z")
            .arg("GET")
            .query(&mut con)
            .unwrap();
        assert_eq!(prev.as_deref(), Some("w"));
        let e = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .arg("EX")
            .arg(10)
            .query::<()>(&mut con)
            .unwrap_err();
        assert_eq!(e.code(), Some("ERR"), "{e}");
        assert_eq!(e.detail(), NO_EXPIRY.strip_prefix("ERR "), "{e}");
        let _: () = con.sadd("s", "m").unwrap();
        let e = con.get::<_, Option<String>>("s").unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
        assert_eq!(
            e.detail(),
            Some("Operation against a key holding the wrong kind of value")
        );
        let deleted: usize = con.del(&["k", "a", "b", "s"]).unwrap();
        assert_eq!(deleted, 4);
    }
}

#[test]
fn redis_py_strings() {
    let node = Node::start();
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print(r.set("k", "v"))
print(r.get("k"))
print(r.get("missing"))
print(r.set("k", "w", nx=True))
print(r.set("k", "w", xx=True))
print(r.set("k", "x", get=True))
print(r.setnx("k", "y"))
print(r.getset("k", b"\x00\xff"))
print(r.get("k"))
print(r.mset({"a": "1", "b": "2"}))
print(r.mget("a", "missing", "b"))
print(r.strlen("a"))
try:
    r.set("k", "v", ex=10)
except redis.ResponseError as e:
    print("error:", e)
r.sadd("s", "m")
try:
    r.get("s")
except redis.ResponseError as e:
    print("error:", e)
print(r.delete("k", "a", "b", "s"))
print(r.dbsize())
"#;
    let Some(out) = common::data::run_python(&node, script) else {
        return;
    };
    assert_eq!(
        out,
        "True\nb'v'\nNone\nNone\nTrue\nb'w'\nFalse\nb'x'\nb'\\x00\\xff'\nTrue\n\
         [b'1', None, b'2']\n1\n\
         error: crdtkv keys do not expire: EX, PX, EXAT and PXAT are not supported\n\
         error: WRONGTYPE Operation against a key holding the wrong kind of value\n4\n0\n"
    );
}
