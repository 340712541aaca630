//! RGA texts over TCP: TEXT.INSERT, TEXT.DELETE, TEXT.GET, TEXT.LEN and GET, with positions in
//! Unicode code points; errors, WRONGTYPE, arity, RESP3, `limits.value_bytes_max`; and
//! CRDT.INFO for every type, in RESP2 and RESP3. Also the redis crate and redis-py.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::data::{arity, bulks, err, not_integer, ok, resp3, syntax, wrongtype};
use common::{Node, Raw, Reply};

fn text_basics(c: &mut Raw) {
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::Null);
    assert_eq!(c.cmd(&["TEXT.LEN", "t"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", "hello"]), Reply::Int(5));
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "5", " wörld"]), Reply::Int(11));
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", "¡"]), Reply::Int(12));
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "6", "👋"]), Reply::Int(13));
    let full = "¡hello👋 wörld";
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::bulk(full));
    assert_eq!(c.cmd(&["GET", "t"]), Reply::bulk(full));
    assert_eq!(c.cmd(&["TEXT.LEN", "t"]), Reply::Int(13));
    assert_eq!(c.cmd(&["STRLEN", "t"]), Reply::Int(full.len() as i64));
    assert_eq!(c.cmd(&["TYPE", "t"]), Reply::Simple("text".into()));
    // Ranges are inclusive, in characters, negative from the end, clamped (like GETRANGE).
    for (start, end, expected) in [
        ("0", "0", "¡"),
        ("1", "5", "hello"),
        ("6", "6", "👋"),
        ("-5", "-1", "wörld"),
        ("0", "-1", full),
        ("0", "1000", full),
        ("-1000", "0", "¡"),
        ("5", "1", ""),
        ("100", "200", ""),
    ] {
        assert_eq!(
            c.cmd(&["TEXT.GET", "t", start, end]),
            Reply::bulk(expected),
            "TEXT.GET t {start} {end}"
        );
    }
    // Deletes count characters and are clamped at the end.
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "0", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "5", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::bulk("hello wörld"));
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "5", "100"]), Reply::Int(6));
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "5", "1"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "2", "0"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::bulk("hello"));
    assert_eq!(
        c.cmd(&["TEXT.DELETE", "t", "6", "1"]),
        err("ERR index 6 is out of range for a text of 5 characters")
    );
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "t", "6", "x"]),
        err("ERR index 6 is out of range for a text of 5 characters")
    );
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "t", "-1", "x"]),
        err("ERR index must be a non-negative integer")
    );
    assert_eq!(
        c.cmd(&["TEXT.DELETE", "t", "-1", "1"]),
        err("ERR index must be a non-negative integer")
    );
    assert_eq!(
        c.cmd(&["TEXT.DELETE", "t", "0", "-1"]),
        err("ERR count must be a non-negative integer")
    );
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "x", "y"]), not_integer());
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "1.0", "y"]), not_integer());
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "0", "x"]), not_integer());
    assert_eq!(c.cmd(&["TEXT.GET", "t", "a", "1"]), not_integer());
    assert_eq!(c.cmd(&["TEXT.GET", "t", "0"]), syntax());
    assert_eq!(c.cmd(&["TEXT.GET", "t", "0", "1", "2"]), syntax());
    c.send_cmd(&[b"TEXT.INSERT", b"t", b"0", b"\xff\xfe"]);
    assert_eq!(c.read(), err("ERR text must be valid UTF-8"));
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::bulk("hello"));
    // An empty insert changes nothing and creates nothing.
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "5", ""]), Reply::Int(5));
    assert_eq!(c.cmd(&["TEXT.INSERT", "e", "0", ""]), Reply::Int(0));
    assert_eq!(c.cmd(&["EXISTS", "e"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TEXT.DELETE", "e", "0", "5"]), Reply::Int(0));
    assert_eq!(c.cmd(&["EXISTS", "e"]), Reply::Int(0));
    // Deleting every character removes the key.
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "0", "5"]), Reply::Int(5));
    assert_eq!(c.cmd(&["EXISTS", "t"]), Reply::Int(0));
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::Null);
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", "again"]), Reply::Int(5));
    assert_eq!(c.cmd(&["GET", "t"]), Reply::bulk("again"));
}

