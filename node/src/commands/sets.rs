//! OR sets: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD.
//!
//! Add-wins: an `SADD` concurrent with an `SREM` of the same member on another node wins, and
//! `SREM` removes only the adds it has seen. As in Redis, a set with no member does not exist.

use super::data::{check_value_size, read, write};
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crdt::{Value, View};

const READ: Flags = Flags::READONLY.with(Flags::FAST);

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("sadd", -3, sadd)
        .flags(Flags::WRITE.with(Flags::DENYOOM).with(Flags::FAST))
        .keys(1, 1, 1)
        .member_args()
        .group(Group::Set)
        .summary("Adds members to a set; returns how many were not members.")
        .args(&[ArgDoc::key("key"), ArgDoc::string("member").multiple()]),
    CommandSpec::new("srem", -3, srem)
        .flags(Flags::WRITE.with(Flags::FAST))
        .keys(1, 1, 1)
        .member_args()
        .group(Group::Set)
        .summary("Removes members from a set; returns how many were members.")
        .args(&[ArgDoc::key("key"), ArgDoc::string("member").multiple()]),
    CommandSpec::new("smembers", 2, smembers)
        .flags(Flags::READONLY)
        .keys(1, 1, 1)
        .group(Group::Set)
        .summary("Returns every member of a set.")
        .complexity("O(N) where N is the set cardinality")
        .args(&[ArgDoc::key("key")]),
    CommandSpec::new("sismember", 3, sismember)
        .flags(READ)
        .keys(1, 1, 1)
        .member_args()
        .group(Group::Set)
        .summary("Determines whether a member belongs to a set.")
        .args(&[ArgDoc::key("key"), ArgDoc::string("member")]),
    CommandSpec::new("smismember", -3, smismember)
        .flags(READ)
        .keys(1, 1, 1)
        .member_args()
        .group(Group::Set)
        .since("6.2.0")
        .summary("Determines whether each of several members belongs to a set.")
        .args(&[ArgDoc::key("key"), ArgDoc::string("member").multiple()]),
    CommandSpec::new("scard", 2, scard)
        .flags(READ)
        .keys(1, 1, 1)
        .group(Group::Set)
        .summary("Returns the number of members of a set.")
        .args(&[ArgDoc::key("key")]),
];

fn sadd(ctx: &mut Ctx<'_>) -> CmdResult {
    let members: Vec<&[u8]> = ctx.args.iter().skip(2).collect();
    for m in &members {
        check_value_size(ctx, m.len())?;
    }
    let max = ctx.state.config.limits.value_bytes_max;
    let key = ctx.arg(1);
    let added = write(ctx, key, |v, ts| {
        if !set_fits(v, &members, max) {
            return Ok((None, None));
        }
        v.sadd(ts, &members).map(|(d, n)| (Some(n), Some(d)))
    })?;
    let added = added.ok_or_else(|| {
        CommandError::owned(format!(
            "ERR the set would exceed limits.value_bytes_max ({max} bytes)"
        ))
    })?;
    ctx.reply.integer(added as i64);
    Ok(())
}

/// Whether the set of `value` (none yet, or another type: the add itself decides) stays within
/// `max` bytes of members once `members` are added. Adding only present members is always
/// allowed. O(members added): the set keeps its total member bytes.
fn set_fits(value: &Value, members: &[&[u8]], max: u64) -> bool {
    let set = value.set();
    // Fits even if every member were new: no need to look any of them up (the usual case, the
    // limit being far above most sets).
    let at_most: u64 = members.iter().map(|m| m.len() as u64).sum();
    if set.map_or(0, crdt::OrSet::member_bytes) + at_most <= max {
        return true;
    }
    let mut fresh: Vec<&[u8]> = members
        .iter()
        .copied()
        .filter(|m| !set.is_some_and(|s| s.contains(m)))
        .collect();
    fresh.sort_unstable();
    fresh.dedup();
    let added: u64 = fresh.iter().map(|m| m.len() as u64).sum();
    fresh.is_empty() || set.map_or(0, crdt::OrSet::member_bytes) + added <= max
}

fn srem(ctx: &mut Ctx<'_>) -> CmdResult {
    let members: Vec<&[u8]> = ctx.args.iter().skip(2).collect();
    let key = ctx.arg(1);
    let removed = write(ctx, key, |v, _| v.srem(&members).map(|(d, n)| (n, d)))?;
    ctx.reply.integer(removed as i64);
    Ok(())
}

/// Runs `f` on the set of `key` (`None` if the key does not exist); `WRONGTYPE` for any other
/// type.
fn with_set<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(Option<&crdt::OrSet>) -> R,
) -> Result<R, CommandError> {
    read(ctx.state, key, |v: Option<&Value>| {
        match v.and_then(Value::view) {
            None => Ok(f(None)),
            Some(View::Set(s)) => Ok(f(Some(s))),
            Some(_) => Err(CommandError::WrongType),
        }
    })
}

fn smembers(ctx: &mut Ctx<'_>) -> CmdResult {
    let reply = &mut *ctx.reply;
    let state = ctx.state;
    read(state, ctx.args.arg(1), |v| match v.and_then(Value::view) {
        None => {
            reply.set(0);
            Ok(())
        }
        Some(View::Set(s)) => {
            reply.set(s.len());
            for m in s.iter() {
                reply.bulk(m);
            }
            Ok(())
        }
        Some(_) => Err(CommandError::WrongType),
    })
}

fn sismember(ctx: &mut Ctx<'_>) -> CmdResult {
    let member = ctx.arg(2);
    let found = with_set(ctx, ctx.arg(1), |s| s.is_some_and(|s| s.contains(member)))?;
    ctx.reply.integer(i64::from(found));
    Ok(())
}

fn smismember(ctx: &mut Ctx<'_>) -> CmdResult {
    let members = ctx.args.skip(2);
    let found: Vec<bool> = with_set(ctx, ctx.arg(1), |s| {
        members
            .iter()
            .map(|m| s.is_some_and(|s| s.contains(m)))
            .collect()
    })?;
    ctx.reply.array(found.len());
    for f in found {
        ctx.reply.integer(i64::from(f));
    }
    Ok(())
}

fn scard(ctx: &mut Ctx<'_>) -> CmdResult {
    let n = with_set(ctx, ctx.arg(1), |s| s.map_or(0, crdt::OrSet::len))?;
    ctx.reply.integer(n as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::set_fits;
    use crdt::{NodeId, Timestamp, Value};

    #[test]
    fn set_size_counts_member_bytes() {
        let ts = Timestamp {
            physical_ms: 1,
            logical: 0,
            node: NodeId(1),
        };
        let empty = Value::new();
        assert!(set_fits(&empty, &[b"abcd", b"abcd", b"ef"], 6));
        assert!(!set_fits(&empty, &[b"abcd", b"efg"], 6));
        let mut v = Value::new();
        v.sadd(ts, &[b"abcd", b"ef"]).unwrap();
        assert!(
            set_fits(&v, &[b"abcd", b"ef"], 6),
            "present members add nothing"
        );
        assert!(!set_fits(&v, &[b"g"], 6));
        assert!(set_fits(&v, &[b"g", b"abcd"], 7));
        let mut register = Value::new();
        register.set_register(ts, b"a long register value");
        assert!(set_fits(&register, &[b"m"], 1), "the add refuses the type");
    }
}
