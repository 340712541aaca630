//! Counters over TCP: INCR, INCRBY, DECR, DECRBY (PN counter) and GCOUNTER.INCRBY (G counter),
//! read with GET; Redis' exact errors for bad and overflowing increments, the register to
//! counter conversion, WRONGTYPE, arity, RESP3, and the redis crate and redis-py.

mod common;

use common::data::{arity, err, not_integer, ok, resp3, wrongtype};
use common::{Node, Raw, Reply};

const OVERFLOW: &str = "ERR increment or decrement would overflow";
const NEGATIVE_G: &str = "ERR grow-only counter increment must be non-negative";

fn counter_basics(c: &mut Raw) {
    assert_eq!(c.cmd(&["INCR", "n"]), Reply::Int(1));
    assert_eq!(c.cmd(&["INCR", "n"]), Reply::Int(2));
    assert_eq!(c.cmd(&["INCRBY", "n", "40"]), Reply::Int(42));
    assert_eq!(c.cmd(&["DECR", "n"]), Reply::Int(41));
    assert_eq!(c.cmd(&["DECRBY", "n", "50"]), Reply::Int(-9));
    assert_eq!(c.cmd(&["INCRBY", "n", "-1"]), Reply::Int(-10));
    assert_eq!(c.cmd(&["DECRBY", "n", "-3"]), Reply::Int(-7));
    assert_eq!(c.cmd(&["INCRBY", "n", "0"]), Reply::Int(-7));
    assert_eq!(c.cmd(&["GET", "n"]), Reply::bulk("-7"));
    assert_eq!(c.cmd(&["STRLEN", "n"]), Reply::Int(2));
    assert_eq!(c.cmd(&["TYPE", "n"]), Reply::Simple("string".into()));
    assert_eq!(c.cmd(&["DECR", "fresh"]), Reply::Int(-1));
    assert_eq!(c.cmd(&["DECRBY", "fresh2", "5"]), Reply::Int(-5));
    assert_eq!(c.cmd(&["INCRBY", "fresh3", "5"]), Reply::Int(5));
    assert_eq!(
        c.cmd(&["MGET", "n", "fresh", "fresh2", "fresh3"]),
        Reply::Array(vec![
            Reply::bulk("-7"),
            Reply::bulk("-1"),
            Reply::bulk("-5"),
            Reply::bulk("5"),
        ])
    );
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "5"]), Reply::Int(5));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "0"]), Reply::Int(5));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "10"]), Reply::Int(15));
    assert_eq!(c.cmd(&["GET", "g"]), Reply::bulk("15"));
    assert_eq!(c.cmd(&["TYPE", "g"]), Reply::Simple("string".into()));
}

#[test]
fn pn_and_g_counters_in_resp2() {
    let node = Node::start();
    counter_basics(&mut node.raw());
}

#[test]
fn pn_and_g_counters_in_resp3() {
    let node = Node::start();
    counter_basics(&mut resp3(&node));
    let mut c = resp3(&node);
    assert_eq!(c.cmd(&["INCRBY", "n", "x"]), not_integer());
    assert_eq!(c.cmd(&["GET", "absent"]), Reply::Null);
}

#[test]
fn bad_increments_get_redis_errors_and_change_nothing() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["INCRBY", "n", "10"]), Reply::Int(10));
    for bad in [
        "x",
        "1.5",
        "",
        " 1",
        "1 ",
        "+1",
        "01",
        "-0",
        "0x10",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
    ] {
        assert_eq!(
            c.cmd(&["INCRBY", "n", bad]),
            not_integer(),
            "INCRBY {bad:?}"
        );
        assert_eq!(
            c.cmd(&["DECRBY", "n", bad]),
            not_integer(),
            "DECRBY {bad:?}"
        );
        assert_eq!(
            c.cmd(&["GCOUNTER.INCRBY", "g", bad]),
            not_integer(),
            "GCOUNTER.INCRBY {bad:?}"
        );
    }
    assert_eq!(c.cmd(&["GET", "n"]), Reply::bulk("10"));
    assert_eq!(c.cmd(&["EXISTS", "g"]), Reply::Int(0));

    // Overflow in both directions, with Redis' texts; the counter keeps its value.
    assert_eq!(
        c.cmd(&["INCRBY", "n", "9223372036854775807"]),
        err(OVERFLOW)
    );
    assert_eq!(c.cmd(&["GET", "n"]), Reply::bulk("10"));
    assert_eq!(
        c.cmd(&["INCRBY", "max", "9223372036854775807"]),
        Reply::Int(i64::MAX)
    );
    assert_eq!(c.cmd(&["INCR", "max"]), err(OVERFLOW));
    assert_eq!(c.cmd(&["DECRBY", "max", "-1"]), err(OVERFLOW));
    assert_eq!(c.cmd(&["GET", "max"]), Reply::bulk("9223372036854775807"));
    assert_eq!(
        c.cmd(&["INCRBY", "min", "-9223372036854775808"]),
        Reply::Int(i64::MIN)
    );
    assert_eq!(c.cmd(&["DECR", "min"]), err(OVERFLOW));
    assert_eq!(c.cmd(&["INCRBY", "min", "-1"]), err(OVERFLOW));
    assert_eq!(c.cmd(&["GET", "min"]), Reply::bulk("-9223372036854775808"));
    // Redis 7 refuses to negate i64::MIN with its own text.
    assert_eq!(
        c.cmd(&["DECRBY", "n", "-9223372036854775808"]),
        err("ERR decrement would overflow")
    );
    assert_eq!(c.cmd(&["GET", "n"]), Reply::bulk("10"));
    // A counter can come back from the extremes.
    assert_eq!(
        c.cmd(&["DECRBY", "max", "9223372036854775807"]),
        Reply::Int(0)
    );
    assert_eq!(
        c.cmd(&["INCRBY", "min", "9223372036854775807"]),
        Reply::Int(-1)
    );

    // G counters refuse negative increments and overflow.
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "-1"]), err(NEGATIVE_G));
    assert_eq!(c.cmd(&["EXISTS", "g"]), Reply::Int(0));
    assert_eq!(
        c.cmd(&["GCOUNTER.INCRBY", "g", "9223372036854775807"]),
        Reply::Int(i64::MAX)
    );
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "1"]), err(OVERFLOW));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "-5"]), err(NEGATIVE_G));
    assert_eq!(c.cmd(&["GET", "g"]), Reply::bulk("9223372036854775807"));
}

