//! CRDT.INFO key: what a key holds as a CRDT, for people watching merges.
//!
//! A map with the key's `type` and `crdt`, whether it `exists` (a deleted key can remain as a
//! tombstone), and its `parts`: usually one, more after a type conflict (the visible one has
//! `visible` true; see `crdt::value` for the rule). Each part has its `created` HLC timestamp
//! and what makes it that CRDT: a register's winning node and timestamp and its live entries;
//! a counter's contribution per node; a set's size and causal context; a text's length, runs
//! and characters per node. Timestamps read `physical_ms.logical@node`.

use crdt::value::{Data, Part};
use crdt::{CausalContext, Timestamp, Value};

use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, Ctx};
use crate::resp::ReplyWriter;

pub(crate) const COMMANDS: &[CommandSpec] = &[CommandSpec::new("crdt.info", 2, crdt_info)
    .flags(Flags::READONLY)
    .keys(1, 1, 1)
    .group(Group::Module)
    .since("0.1.0")
    .summary(
        "Describes the CRDT state of a key: type, parts, per-node contributions, causal context.",
    )
    .args(&[ArgDoc::key("key")])];

fn crdt_info(ctx: &mut Ctx<'_>) -> CmdResult {
    let reply = &mut *ctx.reply;
    ctx.state.keyspace.read(ctx.args.arg(1), |v| match v {
        None => reply.null(),
        Some(v) => describe(reply, v),
    });
    Ok(())
}

fn hlc(ts: Timestamp) -> String {
    format!("{}.{}@{}", ts.physical_ms, ts.logical, ts.node)
}

fn describe(reply: &mut ReplyWriter, value: &Value) {
    let visible = value.visible().map(Part::kind);
    reply.map(4);
    reply.bulk(b"type");
    reply.bulk(visible.map_or("none", crdt::Kind::redis_type).as_bytes());
    reply.bulk(b"crdt");
    reply.bulk(
        visible
            .map_or("tombstone", crdt::Kind::crdt_name)
            .as_bytes(),
    );
    reply.bulk(b"exists");
    reply.boolean(value.exists());
    reply.bulk(b"parts");
    reply.array(value.parts().len());
    for part in value.parts() {
        describe_part(reply, part, Some(part.kind()) == visible);
    }
}

fn describe_part(reply: &mut ReplyWriter, part: &Part, visible: bool) {
    let common = 3;
    let (extra, data) = match part.data() {
        Data::Register(_) => (4, part.data()),
        Data::PnCounter(_) | Data::GCounter(_) => (2, part.data()),
        Data::Set(_) => (2, part.data()),
        Data::Text(_) => (4, part.data()),
    };
    reply.map(common + extra);
    reply.bulk(b"crdt");
    reply.bulk(part.kind().crdt_name().as_bytes());
    reply.bulk(b"created");
    reply.bulk(hlc(part.created()).as_bytes());
    reply.bulk(b"visible");
    reply.boolean(visible);
    match data {
        Data::Register(r) => {
            let winner = r.winner();
            reply.bulk(b"winner_node");
            match winner {
                Some(w) => reply.integer_i128(i128::from(w.ts.node.get())),
                None => reply.null(),
            }
            reply.bulk(b"winner_hlc");
            match winner {
                Some(w) => reply.bulk(hlc(w.ts).as_bytes()),
                None => reply.null(),
            }
            reply.bulk(b"entries");
            reply.integer(r.entries().len() as i64);
            reply.bulk(b"context");
            context(reply, &r.context());
        }
        Data::PnCounter(c) | Data::GCounter(c) => {
            reply.bulk(b"value");
            reply.integer_i128(c.value());
            reply.bulk(b"contributions");
            reply.array(c.tallies().len());
            for (node, t) in c.tallies() {
                reply.map(4);
                reply.bulk(b"node");
                reply.integer_i128(i128::from(node.get()));
                reply.bulk(b"value");
                reply.integer_i128(t.value());
                reply.bulk(b"increments");
                reply.integer_i128(i128::from(t.p));
                reply.bulk(b"decrements");
                reply.integer_i128(i128::from(t.n));
            }
        }
        Data::Set(s) => {
            reply.bulk(b"members");
            reply.integer(s.len() as i64);
            reply.bulk(b"context");
            context(reply, s.context());
        }
        Data::Text(t) => {
            let stats = t.stats();
            reply.bulk(b"length");
            reply.integer_i128(i128::from(stats.visible_chars));
            reply.bulk(b"chars_with_tombstones");
            reply.integer_i128(i128::from(stats.total_chars));
            reply.bulk(b"runs");
            reply.integer_i128(i128::from(stats.runs));
            reply.bulk(b"chars_by_node");
            reply.map(stats.chars_by_node.len());
            for (node, n) in &stats.chars_by_node {
                reply.bulk(node.to_string().as_bytes());
                reply.integer_i128(i128::from(*n));
            }
        }
    }
}

/// A causal context as `node:counter` entries of its version vector, plus any dots seen out of
/// order as `node:counter*`.
fn context(reply: &mut ReplyWriter, ctx: &CausalContext) {
    reply.array(ctx.vv().len() + ctx.cloud().len());
    for (node, c) in ctx.vv().iter() {
        reply.bulk(format!("{node}:{c}").as_bytes());
    }
    for d in ctx.cloud() {
        reply.bulk(format!("{}:{}*", d.node, d.counter).as_bytes());
    }
}
