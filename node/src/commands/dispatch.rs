//! Running one parsed command: lookup, checks in Redis' order, the handler, and the bookkeeping
//! the batch needs (which replies acknowledge writes).

use super::Ctx;
use super::error::CommandError;
use super::spec::{CommandSpec, Flags, Run};
use super::table::CommandId;
use crate::resp::{Args, ReplyWriter};
use crate::session::Session;
use crate::state::NodeState;
use crate::write_set::WriteSet;

/// How much of the client's text an error quotes, like Redis' `%.128s`.
const QUOTE_BYTES_MAX: usize = 128;

/// A command found in the table by its name, or `None` for an unknown name.
pub type Found = Option<(CommandId, &'static CommandSpec)>;

/// Executes the command in `args` and writes its reply. Returns true when the reply is an
/// error.
pub fn execute(
    state: &NodeState,
    session: &mut Session,
    args: Args<'_>,
    reply: &mut ReplyWriter,
    writes: &mut WriteSet,
) -> bool {
    let found = state.commands.lookup(args.arg(0));
    execute_found(state, session, found, args, reply, writes)
}

/// [`execute`], with the command `args` names already looked up (a connection's look-ahead
/// does, to find the keys to prefetch).
pub fn execute_found(
    state: &NodeState,
    session: &mut Session,
    found: Found,
    args: Args<'_>,
    reply: &mut ReplyWriter,
    writes: &mut WriteSet,
) -> bool {
    let Some((mut id, mut spec)) = found else {
        reply.error_bytes(&unknown_command(args));
        return true;
    };
    if !spec.arity_ok(args.len()) {
        reply.error(&wrong_arity(spec));
        return true;
    }
    let mut handler = None;
    if let Run::Container { bare, .. } = spec.run {
        if args.len() == 1 {
            // Only reachable when the container's arity allows a bare call.
            handler = bare;
        } else {
            match state.commands.lookup_sub(spec, args.arg(1)) {
                Some(sub) => (id, spec) = sub,
                None => {
                    reply.error_bytes(&unknown_subcommand(args));
                    return true;
                }
            }
            if !spec.arity_ok(args.len()) {
                reply.error(&wrong_arity(spec));
                return true;
            }
        }
    }
    if !session.authenticated && !spec.flags.contains(Flags::NO_AUTH) {
        reply.error("NOAUTH Authentication required.");
        return true;
    }
    session.client.set_last_command(id);
    if let Run::Handler(h) = spec.run {
        handler = Some(h);
    }
    let Some(handler) = handler else {
        // A container without a bare handler has arity -2, so it is never called alone, and
        // subcommands are never containers: nothing in the table gets here.
        reply.error(&wrong_arity(spec));
        return true;
    };
    let start = reply.len();
    let pushes = writes.pushes();
    let result = handler(&mut Ctx {
        state,
        session,
        args,
        reply,
        writes,
        spec,
    });
    let failed = match result {
        Ok(()) => false,
        Err(e) => {
            reply.truncate(start);
            write_error(reply, &e, spec, args);
            true
        }
    };
    if writes.pushes() != pushes {
        writes.mark_durable(start..reply.len());
    }
    failed
}

/// The positions of the keys of a request of `args_len` arguments to the command `found` (for
/// prefetching them, see `keyspace::prefetch`). Nothing is checked: an unknown command has
/// none, and a wrong arity names positions that may not hold keys (the request then fails
/// when it runs).
pub fn key_positions(found: Found, args_len: usize) -> impl Iterator<Item = usize> + use<> {
    let keys = found.map(|(_, spec)| spec.keys).unwrap_or_default();
    keys.positions(args_len)
}

/// Writes the reply of a handler's error.
fn write_error(reply: &mut ReplyWriter, error: &CommandError, spec: &CommandSpec, args: Args<'_>) {
    match error {
        CommandError::Syntax => reply.error("ERR syntax error"),
        CommandError::NotInteger => reply.error("ERR value is not an integer or out of range"),
        CommandError::WrongType => {
            reply.error("WRONGTYPE Operation against a key holding the wrong kind of value");
        }
        CommandError::WrongArity => reply.error(&wrong_arity(spec)),
        CommandError::UnknownSubcommand => reply.error_bytes(&unknown_subcommand(args)),
        CommandError::Message(text) => reply.error(text),
    }
}

/// `s` cut like C's `%.*s`: at the first NUL, and to at most `max` bytes.
fn c_str(s: &[u8], max: usize) -> &[u8] {
    let s = memchr::memchr(0, s).map_or(s, |nul| &s[..nul]);
    &s[..s.len().min(max)]
}

/// Redis' "unknown command" error: the name, then the first arguments quoted until the list
/// reaches 128 bytes.
fn unknown_command(args: Args<'_>) -> Vec<u8> {
    let mut quoted = Vec::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= QUOTE_BYTES_MAX {
            break;
        }
        quoted.push(b'\'');
        quoted.extend_from_slice(c_str(arg, QUOTE_BYTES_MAX - (quoted.len() - 1)));
        quoted.extend_from_slice(b"' ");
    }
    let mut out = b"ERR unknown command '".to_vec();
    out.extend_from_slice(c_str(args.arg(0), QUOTE_BYTES_MAX));
    out.extend_from_slice(b"', with args beginning with: ");
    out.extend_from_slice(&quoted);
    out
}

/// Redis' "unknown subcommand" error, naming the container in upper case.
fn unknown_subcommand(args: Args<'_>) -> Vec<u8> {
    let mut out = b"ERR unknown subcommand '".to_vec();
    out.extend_from_slice(c_str(args.arg(1), QUOTE_BYTES_MAX));
    out.extend_from_slice(b"'. Try ");
    out.extend(
        c_str(args.arg(0), QUOTE_BYTES_MAX)
            .iter()
            .map(u8::to_ascii_uppercase),
    );
    out.extend_from_slice(b" HELP.");
    out
}

fn wrong_arity(spec: &CommandSpec) -> String {
    format!("ERR wrong number of arguments for '{}' command", spec.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::ArgVec;

    #[test]
    fn unknown_command_quotes_like_redis() {
        let v = ArgVec::new(["foo", "a", "b"]);
        assert_eq!(
            String::from_utf8(unknown_command(v.args())).unwrap(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let v = ArgVec::new(["foo"]);
        assert_eq!(
            String::from_utf8(unknown_command(v.args())).unwrap(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        // Quoting stops once 128 bytes are quoted; each argument is cut to what is left.
        let long = "x".repeat(200);
        let v = ArgVec::new(["foo", &long, "next"]);
        let text = String::from_utf8(unknown_command(v.args())).unwrap();
        let expected = format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "x".repeat(128)
        );
        assert_eq!(text, expected);
        let v = ArgVec::new(["f\0oo", "a\0b"]);
        assert_eq!(
            String::from_utf8(unknown_command(v.args())).unwrap(),
            "ERR unknown command 'f', with args beginning with: 'a' "
        );
    }

    #[test]
    fn unknown_subcommand_names_the_container() {
        let v = ArgVec::new(["client", "foo"]);
        assert_eq!(
            String::from_utf8(unknown_subcommand(v.args())).unwrap(),
            "ERR unknown subcommand 'foo'. Try CLIENT HELP."
        );
    }
}
