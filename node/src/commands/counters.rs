//! Counters: INCR, INCRBY, DECR, DECRBY (PN counter) and GCOUNTER.INCRBY (grow-only counter).
//!
//! Increments made concurrently on different nodes all count: each node owns its contribution
//! (see `crdt::value::Counter`). `GET` reads a counter as a decimal string. A register holding
//! a base-10 integer is converted by `INCR`, as after `SET k 10` in Redis.

use super::data::write;
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};

const WRITE: Flags = Flags::WRITE.with(Flags::DENYOOM).with(Flags::FAST);

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("incr", 2, incr)
        .flags(WRITE)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Increments the counter of a key by one; a missing key starts at 0.")
        .args(&[ArgDoc::key("key")]),
    CommandSpec::new("incrby", 3, incrby)
        .flags(WRITE)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Increments the counter of a key by a number; a missing key starts at 0.")
        .args(&[ArgDoc::key("key"), ArgDoc::integer("increment")]),
    CommandSpec::new("decr", 2, decr)
        .flags(WRITE)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Decrements the counter of a key by one; a missing key starts at 0.")
        .args(&[ArgDoc::key("key")]),
    CommandSpec::new("decrby", 3, decrby)
        .flags(WRITE)
        .keys(1, 1, 1)
        .group(Group::String)
        .summary("Decrements the counter of a key by a number; a missing key starts at 0.")
        .args(&[ArgDoc::key("key"), ArgDoc::integer("decrement")]),
    CommandSpec::new("gcounter.incrby", 3, gcounter_incrby)
        .flags(WRITE)
        .keys(1, 1, 1)
        .group(Group::Module)
        .since("0.1.0")
        .summary("Increments a grow-only counter by a non-negative number; returns its value.")
        .args(&[ArgDoc::key("key"), ArgDoc::integer("increment")]),
];

fn incr(ctx: &mut Ctx<'_>) -> CmdResult {
    increment(ctx, 1)
}

fn decr(ctx: &mut Ctx<'_>) -> CmdResult {
    increment(ctx, -1)
}

fn incrby(ctx: &mut Ctx<'_>) -> CmdResult {
    let by = ctx.int_arg(2)?;
    increment(ctx, by)
}

fn decrby(ctx: &mut Ctx<'_>) -> CmdResult {
    let by = ctx.int_arg(2)?;
    let by = by
        .checked_neg()
        .ok_or(CommandError::msg("ERR decrement would overflow"))?;
    increment(ctx, by)
}

fn increment(ctx: &mut Ctx<'_>, by: i64) -> CmdResult {
    let key = ctx.arg(1);
    let value = write(ctx, key, |v, ts| {
        v.incr_by(ts, by).map(|(d, n)| (n, Some(d)))
    })?;
    ctx.reply.integer(value);
    Ok(())
}

fn gcounter_incrby(ctx: &mut Ctx<'_>) -> CmdResult {
    let by = ctx.int_arg(2)?;
    let key = ctx.arg(1);
    let value = write(ctx, key, |v, ts| {
        v.gcounter_incr_by(ts, by).map(|(d, n)| (n, Some(d)))
    })?;
    ctx.reply.integer(value);
    Ok(())
}
