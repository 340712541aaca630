//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET.
//!
//! Authentication knows one user, `default`, whose password is `server.requirepass`. Without a
//! password `default` accepts any password, as in Redis (`nopass`). Passwords are compared in
//! constant time.

use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crate::resp::{Protocol, parse_i64};

const CONN: Flags = Flags::NOSCRIPT
    .with(Flags::LOADING)
    .with(Flags::STALE)
    .with(Flags::FAST);

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, ping)
        .flags(Flags::FAST)
        .group(Group::Connection)
        .summary("Returns the server's liveliness response.")
        .args(&[ArgDoc::string("message").optional()])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    CommandSpec::new("echo", 2, echo)
        .flags(Flags::FAST)
        .group(Group::Connection)
        .summary("Returns the given string.")
        .args(&[ArgDoc::string("message")]),
    CommandSpec::new("hello", -1, hello)
        .flags(CONN.with(Flags::NO_AUTH))
        .group(Group::Connection)
        .since("6.0.0")
        .summary("Handshakes with the server: protocol version, authentication, name.")
        .args(&[ArgDoc::block(
            "arguments",
            &[
                ArgDoc::integer("protover"),
                ArgDoc::block(
                    "username-password",
                    &[ArgDoc::string("username"), ArgDoc::string("password")],
                )
                .with_token("AUTH")
                .optional(),
                ArgDoc::string("clientname")
                    .with_token("SETNAME")
                    .optional(),
            ],
        )
        .optional()]),
    CommandSpec::new("auth", -2, auth)
        .flags(CONN.with(Flags::NO_AUTH))
        .group(Group::Connection)
        .summary("Authenticates the connection.")
        .complexity("O(N) where N is the number of passwords defined for the user")
        .args(&[
            ArgDoc::string("username").optional(),
            ArgDoc::string("password"),
        ]),
    CommandSpec::new("select", 2, select)
        .flags(Flags::LOADING.with(Flags::STALE).with(Flags::FAST))
        .group(Group::Connection)
        .summary("Changes the selected database; crdtkv has only database 0.")
        .args(&[ArgDoc::integer("index")]),
    CommandSpec::new("quit", -1, quit)
        .flags(CONN.with(Flags::NO_AUTH))
        .group(Group::Connection)
        .summary("Closes the connection.")
        .since("1.0.0"),
    CommandSpec::new("reset", 1, reset)
        .flags(CONN.with(Flags::NO_AUTH))
        .group(Group::Connection)
        .since("6.2.0")
        .summary("Resets the connection: protocol 2, no name, authentication required again."),
];