#[test]
fn text_commands_in_resp2() {
    let node = Node::start();
    text_basics(&mut node.raw());
}

#[test]
fn text_commands_in_resp3() {
    let node = Node::start();
    text_basics(&mut resp3(&node));
    let mut c = resp3(&node);
    c.send(b"TEXT.GET missing\r\n").unwrap();
    assert_eq!(c.read_bytes(3), b"_\r\n");
}

#[test]
fn wrongtype_and_arity() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["SET", "reg", "v"]), ok());
    assert_eq!(c.cmd(&["INCR", "cnt"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "gc", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SADD", "set", "m"]), Reply::Int(1));
    for key in ["reg", "cnt", "gc", "set"] {
        assert_eq!(c.cmd(&["TEXT.INSERT", key, "0", "x"]), wrongtype(), "{key}");
        assert_eq!(c.cmd(&["TEXT.DELETE", key, "0", "1"]), wrongtype(), "{key}");
        assert_eq!(c.cmd(&["TEXT.GET", key]), wrongtype(), "{key}");
        assert_eq!(c.cmd(&["TEXT.GET", key, "0", "1"]), wrongtype(), "{key}");
        assert_eq!(c.cmd(&["TEXT.LEN", key]), wrongtype(), "{key}");
    }
    assert_eq!(
        c.cmd(&["MGET", "reg", "cnt", "gc"]),
        bulks(&["v", "1", "1"])
    );
    assert_eq!(c.cmd(&["SMEMBERS", "set"]), bulks(&["m"]));
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", "abc"]), Reply::Int(3));
    assert_eq!(c.cmd(&["INCR", "t"]), wrongtype());
    assert_eq!(c.cmd(&["SADD", "t", "m"]), wrongtype());
    assert_eq!(c.cmd(&["SCARD", "t"]), wrongtype());
    for (args, name) in [
        (&["TEXT.INSERT", "t", "0"][..], "text.insert"),
        (&["TEXT.INSERT", "t", "0", "a", "b"], "text.insert"),
        (&["TEXT.DELETE", "t", "0"], "text.delete"),
        (&["TEXT.DELETE", "t", "0", "1", "2"], "text.delete"),
        (&["TEXT.GET"], "text.get"),
        (&["TEXT.LEN"], "text.len"),
        (&["TEXT.LEN", "t", "x"], "text.len"),
        (&["CRDT.INFO"], "crdt.info"),
        (&["CRDT.INFO", "t", "x"], "crdt.info"),
    ] {
        assert_eq!(c.cmd(args), arity(name), "{args:?}");
    }
    assert_eq!(c.cmd(&["text.get", "t"]), Reply::bulk("abc"));
}

#[test]
fn value_bytes_max_counts_bytes_of_the_whole_text() {
    let node = Node::builder()
        .set("limits", "value_bytes_max", 1024)
        .start();
    let mut c = node.raw();
    let too_big = err("ERR the text would exceed limits.value_bytes_max (1024 bytes)");
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "t", "0", &"x".repeat(1025)]),
        err("ERR value of 1025 bytes exceeds limits.value_bytes_max (1024 bytes)")
    );
    assert_eq!(c.cmd(&["EXISTS", "t"]), Reply::Int(0));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "t", "0", &"x".repeat(1000)]),
        Reply::Int(1000)
    );
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", &"y".repeat(25)]), too_big);
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "t", "0", &"y".repeat(24)]),
        Reply::Int(1024)
    );
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "1024", "z"]), too_big);
    let expected = format!("{}{}", "y".repeat(24), "x".repeat(1000));
    assert_eq!(c.cmd(&["TEXT.GET", "t"]), Reply::bulk(&expected));
    // Multi-byte characters count by their UTF-8 size: 500 'é' are 1000 bytes.
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "u", "0", &"é".repeat(500)]),
        Reply::Int(500)
    );
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "u", "500", &"é".repeat(13)]),
        too_big
    );
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "0", "€"]), Reply::Int(501));
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "0", "€"]), Reply::Int(502));
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "0", "€"]), Reply::Int(503));
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "0", "€"]), Reply::Int(504));
    // 1012 bytes: a 4-byte emoji would make 1016, fine; 10 more ASCII would not fit.
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "504", "👋"]), Reply::Int(505));
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "0", &"a".repeat(9)]), too_big);
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "u", "0", &"a".repeat(8)]),
        Reply::Int(513)
    );
    assert_eq!(c.cmd(&["STRLEN", "u"]), Reply::Int(1024));
    assert_eq!(c.cmd(&["TEXT.INSERT", "u", "0", "a"]), too_big);
    // Deleting makes room again.
    assert_eq!(c.cmd(&["TEXT.DELETE", "u", "0", "8"]), Reply::Int(8));
    assert_eq!(
        c.cmd(&["TEXT.INSERT", "u", "0", "12345678"]),
        Reply::Int(513)
    );
    let expected = format!("12345678{}{}👋", "€".repeat(4), "é".repeat(500));
    assert_eq!(c.cmd(&["GET", "u"]), Reply::bulk(&expected));
}

