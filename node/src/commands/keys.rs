//! Commands on keys of any type: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN.
//!
//! `DEL` is observed-remove: it removes what this node has seen of the key, and a write made
//! concurrently on another node survives the merge. The deleted key stays as a small tombstone
//! until every member has seen it (see the replication docs), then it is dropped. `UNLINK` is
//! the same as `DEL`: deleting is cheap here, there is no memory to reclaim in the background.

use super::data::{read, write};
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crate::glob::glob_match;
use crdt::Value;

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, del)
        .flags(Flags::WRITE)
        .keys(1, -1, 1)
        .group(Group::Generic)
        .summary("Deletes one or more keys (observed-remove); returns how many existed.")
        .args(&[ArgDoc::key("key").multiple()]),
    CommandSpec::new("unlink", -2, del)
        .flags(Flags::WRITE.with(Flags::FAST))
        .keys(1, -1, 1)
        .group(Group::Generic)
        .since("4.0.0")
        .summary("Deletes one or more keys; the same as DEL.")
        .args(&[ArgDoc::key("key").multiple()]),
    CommandSpec::new("exists", -2, exists)
        .flags(Flags::READONLY.with(Flags::FAST))
        .keys(1, -1, 1)
        .group(Group::Generic)
        .summary("Counts how many of the keys exist (a key named twice counts twice).")
        .args(&[ArgDoc::key("key").multiple()]),
    CommandSpec::new("type", 2, type_)
        .flags(Flags::READONLY.with(Flags::FAST))
        .keys(1, 1, 1)
        .group(Group::Generic)
        .summary("Returns the type of a key: string, set, text, or none.")
        .args(&[ArgDoc::key("key")]),
    CommandSpec::new("keys", 2, keys)
        .flags(Flags::READONLY)
        .group(Group::Generic)
        .summary("Returns every key matching a glob pattern.")
        .complexity("O(N) with N the number of keys")
        .args(&[ArgDoc::pattern("pattern")]),
    CommandSpec::new("scan", -2, scan)
        .flags(Flags::READONLY)
        .group(Group::Generic)
        .since("2.8.0")
        .summary(
            "Iterates over the keys; a key present for the whole scan is returned at least once.",
        )
        .args(&[
            ArgDoc::integer("cursor"),
            ArgDoc::pattern("pattern").with_token("MATCH").optional(),
            ArgDoc::integer("count").with_token("COUNT").optional(),
            ArgDoc::string("type").with_token("TYPE").optional(),
        ]),
];

fn del(ctx: &mut Ctx<'_>) -> CmdResult {
    let mut deleted = 0;
    for key in ctx.args.skip(1).iter() {
        let existed = write(ctx, key, |v, _| {
            let delta = v.delete();
            Ok((delta.is_some(), delta))
        })?;
        deleted += i64::from(existed);
    }
    ctx.reply.integer(deleted);
    Ok(())
}

fn exists(ctx: &mut Ctx<'_>) -> CmdResult {
    let n = ctx
        .args
        .iter()
        .skip(1)
        .filter(|k| read(ctx.state, k, |v| v.is_some()))
        .count();
    ctx.reply.integer(n as i64);
    Ok(())
}

fn type_name(value: Option<&Value>) -> &'static str {
    value
        .and_then(Value::kind)
        .map_or("none", crdt::Kind::redis_type)
}

fn type_(ctx: &mut Ctx<'_>) -> CmdResult {
    let name = read(ctx.state, ctx.args.arg(1), type_name);
    ctx.reply.simple(name);
    Ok(())
}

fn keys(ctx: &mut Ctx<'_>) -> CmdResult {
    let pattern = ctx.arg(1);
    let (_, found) = ctx
        .state
        .keyspace
        .scan(0, usize::MAX, |k, _| glob_match(pattern, k, false));
    ctx.reply.array(found.len());
    for k in &found {
        ctx.reply.bulk(k);
    }
    Ok(())
}

/// Keys SCAN returns per call by default, as in Redis.
const SCAN_COUNT_DEFAULT: usize = 10;

fn scan(ctx: &mut Ctx<'_>) -> CmdResult {
    let cursor = std::str::from_utf8(ctx.arg(1))
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CommandError::msg("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut kind) = (None, SCAN_COUNT_DEFAULT, None);
    let mut options = ctx.args.iter().skip(2);
    while let Some(option) = options.next() {
        let value = options.next().ok_or(CommandError::Syntax)?;
        match option.to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(value),
            b"COUNT" => {
                // As in Redis: not a number is a range error, a number below 1 a syntax error.
                let n = crate::resp::parse_i64(value).ok_or(CommandError::NotInteger)?;
                count = usize::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or(CommandError::Syntax)?;
            }
            b"TYPE" => kind = Some(value.to_ascii_lowercase()),
            _ => return Err(CommandError::Syntax),
        }
    }
    let (next, found) = ctx.state.keyspace.scan(cursor, count, |k, v| {
        pattern.is_none_or(|p| glob_match(p, k, false))
            && kind
                .as_deref()
                .is_none_or(|t| type_name(Some(v)).as_bytes() == t)
    });
    ctx.reply.array(2);
    ctx.reply.bulk(next.to_string().as_bytes());
    ctx.reply.array(found.len());
    for k in &found {
        ctx.reply.bulk(k);
    }
    Ok(())
}
