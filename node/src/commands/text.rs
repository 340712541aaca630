//! RGA text: TEXT.INSERT, TEXT.DELETE, TEXT.GET, TEXT.LEN (module-style names; Redis has no
//! text type).
//!
//! Positions and lengths count Unicode code points, not bytes, so that every replica agrees on
//! what "position 5" means whatever the characters. Inserts made concurrently at the same place
//! on different nodes all survive, in the same order everywhere. `GET` reads the whole text;
//! `TEXT.GET key start end` takes an inclusive range with negative positions counted from the
//! end, like `GETRANGE`.

use super::data::{check_value_size, read, write};
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crdt::{Rga, Value, View};

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("text.insert", 4, text_insert)
        .flags(Flags::WRITE.with(Flags::DENYOOM))
        .keys(1, 1, 1)
        .group(Group::Module)
        .since("0.1.0")
        .summary("Inserts UTF-8 text at a character position; returns the new length.")
        .complexity("O(log N + M) for a text of N characters and an insert of M")
        .args(&[
            ArgDoc::key("key"),
            ArgDoc::integer("index"),
            ArgDoc::string("text"),
        ]),
    CommandSpec::new("text.delete", 4, text_delete)
        .flags(Flags::WRITE)
        .keys(1, 1, 1)
        .group(Group::Module)
        .since("0.1.0")
        .summary("Deletes characters from a position; returns how many were deleted.")
        .complexity("O(log N + M) for a text of N characters and M deleted")
        .args(&[
            ArgDoc::key("key"),
            ArgDoc::integer("index"),
            ArgDoc::integer("count"),
        ]),
    CommandSpec::new("text.get", -2, text_get)
        .flags(Flags::READONLY)
        .keys(1, 1, 1)
        .group(Group::Module)
        .since("0.1.0")
        .summary("Returns a text, or the characters from start to end inclusive.")
        .args(&[
            ArgDoc::key("key"),
            ArgDoc::block("range", &[ArgDoc::integer("start"), ArgDoc::integer("end")]).optional(),
        ]),
    CommandSpec::new("text.len", 2, text_len)
        .flags(Flags::READONLY.with(Flags::FAST))
        .keys(1, 1, 1)
        .group(Group::Module)
        .since("0.1.0")
        .summary("Returns the length of a text in characters.")
        .args(&[ArgDoc::key("key")]),
];

fn position(ctx: &Ctx<'_>, i: usize, name: &str) -> Result<u64, CommandError> {
    let n = ctx.int_arg(i)?;
    u64::try_from(n)
        .map_err(|_| CommandError::owned(format!("ERR {name} must be a non-negative integer")))
}

fn text_insert(ctx: &mut Ctx<'_>) -> CmdResult {
    let index = position(ctx, 2, "index")?;
    let text = std::str::from_utf8(ctx.arg(3))
        .map_err(|_| CommandError::msg("ERR text must be valid UTF-8"))?;
    check_value_size(ctx, text.len())?;
    let max = ctx.state.config.limits.value_bytes_max;
    let key = ctx.arg(1);
    let len = write(ctx, key, |v, ts| {
        if !text_fits(text_of(v), text.len() as u64, max) {
            return Ok((None, None));
        }
        let delta = v.text_insert(ts, index, text)?;
        Ok((Some(text_of(v).map_or(0, Rga::len)), delta))
    })?;
    let len = len.ok_or_else(|| {
        CommandError::owned(format!(
            "ERR the text would exceed limits.value_bytes_max ({max} bytes)"
        ))
    })?;
    ctx.reply.integer(len as i64);
    Ok(())
}

/// Whether `current` (`None`: no text yet) plus `added` bytes of UTF-8 stays within `max`
/// bytes. A character takes one to four bytes, so the character count decides without
/// rendering the text unless it is within a factor of four of the limit.
fn text_fits(current: Option<&Rga>, added: u64, max: u64) -> bool {
    let chars = current.map_or(0, Rga::len);
    if chars.saturating_mul(4).saturating_add(added) <= max {
        return true;
    }
    if chars.saturating_add(added) > max {
        return false;
    }
    let bytes = current.map_or(0, |t| t.to_string().len() as u64);
    bytes.saturating_add(added) <= max
}