/// Wall clock now, in milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `reply` with every HLC timestamp `ms.logical@7` (checked to fall in `[from_ms, to_ms]`)
/// replaced by `HLC`, and every causal-context entry `7:counter` by `7:N`: the only parts of a
/// CRDT.INFO reply that depend on the time of the test.
fn normalise(reply: Reply, from_ms: u64, to_ms: u64) -> Reply {
    let norm = |r: Reply| normalise(r, from_ms, to_ms);
    match reply {
        Reply::Bulk(b) => {
            let s = String::from_utf8(b.clone()).unwrap_or_default();
            if let Some((hlc, "7")) = s.split_once('@')
                && let Some((ms, logical)) = hlc.split_once('.')
                && let (Ok(ms), Ok(_)) = (ms.parse::<u64>(), logical.parse::<u64>())
            {
                assert!(
                    (from_ms..=to_ms).contains(&ms),
                    "HLC {s} outside [{from_ms}, {to_ms}]"
                );
                return Reply::bulk("HLC");
            }
            if let Some(counter) = s.strip_prefix("7:")
                && counter.trim_end_matches('*').parse::<u64>().is_ok()
            {
                return Reply::bulk(if counter.ends_with('*') {
                    "7:N*"
                } else {
                    "7:N"
                });
            }
            Reply::Bulk(b)
        }
        Reply::Array(items) => Reply::Array(items.into_iter().map(norm).collect()),
        Reply::Map(pairs) => {
            Reply::Map(pairs.into_iter().map(|(k, v)| (norm(k), norm(v))).collect())
        }
        other => other,
    }
}

/// A CRDT.INFO map as RESP3 (`resp3`) or as RESP2's flat array with booleans as 1 and 0.
fn map(resp3: bool, pairs: Vec<(&str, Reply)>) -> Reply {
    let fix = |v: Reply| match v {
        Reply::Bool(b) if !resp3 => Reply::Int(i64::from(b)),
        other => other,
    };
    if resp3 {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::bulk(k), fix(v)))
                .collect(),
        )
    } else {
        Reply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [Reply::bulk(k), fix(v)])
                .collect(),
        )
    }
}

fn info(resp3: bool, kind: &str, crdt: &str, exists: bool, parts: Vec<Reply>) -> Reply {
    map(
        resp3,
        vec![
            ("type", Reply::bulk(kind)),
            ("crdt", Reply::bulk(crdt)),
            ("exists", Reply::Bool(exists)),
            ("parts", Reply::Array(parts)),
        ],
    )
}

fn part(resp3: bool, crdt: &str, visible: bool, rest: Vec<(&str, Reply)>) -> Reply {
    let mut pairs = vec![
        ("crdt", Reply::bulk(crdt)),
        ("created", Reply::bulk("HLC")),
        ("visible", Reply::Bool(visible)),
    ];
    pairs.extend(rest);
    map(resp3, pairs)
}

