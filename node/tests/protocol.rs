//! Malformed protocol input, modelled on Redis' tests/unit/protocol.tcl: every case gets
//! Redis' error reply, the connection is closed after it, and the server keeps serving.
//! Declared lengths never make the server allocate: memory stays bounded under a flood of
//! huge headers.

mod common;

use common::{Node, Raw, Reply};

/// Sends `input` on a fresh connection, expects `error` and the connection to be closed, then
/// checks that the server still answers a new connection.
fn refused(node: &Node, input: &[u8], error: &str) {
    let mut c = node.raw();
    // The server may close while a large input is still being sent; the reply is what counts.
    let _ = c.send(input);
    assert_eq!(
        c.read(),
        Reply::Error(format!("ERR Protocol error: {error}")),
        "input {:?}",
        preview(input)
    );
    assert!(
        c.is_closed(),
        "connection not closed after {:?}",
        preview(input)
    );
    assert_eq!(node.raw().cmd(&["PING"]), Reply::Simple("PONG".into()));
}

fn preview(input: &[u8]) -> String {
    String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned()
}

#[test]
fn empty_queries_and_negative_counts_are_ignored() {
    let node = Node::start();
    let mut c = node.raw();
    for input in [
        &b"\r\n"[..],
        b"\n",
        b"*-10\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"   \r\n",
        b"\x00\r\n",
    ] {
        c.send(input).unwrap();
        assert_eq!(
            c.cmd(&["PING"]),
            Reply::Simple("PONG".into()),
            "after {input:?}"
        );
    }
    // Like a C string, an inline line ends at NUL.
    c.send(b"PING\x00 garbage\r\n").unwrap();
    assert_eq!(c.read(), Reply::Simple("PONG".into()));
}

#[test]
fn bad_multibulk_lengths() {
    let node = Node::start();
    refused(&node, b"*20000000\r\n", "invalid multibulk length");
    refused(&node, b"*3000000000\r\n", "invalid multibulk length");
    refused(
        &node,
        b"*99999999999999999999\r\n",
        "invalid multibulk length",
    );
    refused(&node, b"*abc\r\n", "invalid multibulk length");
    refused(&node, b"*+1\r\n", "invalid multibulk length");
    refused(&node, b"*01\r\n", "invalid multibulk length");
}

#[test]
fn bad_bulk_lengths_and_headers() {
    let node = Node::start();
    refused(
        &node,
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
        "expected '$', got 'f'",
    );
    refused(
        &node,
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n",
        "invalid bulk length",
    );
    refused(
        &node,
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n",
        "invalid bulk length",
    );
    refused(
        &node,
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n",
        "invalid bulk length",
    );
    refused(
        &node,
        b"*1\r\n$99999999999999999999\r\n",
        "invalid bulk length",
    );
    refused(&node, b"*1\r\nfoo\r\n", "expected '$', got 'f'");
    // Requests do not nest: an array where a bulk string belongs is refused, however deep.
    refused(&node, &b"*1\r\n".repeat(10_000), "expected '$', got '*'");
}

#[test]
fn commands_before_the_error_are_answered_first() {
    let node = Node::start();
    let mut c = node.raw();
    c.send(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\nfoo\r\n")
        .unwrap();
    assert_eq!(c.read(), Reply::Simple("PONG".into()));
    assert_eq!(c.read(), Reply::Simple("PONG".into()));
    assert_eq!(
        c.read(),
        Reply::Error("ERR Protocol error: expected '$', got 'f'".into())
    );
    assert!(c.is_closed());
}

#[test]
fn unbalanced_quotes() {
    let node = Node::start();
    refused(&node, b"set \"a\r\n", "unbalanced quotes in request");
    refused(&node, b"set 'a\r\n", "unbalanced quotes in request");
    refused(&node, b"echo \"a\"b\r\n", "unbalanced quotes in request");
    refused(
        &node,
        b"echo \"a\x00b\"\r\n",
        "unbalanced quotes in request",
    );
}

#[test]
fn endless_lines_hit_the_inline_limit() {
    let node = Node::start();
    let tail = vec![b'A'; 70_000];
    for (prefix, error) in [
        (&b"\x00"[..], "too big inline request"),
        (b"*\x00", "too big mbulk count string"),
        (b"$\x00", "too big inline request"),
        (b"*1\r\n$", "too big bulk count string"),
    ] {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&tail);
        refused(&node, &input, error);
    }
}