fn text_delete(ctx: &mut Ctx<'_>) -> CmdResult {
    let index = position(ctx, 2, "index")?;
    let count = position(ctx, 3, "count")?;
    let key = ctx.arg(1);
    let deleted = write(ctx, key, |v, ts| {
        if !v.exists() {
            // Nothing to delete in a missing key (Redis-style: a missing key reads as empty).
            return Ok((0, None));
        }
        v.text_delete(ts, index, count).map(|(d, n)| (n, d))
    })?;
    ctx.reply.integer(deleted as i64);
    Ok(())
}

/// The text of a value whose visible type is text.
fn text_of(value: &Value) -> Option<&Rga> {
    match value.view()? {
        View::Text(t) => Some(t),
        _ => None,
    }
}

/// Runs `f` on the text of `key` (`None` if missing); `WRONGTYPE` for another type.
fn with_text<R>(ctx: &Ctx<'_>, f: impl FnOnce(Option<&Rga>) -> R) -> Result<R, CommandError> {
    read(ctx.state, ctx.args.arg(1), |v| {
        match v.and_then(Value::view) {
            None => Ok(f(None)),
            Some(View::Text(t)) => Ok(f(Some(t))),
            Some(_) => Err(CommandError::WrongType),
        }
    })
}

fn text_get(ctx: &mut Ctx<'_>) -> CmdResult {
    let range = match ctx.args.len() {
        2 => None,
        4 => Some((ctx.int_arg(2)?, ctx.int_arg(3)?)),
        _ => return Err(CommandError::Syntax),
    };
    let text = with_text(ctx, |t| {
        t.map(|t| match range {
            None => t.to_string(),
            Some((start, end)) => {
                let (s, e) = inclusive_range(start, end, t.len());
                t.slice(s, e)
            }
        })
    })?;
    match text {
        Some(t) => ctx.reply.bulk(t.as_bytes()),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// `GETRANGE` semantics: inclusive `start..=end`, negative counted from the end, clamped;
/// returns the half-open character range.
fn inclusive_range(start: i64, end: i64, len: u64) -> (u64, u64) {
    let len = len as i128;
    let resolve = |i: i64| {
        let i = i128::from(i);
        if i < 0 { (len + i).max(0) } else { i }
    };
    let (s, e) = (resolve(start), resolve(end).min(len - 1));
    if s > e || len == 0 {
        (0, 0)
    } else {
        (s as u64, (e + 1) as u64)
    }
}

fn text_len(ctx: &mut Ctx<'_>) -> CmdResult {
    let n = with_text(ctx, |t| t.map_or(0, Rga::len))?;
    ctx.reply.integer(n as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::inclusive_range;

    #[test]
    fn text_size_is_counted_in_bytes() {
        use super::text_fits;
        use crdt::{NodeId, Rga};
        let mut t = Rga::new();
        t.insert(NodeId(1), 0, &"é".repeat(10)).unwrap();
        assert!(text_fits(None, 10, 10));
        assert!(!text_fits(None, 11, 10));
        assert!(text_fits(Some(&t), 4, 24));
        assert!(!text_fits(Some(&t), 5, 24), "20 bytes of text, not 10");
        assert!(!text_fits(Some(&t), 1, 15));
        assert!(text_fits(Some(&t), 20, 100));
    }

    #[test]
    fn ranges_follow_getrange() {
        assert_eq!(inclusive_range(0, -1, 5), (0, 5));
        assert_eq!(inclusive_range(1, 2, 5), (1, 3));
        assert_eq!(inclusive_range(-3, -2, 5), (2, 4));
        assert_eq!(inclusive_range(3, 1, 5), (0, 0));
        assert_eq!(inclusive_range(0, 100, 5), (0, 5));
        assert_eq!(inclusive_range(-100, 0, 5), (0, 1));
        assert_eq!(inclusive_range(0, -1, 0), (0, 0));
    }
}
