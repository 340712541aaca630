//! CLUSTER: this node's place in the cluster, and fault injection for drills and tests.
//!
//! * `CLUSTER MYID` — the node id.
//! * `CLUSTER INFO` — `name:value` lines: membership, replication mode, caught-up, staleness,
//!   per-peer lag, replication counters (the same fields as `INFO replication`).
//! * `CLUSTER MEMBERS` — one line per member: id, address, SWIM state, lag, freshness.
//! * `CLUSTER PARTITION id [id ...]` — cuts all traffic with those peers at the transport,
//!   datagrams and streams, both directions (adds to the current cut).
//! * `CLUSTER HEAL` — restores traffic with every cut peer.
//!
//! On a standalone node every subcommand but HELP answers Redis' own
//! `ERR This instance has cluster support disabled`.

use std::sync::Arc;

use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crate::cluster::Cluster;
use crate::info::InfoWriter;

const SUB: Flags = Flags::NOSCRIPT.with(Flags::LOADING).with(Flags::STALE);

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("cluster|myid", 2, myid)
        .flags(SUB)
        .group(Group::Cluster)
        .since("3.0.0")
        .summary("Returns the ID of this node."),
    CommandSpec::new("cluster|info", 2, info)
        .flags(SUB)
        .group(Group::Cluster)
        .since("3.0.0")
        .summary("Returns membership, replication mode, freshness and counters of this node.")
        .tips(&["nondeterministic_output"]),
    CommandSpec::new("cluster|members", 2, members)
        .flags(SUB)
        .group(Group::Cluster)
        .since("0.1.0")
        .summary("Lists the members this node knows, with their state and replication lag.")
        .tips(&["nondeterministic_output"]),
    CommandSpec::new("cluster|partition", -3, partition)
        .flags(SUB.with(Flags::ADMIN))
        .group(Group::Cluster)
        .since("0.1.0")
        .summary("Cuts all traffic with the given peers until CLUSTER HEAL (fault injection).")
        .args(&[ArgDoc::integer("node-id").multiple()]),
    CommandSpec::new("cluster|heal", 2, heal)
        .flags(SUB.with(Flags::ADMIN))
        .group(Group::Cluster)
        .since("0.1.0")
        .summary("Restores traffic with every peer cut by CLUSTER PARTITION."),
    CommandSpec::new("cluster|help", 2, help)
        .flags(Flags::LOADING.with(Flags::STALE))
        .group(Group::Cluster)
        .since("3.0.0")
        .summary("Returns helpful text about the different subcommands."),
];

pub(crate) const COMMANDS: &[CommandSpec] = &[CommandSpec::container("cluster", SUBCOMMANDS)
    .group(Group::Cluster)
    .since("3.0.0")
    .summary("A container for cluster commands.")];

fn cluster(ctx: &Ctx<'_>) -> Result<Arc<Cluster>, CommandError> {
    ctx.state.cluster.clone().ok_or(CommandError::msg(
        "ERR This instance has cluster support disabled",
    ))
}

fn myid(ctx: &mut Ctx<'_>) -> CmdResult {
    let c = cluster(ctx)?;
    ctx.reply.bulk(c.node_id.to_string().as_bytes());
    Ok(())
}

fn info(ctx: &mut Ctx<'_>) -> CmdResult {
    let c = cluster(ctx)?;
    let mut out = InfoWriter::default();
    crate::cluster::info::fields(&c, ctx.state, &mut out);
    ctx.reply.verbatim(b"txt", out.as_str().as_bytes());
    Ok(())
}

fn members(ctx: &mut Ctx<'_>) -> CmdResult {
    let c = cluster(ctx)?;
    let text = crate::cluster::info::members_text(&c);
    ctx.reply.verbatim(b"txt", text.as_bytes());
    Ok(())
}

fn partition(ctx: &mut Ctx<'_>) -> CmdResult {
    let c = cluster(ctx)?;
    let mut ids = Vec::with_capacity(ctx.args.len() - 2);
    for arg in ctx.args.iter().skip(2) {
        let id = std::str::from_utf8(arg)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&id| id != 0)
            .ok_or(CommandError::msg(
                "ERR node id must be an integer of 1 or more",
            ))?;
        if id == c.node_id.get() {
            return Err(CommandError::msg("ERR cannot partition a node from itself"));
        }
        ids.push(crdt::NodeId(id));
    }
    c.transport.partition(&ids);
    ctx.reply.ok();
    Ok(())
}

fn heal(ctx: &mut Ctx<'_>) -> CmdResult {
    let c = cluster(ctx)?;
    c.transport.heal();
    ctx.reply.ok();
    Ok(())
}

fn help(ctx: &mut Ctx<'_>) -> CmdResult {
    super::client::write_help(
        ctx,
        "CLUSTER",
        &[
            "MYID",
            "    Return the node id.",
            "INFO",
            "    Return membership, replication mode, freshness and counters.",
            "MEMBERS",
            "    Return one line per member: id, address, state, lag_ms, synced_at, in_sync.",
            "PARTITION <node-id> [<node-id> ...]",
            "    Cut all traffic with these peers until CLUSTER HEAL.",
            "HEAL",
            "    Restore traffic with every peer cut by CLUSTER PARTITION.",
        ],
    );
    Ok(())
}
