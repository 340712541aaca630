//! Connection and server commands over real TCP against the `crdtkv` binary: reply bytes and
//! shapes in RESP2 and RESP3, pipelining, inline commands, and the command table.

mod common;

use common::{Node, Reply};

#[test]
fn ping_echo_in_both_protocols() {
    let node = Node::start();
    let mut c = node.raw();
    c.send(b"PING\r\n").unwrap();
    assert_eq!(c.read_bytes(7), b"+PONG\r\n");
    assert_eq!(c.cmd(&["PING", "hello"]), Reply::bulk("hello"));
    assert_eq!(c.cmd(&["ECHO", "a\r\nb"]), Reply::bulk("a\r\nb"));
    assert_eq!(c.cmd(&["ECHO", ""]), Reply::bulk(""));
    c.send(b"*2\r\n$4\r\nECHO\r\n$3\r\n\x00\xff\n\r\n").unwrap();
    assert_eq!(c.read(), Reply::Bulk(vec![0, 0xff, b'\n']));
}

#[test]
fn hello_2_and_3_reply_bytes() {
    let node = Node::start();
    let mut c = node.raw();
    let id = match c.cmd(&["CLIENT", "ID"]) {
        Reply::Int(id) => id,
        other => panic!("{other:?}"),
    };
    let version = env!("CARGO_PKG_VERSION");
    let body = |proto: u8| {
        format!(
            "$6\r\nserver\r\n$6\r\ncrdtkv\r\n$7\r\nversion\r\n${}\r\n{version}\r\n$5\r\nproto\r\n:{proto}\r\n\
             $2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
             $7\r\nmodules\r\n*0\r\n",
            version.len()
        )
    };
    let expect3 = format!("%7\r\n{}", body(3));
    c.send(b"HELLO 3\r\n").unwrap();
    assert_eq!(
        String::from_utf8(c.read_bytes(expect3.len())).unwrap(),
        expect3
    );
    // RESP3 from now on: null is `_`, maps are `%`.
    c.send(b"CLIENT GETNAME\r\n").unwrap();
    assert_eq!(c.read_bytes(3), b"_\r\n");
    c.send(b"CONFIG GET maxclients\r\n").unwrap();
    assert_eq!(c.read_bytes(4), b"%1\r\n");
    assert_eq!(c.read(), Reply::bulk("maxclients"));
    assert_eq!(c.read(), Reply::bulk("10000"));
    let expect2 = format!("*14\r\n{}", body(2));
    c.send(b"HELLO 2\r\n").unwrap();
    assert_eq!(
        String::from_utf8(c.read_bytes(expect2.len())).unwrap(),
        expect2
    );
    c.send(b"CLIENT GETNAME\r\n").unwrap();
    assert_eq!(c.read_bytes(5), b"$-1\r\n");
    assert_eq!(
        c.cmd(&["HELLO", "4"]),
        Reply::Error("NOPROTO unsupported protocol version".into())
    );
    assert_eq!(
        c.cmd(&["HELLO", "three"]),
        Reply::Error("ERR Protocol version is not an integer or out of range".into())
    );
}