#[test]
fn registers_holding_integers_become_counters() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SET", "r", "10"]), ok());
    assert_eq!(c.cmd(&["INCR", "r"]), Reply::Int(11));
    assert_eq!(c.cmd(&["INCRBY", "r", "-20"]), Reply::Int(-9));
    assert_eq!(c.cmd(&["GET", "r"]), Reply::bulk("-9"));
    match c.cmd(&["CRDT.INFO", "r"]) {
        Reply::Array(fields) => {
            assert_eq!(
                fields[..4],
                [
                    Reply::bulk("type"),
                    Reply::bulk("string"),
                    Reply::bulk("crdt"),
                    Reply::bulk("pn-counter"),
                ]
            );
        }
        other => panic!("CRDT.INFO answered {other:?}"),
    }
    assert_eq!(c.cmd(&["SET", "neg", "-5"]), ok());
    assert_eq!(c.cmd(&["DECRBY", "neg", "5"]), Reply::Int(-10));
    assert_eq!(c.cmd(&["SET", "big", "9223372036854775807"]), ok());
    assert_eq!(c.cmd(&["INCR", "big"]), err(OVERFLOW));
    assert_eq!(c.cmd(&["GET", "big"]), Reply::bulk("9223372036854775807"));
    assert_eq!(c.cmd(&["DECR", "big"]), Reply::Int(i64::MAX - 1));
    // Anything Redis would not parse as an integer stays a register, untouched.
    for value in [
        "ten",
        "1.0",
        " 1",
        "01",
        "+1",
        "",
        "9223372036854775808",
        "1e3",
    ] {
        assert_eq!(c.cmd(&["SET", "s", value]), ok());
        assert_eq!(c.cmd(&["INCR", "s"]), not_integer(), "INCR of {value:?}");
        assert_eq!(c.cmd(&["DECRBY", "s", "2"]), not_integer(), "{value:?}");
        assert_eq!(c.cmd(&["GET", "s"]), Reply::bulk(value));
    }
    // A G counter does not convert registers.
    assert_eq!(c.cmd(&["SET", "gr", "3"]), ok());
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "gr", "1"]), wrongtype());
    assert_eq!(c.cmd(&["GET", "gr"]), Reply::bulk("3"));
    // SET turns a counter back into a register; DEL then INCR starts from zero.
    assert_eq!(c.cmd(&["SET", "r", "100"]), ok());
    assert_eq!(c.cmd(&["INCR", "r"]), Reply::Int(101));
    assert_eq!(c.cmd(&["DEL", "r"]), Reply::Int(1));
    assert_eq!(c.cmd(&["INCR", "r"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "7"]), Reply::Int(7));
    assert_eq!(c.cmd(&["DEL", "g"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "2"]), Reply::Int(2));
}