fn crdt_info_of_every_type(c: &mut Raw, resp3: bool) {
    let from = now_ms();
    assert_eq!(c.cmd(&["SET", "r", "a"]), ok());
    assert_eq!(c.cmd(&["SET", "r", "b"]), ok());
    assert_eq!(c.cmd(&["INCRBY", "pn", "10"]), Reply::Int(10));
    assert_eq!(c.cmd(&["DECRBY", "pn", "3"]), Reply::Int(7));
    assert_eq!(c.cmd(&["GCOUNTER.INCRBY", "g", "4"]), Reply::Int(4));
    assert_eq!(c.cmd(&["SADD", "s", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(c.cmd(&["SREM", "s", "b"]), Reply::Int(1));
    assert_eq!(c.cmd(&["TEXT.INSERT", "t", "0", "hello"]), Reply::Int(5));
    assert_eq!(c.cmd(&["TEXT.DELETE", "t", "0", "1"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SET", "d", "x"]), ok());
    assert_eq!(c.cmd(&["DEL", "d"]), Reply::Int(1));
    let to = now_ms();
    let mut get = |key: &str| normalise(c.cmd(&["CRDT.INFO", key]), from, to);
    let ctx = || Reply::Array(vec![Reply::bulk("7:N")]);

    assert_eq!(get("missing"), Reply::Null);
    assert_eq!(
        get("r"),
        info(
            resp3,
            "string",
            "lww-register",
            true,
            vec![part(
                resp3,
                "lww-register",
                true,
                vec![
                    ("winner_node", Reply::Int(7)),
                    ("winner_hlc", Reply::bulk("HLC")),
                    ("entries", Reply::Int(1)),
                    ("context", ctx()),
                ]
            )]
        )
    );
    let contributions = |value: i64, p: i64, n: i64| {
        Reply::Array(vec![map(
            resp3,
            vec![
                ("node", Reply::Int(7)),
                ("value", Reply::Int(value)),
                ("increments", Reply::Int(p)),
                ("decrements", Reply::Int(n)),
            ],
        )])
    };
    assert_eq!(
        get("pn"),
        info(
            resp3,
            "string",
            "pn-counter",
            true,
            vec![part(
                resp3,
                "pn-counter",
                true,
                vec![
                    ("value", Reply::Int(7)),
                    ("contributions", contributions(7, 10, 3))
                ]
            )]
        )
    );
    assert_eq!(
        get("g"),
        info(
            resp3,
            "string",
            "g-counter",
            true,
            vec![part(
                resp3,
                "g-counter",
                true,
                vec![
                    ("value", Reply::Int(4)),
                    ("contributions", contributions(4, 4, 0))
                ]
            )]
        )
    );
    assert_eq!(
        get("s"),
        info(
            resp3,
            "set",
            "or-set",
            true,
            vec![part(
                resp3,
                "or-set",
                true,
                vec![("members", Reply::Int(2)), ("context", ctx())]
            )]
        )
    );
    let by_node = if resp3 {
        Reply::Map(vec![(Reply::bulk("7"), Reply::Int(5))])
    } else {
        Reply::Array(vec![Reply::bulk("7"), Reply::Int(5)])
    };
    assert_eq!(
        get("t"),
        info(
            resp3,
            "text",
            "rga-text",
            true,
            vec![part(
                resp3,
                "rga-text",
                true,
                vec![
                    ("length", Reply::Int(4)),
                    ("chars_with_tombstones", Reply::Int(5)),
                    ("runs", Reply::Int(2)),
                    ("chars_by_node", by_node),
                ]
            )]
        )
    );
    // A deleted key remains as a tombstone that CRDT.INFO shows.
    assert_eq!(
        get("d"),
        info(
            resp3,
            "none",
            "tombstone",
            false,
            vec![part(
                resp3,
                "lww-register",
                false,
                vec![
                    ("winner_node", Reply::Null),
                    ("winner_hlc", Reply::Null),
                    ("entries", Reply::Int(0)),
                    ("context", ctx()),
                ]
            )]
        )
    );
}

#[test]
fn crdt_info_in_resp2() {
    let node = Node::builder().set("node", "node_id", 7).start();
    crdt_info_of_every_type(&mut node.raw(), false);
}

#[test]
fn crdt_info_in_resp3() {
    let node = Node::builder().set("node", "node_id", 7).start();
    crdt_info_of_every_type(&mut resp3(&node), true);
}

#[test]
fn redis_crate_text_resp2_and_resp3() {
    use redis::Commands;
    let node = Node::start();
    for (url, mut con) in node.redis_connections() {
        let len: i64 = redis::cmd("TEXT.INSERT")
            .arg("t")
            .arg(0)
            .arg("héllo")
            .query(&mut con)
            .unwrap();
        assert_eq!(len, 5, "{url}");
        let deleted: i64 = redis::cmd("TEXT.DELETE")
            .arg("t")
            .arg(1)
            .arg(1)
            .query(&mut con)
            .unwrap();
        assert_eq!(deleted, 1);
        let text: String = redis::cmd("TEXT.GET").arg("t").query(&mut con).unwrap();
        assert_eq!(text, "hllo");
        let part: String = redis::cmd("TEXT.GET")
            .arg("t")
            .arg(1)
            .arg(-2)
            .query(&mut con)
            .unwrap();
        assert_eq!(part, "ll");
        let n: i64 = redis::cmd("TEXT.LEN").arg("t").query(&mut con).unwrap();
        assert_eq!(n, 4);
        let text: String = con.get("t").unwrap();
        assert_eq!(text, "hllo");
        let missing: Option<String> = redis::cmd("TEXT.GET").arg("m").query(&mut con).unwrap();
        assert_eq!(missing, None);
        let info: redis::Value = redis::cmd("CRDT.INFO").arg("t").query(&mut con).unwrap();
        match (&info, url.contains("resp3")) {
            (redis::Value::Map(pairs), true) => assert_eq!(
                pairs[0],
                (
                    redis::Value::BulkString(b"type".to_vec()),
                    redis::Value::BulkString(b"text".to_vec())
                )
            ),
            (redis::Value::Array(items), false) => assert_eq!(
                items[..2],
                [
                    redis::Value::BulkString(b"type".to_vec()),
                    redis::Value::BulkString(b"text".to_vec())
                ]
            ),
            _ => panic!("CRDT.INFO over {url}: {info:?}"),
        }
        let e = redis::cmd("TEXT.INSERT")
            .arg("t")
            .arg(10)
            .arg("x")
            .query::<i64>(&mut con)
            .unwrap_err();
        assert_eq!(
            e.detail(),
            Some("index 10 is out of range for a text of 4 characters"),
            "{e}"
        );
        let _: () = con.del("t").unwrap();
    }
}

#[test]
fn redis_py_text_and_crdt_info() {
    let node = Node::start();
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), decode_responses=True)
print(r.execute_command("TEXT.INSERT", "t", 0, "héllo wörld"))
print(r.execute_command("TEXT.DELETE", "t", 0, 1))
print(r.execute_command("TEXT.GET", "t"))
print(r.execute_command("TEXT.GET", "t", -5, -1))
print(r.execute_command("TEXT.LEN", "t"))
print(r.get("t"))
print(r.strlen("t"))
print(r.execute_command("TEXT.GET", "missing"))
try:
    r.execute_command("TEXT.INSERT", "t", 99, "x")
except redis.ResponseError as e:
    print("error:", e)
info = r.execute_command("CRDT.INFO", "t")
print(info[:6])
print(r.execute_command("CRDT.INFO", "missing"))
"#;
    let Some(out) = common::data::run_python(&node, script) else {
        return;
    };
    assert_eq!(
        out,
        "11\n1\néllo wörld\nwörld\n10\néllo wörld\n12\nNone\n\
         error: index 99 is out of range for a text of 10 characters\n\
         ['type', 'text', 'crdt', 'rga-text', 'exists', 1]\nNone\n"
    );
}
