//! Helpers for the data-command tests: expected replies, RESP3 connections, pipelining, and
//! running redis-py.

use std::process::Command;

use super::{Node, Raw, Reply};

/// `+OK`.
pub fn ok() -> Reply {
    Reply::Simple("OK".into())
}

/// An error reply with exactly `text` (without the leading `-`).
pub fn err(text: &str) -> Reply {
    Reply::Error(text.into())
}

/// Redis' `-WRONGTYPE` error.
pub fn wrongtype() -> Reply {
    err("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// Redis' arity error for `command` (named in lowercase, as Redis does).
pub fn arity(command: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{command}' command"
    ))
}

/// Redis' error for an argument or value that is not a 64-bit integer.
pub fn not_integer() -> Reply {
    err("ERR value is not an integer or out of range")
}

/// Redis' `-ERR syntax error`.
pub fn syntax() -> Reply {
    err("ERR syntax error")
}

/// An array of bulk strings.
pub fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::bulk(s)).collect())
}

/// An array of integers.
pub fn ints(items: &[i64]) -> Reply {
    Reply::Array(items.iter().map(|&n| Reply::Int(n)).collect())
}

/// A RESP3 set of bulk strings, in byte order (compare with [`sorted`]).
pub fn set_of(items: &[&str]) -> Reply {
    let mut items: Vec<&str> = items.to_vec();
    items.sort_unstable();
    Reply::Set(items.iter().map(|s| Reply::bulk(s)).collect())
}

/// `reply` with the items of an array or set sorted, so that unordered replies (SMEMBERS,
/// KEYS) compare exactly whatever order the server chose. Other replies are returned as is.
pub fn sorted(reply: Reply) -> Reply {
    fn key(r: &Reply) -> Vec<u8> {
        match r {
            Reply::Bulk(b) => b.clone(),
            other => format!("{other:?}").into_bytes(),
        }
    }
    match reply {
        Reply::Array(mut items) => {
            items.sort_by_key(key);
            Reply::Array(items)
        }
        Reply::Set(mut items) => {
            items.sort_by_key(key);
            Reply::Set(items)
        }
        other => other,
    }
}

/// A raw client switched to RESP3 with `HELLO 3`.
pub fn resp3(node: &Node) -> Raw {
    let mut c = node.raw();
    match c.cmd(&["HELLO", "3"]) {
        Reply::Map(fields) => assert!(
            fields.contains(&(Reply::bulk("proto"), Reply::Int(3))),
            "{fields:?}"
        ),
        other => panic!("HELLO 3 answered {other:?}"),
    }
    c
}

/// Sends every command of `commands` in one write, then reads their replies in order.
pub fn pipeline(c: &mut Raw, commands: &[Vec<Vec<u8>>]) -> Vec<Reply> {
    let mut out = Vec::new();
    for args in commands {
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        out.extend(super::resp::encode(&args));
    }
    c.send(&out).expect("send pipeline");
    commands.iter().map(|_| c.read()).collect()
}

/// A command as owned argument bytes, for [`pipeline`].
pub fn args(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// A Python interpreter that can `import redis` (python3-redis): `python3` on the PATH, else
/// the system one. `None` when neither has the module.
pub fn python_with_redis() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs the Python `script` with `sys.argv[1]` set to the node's port and returns its stdout;
/// fails the test if the script fails. `None` (after printing why) when no interpreter has
/// redis-py: CI installs python3-redis, so this only skips on a bare machine.
pub fn run_python(node: &Node, script: &str) -> Option<String> {
    let Some(python) = python_with_redis() else {
        println!("SKIPPED: python3-redis is not installed (apt-get install python3-redis)");
        return None;
    };
    let out = Command::new(python)
        .args(["-c", script, &node.port.to_string()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("python prints UTF-8"))
}
