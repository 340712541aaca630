//! Named limits enforced over TCP: connections, array and bulk sizes, inline length.

mod common;

use common::{Node, Raw, Reply};

#[test]
fn connections_max_refuses_the_next_client_like_redis() {
    let node = Node::builder().set("server", "connections_max", 5).start();
    let mut open: Vec<Raw> = (0..5).map(|_| node.raw()).collect();
    for c in &mut open {
        assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    }
    let mut extra = node.raw();
    assert_eq!(
        extra.read(),
        Reply::Error("ERR max number of clients reached".into())
    );
    assert!(extra.is_closed());
    // A slot frees up when a client leaves (once the server has noticed).
    drop(open.pop());
    let mut attempts = 0;
    loop {
        let mut c = node.raw();
        let _ = c.send(b"PING\r\n");
        match c.read() {
            Reply::Simple(s) if s == "PONG" => break,
            Reply::Error(e) if e == "ERR max number of clients reached" && attempts < 500 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => panic!("{other:?}"),
        }
    }
    let mut c = open.pop().unwrap();
    let info = c.cmd(&["INFO", "stats"]).text();
    assert!(!info.contains("rejected_connections:0\r\n"), "{info}");
}

#[test]
fn configured_request_limits() {
    let node = Node::builder()
        .set("limits", "bulk_bytes_max", 1024)
        .set("limits", "unauth_bulk_bytes_max", 512)
        .set("limits", "array_len_max", 16)
        .set("limits", "inline_bytes_max", 256)
        .start();
    let mut c = node.raw();
    c.send(b"*1\r\n$1025\r\n").unwrap();
    assert_eq!(
        c.read(),
        Reply::Error("ERR Protocol error: invalid bulk length".into())
    );
    let mut c = node.raw();
    c.send(b"*17\r\n").unwrap();
    assert_eq!(
        c.read(),
        Reply::Error("ERR Protocol error: invalid multibulk length".into())
    );
    let mut c = node.raw();
    let mut line = b"ECHO ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 300));
    c.send(&line).unwrap();
    assert_eq!(
        c.read(),
        Reply::Error("ERR Protocol error: too big inline request".into())
    );
    // At the limits, requests work.
    let mut c = node.raw();
    let arg = vec![b'q'; 1024];
    c.send_cmd(&[b"ECHO", &arg]);
    assert_eq!(c.read(), Reply::Bulk(arg));
    let inline = format!("ECHO {}\r\n", "b".repeat(200));
    c.send(inline.as_bytes()).unwrap();
    assert_eq!(c.read(), Reply::bulk(&"b".repeat(200)));
}

#[test]
fn idle_clients_are_closed_when_configured() {
    let node = Node::builder()
        .set("server", "client_idle_timeout_ms", 200)
        .start();
    let mut c = node.raw();
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    // No timing assertion: the read simply ends once the server closes the idle connection.
    assert!(c.is_closed());
}