#[test]
fn pipelining_a_thousand_commands_in_one_write() {
    let node = Node::start();
    let mut c = node.raw();
    let mut wire = Vec::new();
    for i in 0..1000 {
        if i % 2 == 0 {
            wire.extend_from_slice(&common::resp::encode(&[b"ECHO", i.to_string().as_bytes()]));
        } else {
            wire.extend_from_slice(format!("ECHO inline-{i}\r\n").as_bytes());
        }
    }
    c.send(&wire).unwrap();
    for i in 0..1000 {
        let expected = if i % 2 == 0 {
            i.to_string()
        } else {
            format!("inline-{i}")
        };
        assert_eq!(c.read(), Reply::bulk(&expected), "reply {i}");
    }
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn pipelines_larger_than_the_batch_limits_are_answered_in_order() {
    let node = Node::builder()
        .set("limits", "pipeline_commands_max", 3)
        .set("limits", "reply_buffer_bytes_max", 64)
        .start();
    let mut c = node.raw();
    let mut wire = Vec::new();
    for i in 0..500 {
        wire.extend_from_slice(format!("ECHO {i}\r\n").as_bytes());
    }
    wire.extend_from_slice(
        b"ECHO 0123456789012345678901234567890123456789012345678901234567890123456789\r\n",
    );
    c.send(&wire).unwrap();
    for i in 0..500 {
        assert_eq!(c.read(), Reply::bulk(&i.to_string()));
    }
    assert_eq!(c.read().text().len(), 70);
}

#[test]
fn inline_commands_with_quoting() {
    let node = Node::start();
    let mut c = node.raw();
    c.send(b"ECHO \"a\\x41\\n\"\r\n").unwrap();
    assert_eq!(c.read(), Reply::bulk("aA\n"));
    c.send(b"ECHO 'it\\'s'\n").unwrap();
    assert_eq!(c.read(), Reply::bulk("it's"));
    c.send(b"   ECHO    \"two words\"   \r\n").unwrap();
    assert_eq!(c.read(), Reply::bulk("two words"));
    c.send(b"ECHO \"\"\r\n").unwrap();
    assert_eq!(c.read(), Reply::bulk(""));
    c.send(b"\r\n\n  \r\nping\r\n").unwrap();
    assert_eq!(c.read(), Reply::Simple("PONG".into()));
    c.send(b"\"foo\\x41\" 'b c' \"\\n\"\r\n").unwrap();
    assert_eq!(
        c.read(),
        Reply::Error("ERR unknown command 'fooA', with args beginning with: 'b c' ' ' ".into())
    );
}

#[test]
fn unknown_commands_arity_and_select() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(
        c.cmd(&["foo", "a", "b"]),
        Reply::Error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ".into())
    );
    assert_eq!(
        c.cmd(&["FOO"]),
        Reply::Error("ERR unknown command 'FOO', with args beginning with: ".into())
    );
    assert_eq!(
        c.cmd(&["ping", "x", "y", "z"]),
        Reply::Error("ERR wrong number of arguments for 'ping' command".into())
    );
    assert_eq!(
        c.cmd(&["ECHO"]),
        Reply::Error("ERR wrong number of arguments for 'echo' command".into())
    );
    assert_eq!(c.cmd(&["SELECT", "0"]), Reply::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["SELECT", "1"]),
        Reply::Error("ERR DB index is out of range".into())
    );
    assert_eq!(
        c.cmd(&["select", "abc"]),
        Reply::Error("ERR value is not an integer or out of range".into())
    );
    assert_eq!(
        c.cmd(&["CLIENT", "nope"]),
        Reply::Error("ERR unknown subcommand 'nope'. Try CLIENT HELP.".into())
    );
    // Errors never end the connection.
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn quit_and_reset() {
    let node = Node::start();
    let mut c = node.raw();
    c.cmd(&["HELLO", "3"]);
    c.cmd(&["CLIENT", "SETNAME", "n1"]);
    assert_eq!(c.cmd(&["RESET"]), Reply::Simple("RESET".into()));
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Reply::Null);
    c.send(b"CLIENT GETNAME\r\n").unwrap();
    assert_eq!(c.read_bytes(5), b"$-1\r\n", "RESET goes back to RESP2");
    c.send(b"QUIT\r\nPING\r\n").unwrap();
    assert_eq!(c.read(), Reply::Simple("OK".into()));
    assert!(c.is_closed(), "nothing after QUIT is executed");
}