fn ping(ctx: &mut Ctx<'_>) -> CmdResult {
    // Redis declares PING with arity -1 and refuses more than one message in the handler.
    if ctx.args.len() > 2 {
        return Err(CommandError::WrongArity);
    }
    match ctx.args.get(1) {
        Some(message) => ctx.reply.bulk(message),
        None => ctx.reply.simple("PONG"),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx<'_>) -> CmdResult {
    ctx.reply.bulk(ctx.args.arg(1));
    Ok(())
}

/// Compares without an early exit, so the time taken does not reveal how much of a guess was
/// right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// Checks a user and password; `Err` is the WRONGPASS reply.
fn check_credentials(ctx: &Ctx<'_>, user: &[u8], password: &[u8]) -> CmdResult {
    let user_ok = user == b"default";
    let password_ok = match &ctx.state.config.server.requirepass {
        Some(expected) => constant_time_eq(password, expected.as_bytes()),
        None => true,
    };
    if user_ok && password_ok {
        Ok(())
    } else {
        Err(CommandError::msg(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

fn auth(ctx: &mut Ctx<'_>) -> CmdResult {
    if ctx.args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    if ctx.args.len() == 2 && ctx.state.config.server.requirepass.is_none() {
        return Err(CommandError::msg(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ));
    }
    let (user, password) = match ctx.args.len() {
        2 => (&b"default"[..], ctx.arg(1)),
        _ => (ctx.arg(1), ctx.arg(2)),
    };
    check_credentials(ctx, user, password)?;
    ctx.session.authenticated = true;
    ctx.reply.ok();
    Ok(())
}

/// Redis' rule for connection names: printable ASCII without spaces (`!` to `~`).
pub(super) fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

pub(super) const BAD_CLIENT_NAME: CommandError =
    CommandError::msg("ERR Client names cannot contain spaces, newlines or special characters.");

fn hello(ctx: &mut Ctx<'_>) -> CmdResult {
    let mut protocol = None;
    let mut next = 1;
    if let Some(version) = ctx.args.get(1) {
        let version = parse_i64(version).ok_or(CommandError::msg(
            "ERR Protocol version is not an integer or out of range",
        ))?;
        protocol = Some(match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(CommandError::msg("NOPROTO unsupported protocol version")),
        });
        next = 2;
    }
    let mut credentials = None;
    let mut name = None;
    let mut j = next;
    while j < ctx.args.len() {
        let more = ctx.args.len() - 1 - j;
        let option = ctx.arg(j);
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            credentials = Some((ctx.arg(j + 1), ctx.arg(j + 2)));
            j += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            let candidate = ctx.arg(j + 1);
            if !valid_client_name(candidate) {
                return Err(BAD_CLIENT_NAME);
            }
            name = Some(candidate);
            j += 2;
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(option);
            text.push(b'\'');
            return Err(CommandError::owned(
                String::from_utf8_lossy(&text).into_owned(),
            ));
        }
    }
    if let Some((user, password)) = credentials {
        check_credentials(ctx, user, password)?;
        ctx.session.authenticated = true;
    }
    if !ctx.session.authenticated {
        return Err(CommandError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO AUTH <user> <pass> option can be used to authenticate the client and select \
             the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = name {
        ctx.session
            .client
            .update_meta(|m| m.name = (!name.is_empty()).then(|| name.into()));
    }
    if let Some(protocol) = protocol {
        ctx.set_protocol(protocol);
    }
    let r = &mut *ctx.reply;
    r.map(7);
    r.bulk(b"server");
    r.bulk(b"crdtkv");
    r.bulk(b"version");
    r.bulk(env!("CARGO_PKG_VERSION").as_bytes());
    r.bulk(b"proto");
    r.integer(r.protocol().version());
    r.bulk(b"id");
    r.integer(i64::try_from(ctx.session.id).unwrap_or(i64::MAX));
    r.bulk(b"mode");
    r.bulk(b"standalone");
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"modules");
    r.array(0);
    Ok(())
}

fn select(ctx: &mut Ctx<'_>) -> CmdResult {
    match ctx.int_arg(1)? {
        0 => {
            ctx.reply.ok();
            Ok(())
        }
        _ => Err(CommandError::msg("ERR DB index is out of range")),
    }
}

fn quit(ctx: &mut Ctx<'_>) -> CmdResult {
    ctx.session.close_after_reply = true;
    ctx.reply.ok();
    Ok(())
}

fn reset(ctx: &mut Ctx<'_>) -> CmdResult {
    ctx.set_protocol(Protocol::Resp2);
    ctx.session.client.update_meta(|m| m.name = None);
    ctx.session.authenticated = !ctx.state.password_required();
    ctx.reply.simple("RESET");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::TestClient;
    use crate::config::Config;

    fn with_password() -> Config {
        let mut c = Config::default();
        c.server.requirepass = Some("secret".into());
        c
    }

    #[test]
    fn ping_echo_select_quit() {
        let mut c = TestClient::new(Config::default());
        assert_eq!(c.run(&["PING"]), "+PONG\r\n");
        assert_eq!(c.run(&["ping", "hi"]), "$2\r\nhi\r\n");
        assert_eq!(
            c.run(&["ping", "a", "b"]),
            "-ERR wrong number of arguments for 'ping' command\r\n"
        );
        assert_eq!(c.run(&["echo", ""]), "$0\r\n\r\n");
        assert_eq!(c.run(&["select", "0"]), "+OK\r\n");
        assert_eq!(c.run(&["select", "1"]), "-ERR DB index is out of range\r\n");
        assert_eq!(
            c.run(&["select", "-1"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            c.run(&["select", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert!(!c.session.close_after_reply);
        assert_eq!(c.run(&["quit"]), "+OK\r\n");
        assert!(c.session.close_after_reply);
    }

    #[test]
    fn hello_switches_protocol_and_names() {
        let mut c = TestClient::new(Config::default());
        let id = c.session.id;
        let r3 = c.run(&["HELLO", "3", "SETNAME", "app"]);
        assert!(
            r3.starts_with("%7\r\n$6\r\nserver\r\n$6\r\ncrdtkv\r\n$7\r\nversion\r\n"),
            "{r3}"
        );
        assert!(r3.ends_with(&format!(
            "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        )));
        assert_eq!(c.session.client.name().as_deref(), Some(&b"app"[..]));
        assert!(c.run(&["HELLO"]).starts_with("%7\r\n"));
        assert!(c.run(&["HELLO", "2"]).starts_with("*14\r\n"));
        assert_eq!(
            c.run(&["HELLO", "4"]),
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(
            c.run(&["HELLO", "1"]),
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(
            c.run(&["HELLO", "x"]),
            "-ERR Protocol version is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.run(&["HELLO", "3", "SETNAME"]),
            "-ERR Syntax error in HELLO option 'SETNAME'\r\n"
        );
        assert_eq!(
            c.run(&["HELLO", "3", "foo"]),
            "-ERR Syntax error in HELLO option 'foo'\r\n"
        );
        assert_eq!(
            c.run(&["HELLO", "3", "SETNAME", "a b"]),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
        // Failed options leave the protocol alone.
        assert_eq!(c.reply.protocol(), Protocol::Resp2);
    }

    #[test]
    fn auth_without_password() {
        let mut c = TestClient::new(Config::default());
        assert_eq!(
            c.run(&["AUTH", "x"]),
            "-ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?\r\n"
        );
        assert_eq!(c.run(&["AUTH", "default", "anything"]), "+OK\r\n");
        assert_eq!(
            c.run(&["AUTH", "bob", "x"]),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(c.run(&["AUTH", "a", "b", "c"]), "-ERR syntax error\r\n");
    }

    #[test]
    fn auth_flows_with_password() {
        let mut c = TestClient::new(with_password());
        assert_eq!(c.run(&["PING"]), "-NOAUTH Authentication required.\r\n");
        assert_eq!(
            c.run(&["nosuch"]),
            "-ERR unknown command 'nosuch', with args beginning with: \r\n"
        );
        assert_eq!(
            c.run(&["echo"]),
            "-ERR wrong number of arguments for 'echo' command\r\n"
        );
        assert!(
            c.run(&["HELLO", "3"])
                .starts_with("-NOAUTH HELLO must be called")
        );
        assert_eq!(
            c.run(&["AUTH", "wrong"]),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(
            c.run(&["HELLO", "3", "AUTH", "default", "wrong"]),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert!(!c.session.authenticated);
        assert!(
            c.run(&["HELLO", "3", "AUTH", "default", "secret"])
                .starts_with("%7\r\n")
        );
        assert!(c.session.authenticated);
        assert_eq!(c.run(&["PING"]), "+PONG\r\n");
        assert_eq!(c.run(&["RESET"]), "+RESET\r\n");
        assert!(!c.session.authenticated);
        assert_eq!(c.reply.protocol(), Protocol::Resp2);
        assert_eq!(c.run(&["PING"]), "-NOAUTH Authentication required.\r\n");
        assert_eq!(c.run(&["AUTH", "secret"]), "+OK\r\n");
        assert_eq!(c.run(&["AUTH", "default", "secret"]), "+OK\r\n");
    }

    #[test]
    fn constant_time_comparison_is_equality() {
        for (a, b) in [
            ("", ""),
            ("a", ""),
            ("", "a"),
            ("abc", "abc"),
            ("abc", "abd"),
            ("ab", "abc"),
        ] {
            assert_eq!(
                constant_time_eq(a.as_bytes(), b.as_bytes()),
                a == b,
                "{a:?} {b:?}"
            );
        }
    }
}