#[test]
fn wrongtype_and_arity() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SADD", "set", "m"]), Reply::Int(1));
    assert_eq!(c.cmd(&["TEXT.INSERT", "txt", "0", "12"]), Reply::Int(2));
    assert_eq!(c.cmd(&["INCR", "pn"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "1"]), Reply::Int(1));
    for key in ["set", "txt", "g"] {
        assert_eq!(c.cmd(&["INCR", key]), wrongtype(), "INCR {key}");
        assert_eq!(c.cmd(&["INCRBY", key, "2"]), wrongtype(), "INCRBY {key}");
        assert_eq!(c.cmd(&["DECR", key]), wrongtype(), "DECR {key}");
        assert_eq!(c.cmd(&["DECRBY", key, "2"]), wrongtype(), "DECRBY {key}");
    }
    for key in ["set", "txt", "pn"] {
        assert_eq!(
            c.cmd(&["GCOUNTER.INCRBY", key, "1"]),
            wrongtype(),
            "GCOUNTER.INCRBY {key}"
        );
    }
    // Counters are not sets or texts either.
    assert_eq!(c.cmd(&["SADD", "pn", "m"]), wrongtype());
    assert_eq!(c.cmd(&["TEXT.INSERT", "g", "0", "x"]), wrongtype());
    assert_eq!(c.cmd(&["TEXT.GET", "pn"]), wrongtype());
    assert_eq!(
        c.cmd(&["MGET", "pn", "g", "txt"]),
        Reply::Array(vec![Reply::bulk("1"), Reply::bulk("1"), Reply::bulk("12")])
    );
    for (args, name) in [
        (&["INCR"][..], "incr"),
        (&["INCR", "a", "b"], "incr"),
        (&["DECR"], "decr"),
        (&["DECR", "a", "b"], "decr"),
        (&["INCRBY", "a"], "incrby"),
        (&["INCRBY", "a", "1", "2"], "incrby"),
        (&["DECRBY", "a"], "decrby"),
        (&["DECRBY", "a", "1", "2"], "decrby"),
        (&["GCOUNTER.INCRBY", "a"], "gcounter.incrby"),
        (&["GCOUNTER.INCRBY", "a", "1", "2"], "gcounter.incrby"),
    ] {
        assert_eq!(c.cmd(args), arity(name), "{args:?}");
    }
    assert_eq!(c.cmd(&["EXISTS", "a"]), Reply::Int(0));
    assert_eq!(
        c.cmd(&["MGET", "pn", "g"]),
        Reply::Array(vec![Reply::bulk("1"), Reply::bulk("1")])
    );
}

#[test]
fn redis_crate_counters_resp2_and_resp3() {
    use redis::Commands;
    let node = Node::start();
    for (i, (url, mut con)) in node.redis_connections().into_iter().enumerate() {
        let key = format!("n{i}");
        let n: i64 = con.incr(&key, 5).unwrap();
        assert_eq!(n, 5, "{url}");
        let n: i64 = con.decr(&key, 8).unwrap();
        assert_eq!(n, -3);
        let n: i64 = redis::cmd("INCR").arg(&key).query(&mut con).unwrap();
        assert_eq!(n, -2);
        let s: String = con.get(&key).unwrap();
        assert_eq!(s, "-2");
        let n: i64 = con.get(&key).unwrap();
        assert_eq!(n, -2);
        let g: i64 = redis::cmd("GCOUNTER.INCRBY")
            .arg(format!("g{i}"))
            .arg(9)
            .query(&mut con)
            .unwrap();
        assert_eq!(g, 9);
        let e = redis::cmd("GCOUNTER.INCRBY")
            .arg(format!("g{i}"))
            .arg(-1)
            .query::<i64>(&mut con)
            .unwrap_err();
        assert_eq!(e.detail(), NEGATIVE_G.strip_prefix("ERR "), "{e}");
        let n: i64 = con.incr(&key, i64::MAX).unwrap();
        assert_eq!(n, i64::MAX - 2);
        let e = con.incr::<_, _, i64>(&key, 3).unwrap_err();
        assert_eq!(e.code(), Some("ERR"));
        assert_eq!(e.detail(), OVERFLOW.strip_prefix("ERR "), "{e}");
        let _: () = con.set(&key, "nope").unwrap();
        let e = con.incr::<_, _, i64>(&key, 1).unwrap_err();
        assert_eq!(
            e.detail(),
            Some("value is not an integer or out of range"),
            "{e}"
        );
    }
}

#[test]
fn redis_py_counters() {
    let node = Node::start();
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print(r.incr("n"))
print(r.incrby("n", 41))
print(r.decr("n"))
print(r.decrby("n", 50))
print(r.get("n"))
print(r.execute_command("GCOUNTER.INCRBY", "g", 3))
print(r.get("g"))
r.set("r", "7")
print(r.incr("r"))
print(r.incrby("n", 2**63 - 1))
for args in (("INCRBY", "n", "x"), ("INCRBY", "n", 10), ("GCOUNTER.INCRBY", "g", -1)):
    try:
        r.execute_command(*args)
    except redis.ResponseError as e:
        print("error:", e)
r.sadd("s", "m")
try:
    r.incr("s")
except redis.ResponseError as e:
    print("error:", e)
print(r.get("n"))
"#;
    let Some(out) = common::data::run_python(&node, script) else {
        return;
    };
    assert_eq!(
        out,
        "1\n42\n41\n-9\nb'-9'\n3\nb'3'\n8\n9223372036854775798\n\
         error: value is not an integer or out of range\n\
         error: increment or decrement would overflow\n\
         error: grow-only counter increment must be non-negative\n\
         error: WRONGTYPE Operation against a key holding the wrong kind of value\nb'9223372036854775798'\n"
    );
}