#[test]
fn client_subcommands() {
    let node = Node::start();
    let mut a = node.raw();
    let mut b = node.raw();
    let id_a = match a.cmd(&["CLIENT", "ID"]) {
        Reply::Int(id) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        a.cmd(&["CLIENT", "SETNAME", "alpha"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), Reply::bulk("alpha"));
    assert_eq!(
        a.cmd(&["CLIENT", "SETNAME", "has space"]),
        Reply::Error(
            "ERR Client names cannot contain spaces, newlines or special characters.".into()
        )
    );
    assert_eq!(
        a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "mylib"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        a.cmd(&["CLIENT", "SETINFO", "LIB-VER", "1.2"]),
        Reply::Simple("OK".into())
    );
    let info = a.cmd(&["CLIENT", "INFO"]).text();
    assert!(
        info.starts_with(&format!("id={id_a} addr=127.0.0.1:")),
        "{info}"
    );
    assert!(
        info.contains(" name=alpha ") && info.contains(" cmd=client|info "),
        "{info}"
    );
    assert!(
        info.ends_with(" resp=2 lib-name=mylib lib-ver=1.2\n"),
        "{info}"
    );
    b.cmd(&["PING"]);
    let list = b.cmd(&["CLIENT", "LIST"]).text();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().any(|l| l.contains(" name=alpha ")));
    let only_a = b.cmd(&["CLIENT", "LIST", "ID", &id_a.to_string()]).text();
    assert_eq!(only_a.lines().count(), 1);
    assert!(only_a.contains(" name=alpha "));
    a.cmd(&["HELLO", "3"]);
    match a.cmd(&["CLIENT", "LIST"]) {
        Reply::Verbatim(format, text) => {
            assert_eq!(format, "txt");
            assert!(String::from_utf8(text).unwrap().contains(" resp=3 "));
        }
        other => panic!("RESP3 CLIENT LIST is verbatim: {other:?}"),
    }
}

fn as_array(r: Reply) -> Vec<Reply> {
    match r {
        Reply::Array(items) => items,
        other => panic!("expected an array: {other:?}"),
    }
}

#[test]
fn command_count_docs_info() {
    let node = Node::start();
    let mut c = node.raw();
    let count = match c.cmd(&["COMMAND", "COUNT"]) {
        Reply::Int(n) => n,
        other => panic!("{other:?}"),
    };
    let all = as_array(c.cmd(&["COMMAND"]));
    assert_eq!(all.len() as i64, count);
    let names: Vec<String> = all.iter().map(|e| as_array(e.clone())[0].text()).collect();
    for expected in [
        "ping", "echo", "hello", "auth", "select", "quit", "reset", "client", "command", "info",
        "config", "dbsize", "time",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from COMMAND"
        );
    }
    let info = as_array(c.cmd(&["COMMAND", "INFO", "echo", "nosuch"]));
    let echo = as_array(info[0].clone());
    assert_eq!(echo.len(), 10);
    assert_eq!(echo[0], Reply::bulk("echo"));
    assert_eq!(echo[1], Reply::Int(2));
    assert_eq!(echo[2], Reply::Array(vec![Reply::Simple("fast".into())]));
    assert_eq!(info[1], Reply::Null);
    let docs = as_array(c.cmd(&["COMMAND", "DOCS", "echo"]));
    assert_eq!(docs[0], Reply::bulk("echo"));
    let fields = as_array(docs[1].clone());
    assert_eq!(fields[0], Reply::bulk("summary"));
    assert_eq!(fields[2], Reply::bulk("since"));
    assert_eq!(fields[4], Reply::bulk("group"));
    assert_eq!(fields[5], Reply::bulk("connection"));
    c.cmd(&["HELLO", "3"]);
    match c.cmd(&["COMMAND", "DOCS"]) {
        Reply::Map(pairs) => assert_eq!(pairs.len() as i64, count),
        other => panic!("RESP3 COMMAND DOCS is a map: {other:?}"),
    }
}

#[test]
fn info_sections() {
    let node = Node::start();
    let mut c = node.raw();
    let all = c.cmd(&["INFO"]).text();
    for section in [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "Cpu",
        "Keyspace",
    ] {
        assert!(
            all.contains(&format!("# {section}\r\n")),
            "{section} missing:\n{all}"
        );
    }
    assert!(all.contains(&format!("tcp_port:{}\r\n", node.port)));
    assert!(all.contains("role:master\r\n"));
    let rss_line = all
        .lines()
        .find(|l| l.starts_with("used_memory_rss:"))
        .expect("used_memory_rss");
    let rss: u64 = rss_line["used_memory_rss:".len()..].parse().unwrap();
    assert!(rss > 0);
    let clients = c.cmd(&["INFO", "clients"]).text();
    assert!(
        clients.starts_with("# Clients\r\nconnected_clients:1\r\n"),
        "{clients}"
    );
    assert!(!clients.contains("# Server"));
    let two = c.cmd(&["INFO", "server", "STATS"]).text();
    assert!(two.contains("# Server\r\n") && two.contains("\r\n\r\n# Stats\r\n"));
    assert!(two.contains("total_commands_processed:"));
    assert_eq!(c.cmd(&["INFO", "nosuch"]), Reply::bulk(""));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
}

