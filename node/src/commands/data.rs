//! What the data command families share: running a mutation through the keyspace, turning
//! `crdt` errors into Redis replies, the value size limit, and reading a key "as a string".
//!
//! Registers, counters and texts all read as strings (`GET` answers any of them), as Redis users
//! expect of keys made by `SET`, `INCR` or text commands; sets do not.

use crdt::{Timestamp, Value, View};

use super::{CommandError, Ctx};
use crate::resp::ReplyWriter;
use crate::state::NodeState;

/// Runs `f` on `key` with a fresh timestamp; the delta it returns is persisted with the batch
/// and replicated after the commit.
pub(super) fn write<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut Value, Timestamp) -> Result<(R, Option<Value>), crdt::Error>,
) -> Result<R, CommandError> {
    if !ctx.state.gate.is_open() {
        return Err(CommandError::msg(crate::cluster::gate::GATED));
    }
    if key.len() > ctx.state.key_bytes_max {
        return Err(CommandError::owned(format!(
            "ERR key of {} bytes exceeds cluster.replication.key_bytes_max ({} bytes)",
            key.len(),
            ctx.state.key_bytes_max
        )));
    }
    ctx.state
        .keyspace
        .write(key, ctx.writes, f)
        .map_err(crdt_error)
}

/// Runs `f` on the live value of `key` (`None` if it does not exist; tombstones read as
/// missing) and counts a keyspace hit or miss. Takes the state rather than the context so that
/// `f` can write the reply straight from the value, without copying it.
pub(super) fn read<R>(state: &NodeState, key: &[u8], f: impl FnOnce(Option<&Value>) -> R) -> R {
    state.keyspace.read(key, |v| {
        let live = v.filter(|v| v.exists());
        let stats = &state.stats;
        let counter = if live.is_some() {
            &stats.keyspace_hits
        } else {
            &stats.keyspace_misses
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f(live)
    })
}

/// The Redis reply for a refused CRDT operation.
pub(super) fn crdt_error(e: crdt::Error) -> CommandError {
    match e {
        crdt::Error::WrongType => CommandError::WrongType,
        crdt::Error::NotAnInteger => CommandError::NotInteger,
        crdt::Error::Overflow => CommandError::msg("ERR increment or decrement would overflow"),
        crdt::Error::NegativeIncrement => {
            CommandError::msg("ERR grow-only counter increment must be non-negative")
        }
        crdt::Error::IndexOutOfRange { index, len } => CommandError::owned(format!(
            "ERR index {index} is out of range for a text of {len} characters"
        )),
        other => CommandError::owned(format!("ERR {other}")),
    }
}

/// Refuses a value (or member, or text) longer than `limits.value_bytes_max`.
pub(super) fn check_value_size(ctx: &Ctx<'_>, bytes: usize) -> Result<(), CommandError> {
    let max = ctx.state.config.limits.value_bytes_max;
    if bytes as u64 > max {
        return Err(CommandError::owned(format!(
            "ERR value of {bytes} bytes exceeds limits.value_bytes_max ({max} bytes)"
        )));
    }
    Ok(())
}

/// The bytes `GET` answers for `value`: a register's bytes, a counter in decimal, a text in
/// UTF-8. `Ok(None)` for a missing key, `WRONGTYPE` for a set.
pub(super) fn string_of(value: Option<&Value>) -> Result<Option<StringView<'_>>, CommandError> {
    match value.and_then(Value::view) {
        None => Ok(None),
        Some(View::Register(bytes)) => Ok(Some(StringView::Bytes(bytes))),
        Some(View::Counter(n)) => Ok(Some(StringView::Owned(n.to_string().into_bytes()))),
        Some(View::Text(t)) => Ok(Some(StringView::Owned(t.to_string().into_bytes()))),
        Some(View::Set(_)) => Err(CommandError::WrongType),
    }
}

/// A key's value read as a string, borrowed when it already is one.
pub(super) enum StringView<'a> {
    /// A register's bytes.
    Bytes(&'a [u8]),
    /// A counter or text rendered.
    Owned(Vec<u8>),
}

impl StringView<'_> {
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            StringView::Bytes(b) => b,
            StringView::Owned(v) => v,
        }
    }
}

/// Replies with `value` read as a string, or nil.
pub(super) fn reply_string(
    reply: &mut ReplyWriter,
    value: Option<&Value>,
) -> Result<(), CommandError> {
    match string_of(value)? {
        Some(s) => reply.bulk(s.as_bytes()),
        None => reply.null(),
    }
    Ok(())
}

/// `value` read as a string, owned; `WRONGTYPE` for a set. For use inside a write, where the
/// error must be a `crdt` one so that nothing is written.
pub(super) fn owned_string_of(value: &Value) -> Result<Option<Vec<u8>>, crdt::Error> {
    let live = Some(value).filter(|v| v.exists());
    match string_of(live) {
        Ok(s) => Ok(s.map(|s| s.as_bytes().to_vec())),
        Err(_) => Err(crdt::Error::WrongType),
    }
}

/// Replies with `bytes`, or nil.
pub(super) fn bulk_or_null(reply: &mut ReplyWriter, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => reply.bulk(b),
        None => reply.null(),
    }
}
