//! Authentication over TCP: every NOAUTH and WRONGPASS case, HELLO AUTH, RESET, and the tight
//! request limits Redis applies before a client has authenticated.

mod common;

use common::data::{err, ok};
use common::{Node, Reply};

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

#[test]
fn without_a_password() {
    let node = Node::start();
    let mut c = node.raw();
    assert_eq!(
        c.cmd(&["AUTH", "x"]),
        err(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
        )
    );
    assert_eq!(c.cmd(&["AUTH", "default", "anything"]), ok());
    assert_eq!(c.cmd(&["AUTH", "someone", "x"]), err(WRONGPASS));
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn every_command_but_the_handshake_needs_auth() {
    let node = Node::builder().password("s3cret").start();
    let mut c = node.raw();
    for cmd in [
        &["PING"][..],
        &["ECHO", "x"],
        &["SELECT", "0"],
        &["CLIENT", "ID"],
        &["CLIENT", "LIST"],
        &["COMMAND", "COUNT"],
        &["COMMAND"],
        &["INFO"],
        &["CONFIG", "GET", "requirepass"],
        &["DBSIZE"],
        &["TIME"],
    ] {
        assert_eq!(c.cmd(cmd), err(NOAUTH), "{cmd:?}");
    }
    // Redis checks the name and the arity before authentication.
    assert_eq!(
        c.cmd(&["nosuch"]),
        err("ERR unknown command 'nosuch', with args beginning with: ")
    );
    assert_eq!(
        c.cmd(&["ECHO"]),
        err("ERR wrong number of arguments for 'echo' command")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "bogus"]),
        err("ERR unknown subcommand 'bogus'. Try CLIENT HELP.")
    );
    assert!(matches!(
        c.cmd(&["HELLO", "3"]),
        Reply::Error(e) if e.starts_with("NOAUTH HELLO must be called with the client already authenticated")
    ));
    assert_eq!(c.cmd(&["AUTH", "wrong"]), err(WRONGPASS));
    assert_eq!(c.cmd(&["AUTH", "default", "wrong"]), err(WRONGPASS));
    assert_eq!(c.cmd(&["AUTH", "admin", "s3cret"]), err(WRONGPASS));
    assert_eq!(c.cmd(&["AUTH", "a", "b", "c"]), err("ERR syntax error"));
    assert_eq!(
        c.cmd(&["HELLO", "3", "AUTH", "default", "wrong"]),
        err(WRONGPASS)
    );
    assert_eq!(c.cmd(&["PING"]), err(NOAUTH));
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), ok());
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "requirepass"]),
        Reply::Array(vec![Reply::bulk("requirepass"), Reply::bulk("s3cret")])
    );
    // A failed AUTH does not undo an earlier success.
    assert_eq!(c.cmd(&["AUTH", "wrong"]), err(WRONGPASS));
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    // QUIT works before authentication.
    let mut q = node.raw();
    assert_eq!(q.cmd(&["QUIT"]), ok());
    assert!(q.is_closed());
}

#[test]
fn hello_auth_and_reset() {
    let node = Node::builder().password("pw").start();
    let mut c = node.raw();
    match c.cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app"]) {
        Reply::Map(pairs) => assert_eq!(pairs[2], (Reply::bulk("proto"), Reply::Int(3))),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Reply::bulk("app"));
    assert_eq!(c.cmd(&["RESET"]), Reply::Simple("RESET".into()));
    assert_eq!(
        c.cmd(&["PING"]),
        err(NOAUTH),
        "RESET requires authentication again"
    );
    assert_eq!(c.cmd(&["AUTH", "default", "pw"]), ok());
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Reply::Null);
}

#[test]
fn unauthenticated_clients_get_tight_limits() {
    let node = Node::builder().password("pw").start();
    let mut c = node.raw();
    c.send(b"*100\r\n").unwrap();
    assert_eq!(
        c.read(),
        err("ERR Protocol error: unauthenticated multibulk length")
    );
    assert!(c.is_closed());
    let mut c = node.raw();
    c.send(b"*1\r\n$100000\r\n").unwrap();
    assert_eq!(
        c.read(),
        err("ERR Protocol error: unauthenticated bulk length")
    );
    assert!(c.is_closed());
    // At the limits exactly, the request is parsed (and refused for lack of AUTH).
    let mut c = node.raw();
    let arg = vec![b'x'; 16384];
    let mut args: Vec<&[u8]> = vec![b"ECHO", &arg];
    c.send_cmd(&args);
    assert_eq!(c.read(), err(NOAUTH));
    args = vec![&b"x"[..]; 10];
    c.send_cmd(&args);
    assert_eq!(
        c.read(),
        err(
            "ERR unknown command 'x', with args beginning with: 'x' 'x' 'x' 'x' 'x' 'x' 'x' 'x' 'x' "
        )
    );
    // Once authenticated, in the same pipeline, the normal limits apply.
    let mut c = node.raw();
    let mut wire = common::resp::encode(&[b"AUTH", b"pw"]);
    let many: Vec<&[u8]> = std::iter::once(&b"ECHO"[..])
        .chain(std::iter::repeat_n(&b"y"[..], 99))
        .collect();
    wire.extend_from_slice(&common::resp::encode(&many));
    c.send(&wire).unwrap();
    assert_eq!(c.read(), ok());
    assert_eq!(
        c.read(),
        err("ERR wrong number of arguments for 'echo' command")
    );
    let big = vec![b'z'; 100_000];
    c.send_cmd(&[b"ECHO", &big]);
    assert_eq!(c.read(), Reply::Bulk(big));
    // And the other way: after a RESET in a pipeline, the requests behind it are held to the
    // tight limits again, although they arrived (and were read) while the client was
    // authenticated.
    let mut wire = common::resp::encode(&[b"RESET"]);
    wire.extend_from_slice(&common::resp::encode(&many));
    c.send(&wire).unwrap();
    assert_eq!(c.read(), Reply::Simple("RESET".into()));
    assert_eq!(
        c.read(),
        err("ERR Protocol error: unauthenticated multibulk length")
    );
    assert!(c.is_closed());
}