/// Redis' "protocol desync" regression: keep writing after a bad prefix until the server
/// gives up on the connection; it must have said why.
#[test]
fn desync_clients_are_told_and_disconnected() {
    let node = Node::start();
    for prefix in [&b"\x00"[..], b"*\x00", b"$\x00"] {
        let mut c = node.raw();
        c.send(prefix).unwrap();
        let chunk = [b'A'; 1024];
        let mut sent = 0;
        while c.send(&chunk).is_ok() && sent < 10_000_000 {
            sent += chunk.len();
            if sent > 200_000 {
                break;
            }
        }
        match c.read() {
            Reply::Error(e) => assert!(e.contains("Protocol error"), "{e}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
    assert_eq!(node.raw().cmd(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn binary_and_control_bytes_in_arguments() {
    let node = Node::start();
    let mut c = node.raw();
    let payload: Vec<u8> = (0..=255u8).collect();
    c.send_cmd(&[b"ECHO", &payload]);
    assert_eq!(c.read(), Reply::Bulk(payload));
    c.send(b"*1\r\n\x00\r\n").unwrap();
    assert_eq!(
        c.read(),
        Reply::Error("ERR Protocol error: expected '$', got '\u{0}'".into())
    );
}

#[test]
fn query_buffer_limit() {
    let node = Node::builder()
        .set("limits", "query_buffer_bytes_max", 100_000)
        .set("limits", "bulk_bytes_max", 60_000)
        .start();
    // Each argument is within bulk_bytes_max, the request as a whole is not.
    let big = vec![b'x'; 60_000];
    let request = common::resp::encode(&[b"ECHO", &big, &big]);
    refused(&node, &request, "request exceeds the query buffer limit");
    // A request under the limit works, delivered in pieces.
    let mut c = node.raw();
    let request = common::resp::encode(&[b"ECHO", &big]);
    for piece in request.chunks(7_000) {
        c.send(piece).unwrap();
    }
    assert_eq!(c.read(), Reply::Bulk(big));
}

/// Headers announcing enormous requests cost nothing until the bytes arrive: the server must
/// not allocate what a client merely announces.
#[test]
fn announced_lengths_do_not_allocate() {
    let node = Node::builder()
        .set("limits", "array_len_max", 2_000_000_000)
        .start();
    // Warm up the allocator and the runtime's worker threads.
    for _ in 0..20 {
        node.raw().cmd(&["PING"]);
    }
    let (rss_before, vm_before) = (node.rss_bytes(), node.vm_size_bytes());
    let mut open: Vec<Raw> = Vec::new();
    for i in 0..200 {
        let mut c = node.raw();
        let header: &[u8] = match i % 3 {
            0 => b"*1000000000\r\n",
            1 => b"*1\r\n$536870000\r\nabc",
            _ => b"*2000000000\r\n$500000000\r\n",
        };
        c.send(header).unwrap();
        open.push(c);
    }
    // Everything was received and parsed: the server still answers on a new connection.
    assert_eq!(node.raw().cmd(&["PING"]), Reply::Simple("PONG".into()));
    // Resident memory shows buffers that were filled; virtual size shows any reservation,
    // even of untouched pages (the announced lengths add up to tens of gigabytes).
    let rss_grown = node.rss_bytes().saturating_sub(rss_before);
    let vm_grown = node.vm_size_bytes().saturating_sub(vm_before);
    assert!(
        rss_grown < 64 << 20,
        "RSS grew by {rss_grown} bytes for 200 announced requests"
    );
    assert!(
        vm_grown < 1 << 30,
        "virtual size grew by {vm_grown} bytes for 200 announced requests"
    );
    // And a flood of refused headers leaves it serving too.
    for _ in 0..500 {
        let mut c = node.raw();
        let _ = c.send(b"*3000000000\r\n");
        let _ = c.read();
    }
    assert_eq!(node.raw().cmd(&["PING"]), Reply::Simple("PONG".into()));
    assert!(node.rss_bytes() < rss_before + (64 << 20));
    drop(open);
}
