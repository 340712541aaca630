//! Registers read and written as Redis strings: GET, SET, SETNX, GETSET, MGET, MSET, STRLEN.
//!
//! A `SET` overwrites whatever the key holds (observed-remove of every part, then a register),
//! exactly as in Redis. Reads also accept counters and texts, which read as strings. Keys never
//! expire in crdtkv, so `SET`'s expiry options are refused rather than silently ignored.

use super::data::{
    bulk_or_null, check_value_size, owned_string_of, read, reply_string, string_of, write,
};
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};

const READ: Flags = Flags::READONLY.with(Flags::FAST);
const WRITE: Flags = Flags::WRITE.with(Flags::DENYOOM);

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, get)
        .flags(READ)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Returns the string value of a key (a register, a counter or a text).")
        .complexity("O(1) for registers and counters, O(N) for a text of N characters")
        .args(&[ArgDoc::key("key")]),
    CommandSpec::new("set", -3, set)
        .flags(WRITE)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Sets the string value of a key, whatever it held. Keys never expire.")
        .args(&[
            ArgDoc::key("key"),
            ArgDoc::string("value"),
            ArgDoc::one_of(
                "condition",
                &[ArgDoc::token("nx", "NX"), ArgDoc::token("xx", "XX")],
            )
            .optional(),
            ArgDoc::token("get", "GET").optional(),
        ]),
    CommandSpec::new("setnx", 3, setnx)
        .flags(WRITE.with(Flags::FAST))
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Sets the string value of a key only when the key does not exist.")
        .args(&[ArgDoc::key("key"), ArgDoc::string("value")]),
    CommandSpec::new("getset", 3, getset)
        .flags(WRITE.with(Flags::FAST))
        .keys(1, 1, 1)
        .group(Group::String)
        .since("1.0.0")
        .summary("Returns the previous string value of a key after setting it to a new value.")
        .args(&[ArgDoc::key("key"), ArgDoc::string("value")]),
    CommandSpec::new("mget", -2, mget)
        .flags(READ)
        .keys(1, -1, 1)
        .group(Group::String)
        .summary("Returns the string values of one or more keys.")
        .args(&[ArgDoc::key("key").multiple()]),
    CommandSpec::new("mset", -3, mset)
        .flags(WRITE)
        .keys(1, -1, 2)
        .group(Group::String)
        .summary("Sets the string values of one or more keys.")
        .args(&[ArgDoc::block("data", &[ArgDoc::key("key"), ArgDoc::string("value")]).multiple()]),
    CommandSpec::new("strlen", 2, strlen)
        .flags(READ)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Returns the length in bytes of a string value.")
        .args(&[ArgDoc::key("key")]),
];

fn get(ctx: &mut Ctx<'_>) -> CmdResult {
    let reply = &mut *ctx.reply;
    read(ctx.state, ctx.args.arg(1), |v| reply_string(reply, v))
}

/// How a `SET` is conditioned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    IfMissing,
    IfExists,
}

fn set(ctx: &mut Ctx<'_>) -> CmdResult {
    let (mut condition, mut get) = (Condition::Always, false);
    for option in ctx.args.iter().skip(3) {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if condition == Condition::Always => condition = Condition::IfMissing,
            b"XX" if condition == Condition::Always => condition = Condition::IfExists,
            b"GET" if !get => get = true,
            // No TTL exists to keep.
            b"KEEPTTL" => {}
            b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                return Err(CommandError::msg(
                    "ERR crdtkv keys do not expire: EX, PX, EXAT and PXAT are not supported",
                ));
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let (key, value) = (ctx.arg(1), ctx.arg(2));
    check_value_size(ctx, value.len())?;
    let (done, old) = set_conditional(ctx, key, value, condition, get)?;
    match (get, done) {
        (true, _) => bulk_or_null(ctx.reply, old.as_deref()),
        (false, true) => ctx.reply.ok(),
        (false, false) => ctx.reply.null(),
    }
    Ok(())
}

/// Sets `key` to `value` under `condition`; returns whether it was set and, when `get`, the
/// previous string value. With `get`, a set refuses with `WRONGTYPE` and sets nothing.
fn set_conditional(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    value: &[u8],
    condition: Condition,
    get: bool,
) -> Result<(bool, Option<Vec<u8>>), CommandError> {
    write(ctx, key, |v, ts| {
        let old = if get { owned_string_of(v)? } else { None };
        let exists = v.exists();
        let allowed = match condition {
            Condition::Always => true,
            Condition::IfMissing => !exists,
            Condition::IfExists => exists,
        };
        if !allowed {
            return Ok(((false, old), None));
        }
        Ok(((true, old), Some(v.set_register(ts, value))))
    })
}

fn setnx(ctx: &mut Ctx<'_>) -> CmdResult {
    let (key, value) = (ctx.arg(1), ctx.arg(2));
    check_value_size(ctx, value.len())?;
    let (done, _) = set_conditional(ctx, key, value, Condition::IfMissing, false)?;
    ctx.reply.integer(i64::from(done));
    Ok(())
}

fn getset(ctx: &mut Ctx<'_>) -> CmdResult {
    let (key, value) = (ctx.arg(1), ctx.arg(2));
    check_value_size(ctx, value.len())?;
    let (_, old) = set_conditional(ctx, key, value, Condition::Always, true)?;
    bulk_or_null(ctx.reply, old.as_deref());
    Ok(())
}

fn mget(ctx: &mut Ctx<'_>) -> CmdResult {
    let reply = &mut *ctx.reply;
    reply.array(ctx.args.len() - 1);
    for key in ctx.args.iter().skip(1) {
        // Like Redis, a key of another type reads as nil here rather than failing the call.
        read(ctx.state, key, |v| match string_of(v) {
            Ok(Some(s)) => reply.bulk(s.as_bytes()),
            _ => reply.null(),
        });
    }
    Ok(())
}

fn mset(ctx: &mut Ctx<'_>) -> CmdResult {
    if ctx.args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity);
    }
    let pairs = ctx.args.skip(1);
    for value in pairs.iter().skip(1).step_by(2) {
        check_value_size(ctx, value.len())?;
    }
    let mut it = pairs.iter();
    while let (Some(key), Some(value)) = (it.next(), it.next()) {
        write(ctx, key, |v, ts| Ok(((), Some(v.set_register(ts, value)))))?;
    }
    ctx.reply.ok();
    Ok(())
}

fn strlen(ctx: &mut Ctx<'_>) -> CmdResult {
    let len = read(ctx.state, ctx.args.arg(1), |v| {
        string_of(v).map(|s| s.map_or(0, |s| s.as_bytes().len()))
    })?;
    ctx.reply.integer(len as i64);
    Ok(())
}