#[test]
fn config_get_and_time() {
    let node = Node::builder().set("storage", "fsync", "always").start();
    let mut c = node.raw();
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "port"]),
        Reply::Array(vec![
            Reply::bulk("port"),
            Reply::bulk(&node.port.to_string())
        ])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "appendfsync"]),
        Reply::Array(vec![Reply::bulk("appendfsync"), Reply::bulk("always")])
    );
    let max = as_array(c.cmd(&["CONFIG", "GET", "max*"]));
    assert!(max.contains(&Reply::bulk("maxclients")) && max.contains(&Reply::bulk("maxmemory")));
    let native = as_array(c.cmd(&["CONFIG", "GET", "storage.fsync", "server.port"]));
    assert_eq!(native.len(), 4);
    assert_eq!(c.cmd(&["CONFIG", "GET", "nosuch"]), Reply::Array(vec![]));
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "port", "1"]),
        Reply::Error("ERR unknown subcommand 'SET'. Try CONFIG HELP.".into())
    );
    let time = as_array(c.cmd(&["TIME"]));
    let secs: u64 = time[0].text().parse().unwrap();
    let micros: u64 = time[1].text().parse().unwrap();
    assert!(secs > 1_600_000_000 && micros < 1_000_000);
}

#[test]
fn many_concurrent_connections() {
    let node = Node::start();
    let addr = node.addr();
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = common::Raw::connect(&addr);
                for i in 0..50 {
                    let msg = format!("{t}-{i}");
                    assert_eq!(c.cmd(&["ECHO", &msg]), Reply::bulk(&msg));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = node.raw();
    let stats = c.cmd(&["INFO", "stats"]).text();
    let processed: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(processed >= 64 * 50, "{stats}");
}

/// Clients pipelining writes to one key from both connection threads gather on one thread
/// (`server::affinity`): the node reports moves, and a client that moved kept its session
/// (name, protocol) and lost no request or reply on the way.
#[test]
fn writers_of_one_key_gather_on_one_thread_and_keep_their_sessions() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let node = Node::builder()
        .set("server", "connection_threads", 2i64)
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (addr, stop) = (node.addr(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut c = common::Raw::connect(&addr);
                let name = format!("writer-{w}");
                c.cmd(&["CLIENT", "SETNAME", &name]).assert_ok();
                let resp = if w % 2 == 0 { "2" } else { "3" };
                c.cmd(&["HELLO", resp]);
                let mut added = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut pipeline = Vec::new();
                    for i in added..added + 16 {
                        let member = format!("{w}-{i}");
                        pipeline.extend(common::resp::encode(&[
                            b"SADD",
                            b"hot",
                            member.as_bytes(),
                        ]));
                    }
                    c.send(&pipeline).unwrap();
                    for _ in 0..16 {
                        assert_eq!(c.read(), Reply::Int(1));
                    }
                    added += 16;
                }
                assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Reply::bulk(&name));
                let info = c.cmd(&["CLIENT", "INFO"]).text();
                assert!(info.contains(&format!(" resp={resp} ")), "{info}");
                added
            })
        })
        .collect();
    let mut c = node.raw();
    let moves = |c: &mut common::Raw| -> u64 {
        let stats = c.cmd(&["INFO", "stats"]).text();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("total_connection_moves:"))
            .unwrap_or_else(|| panic!("no total_connection_moves in {stats}"))
            .parse()
            .unwrap()
    };
    // A hang guard, not a timing assertion: the writers wait behind each other within a few
    // batches.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while moves(&mut c) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no connection moved in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Let the writers go on for a while on their new threads.
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let added: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(c.cmd(&["SCARD", "hot"]), Reply::Int(added as i64));
}
