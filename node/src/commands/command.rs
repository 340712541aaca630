//! COMMAND: the command table as clients see it. Everything here is generated from the specs,
//! in the reply shapes of Redis 7 (redis-cli reads COMMAND DOCS for its hints, cluster-aware
//! clients read key positions from COMMAND INFO).

use super::client::write_help;
use super::spec::{ArgDoc, ArgKind, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crate::glob::glob_match;
use crate::resp::ReplyWriter;

const SUB: Flags = Flags::LOADING.with(Flags::STALE);

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("command|count", 2, count)
        .flags(SUB)
        .group(Group::Server)
        .since("2.8.13")
        .summary("Returns a count of commands."),
    CommandSpec::new("command|list", -2, list)
        .flags(SUB)
        .group(Group::Server)
        .since("7.0.0")
        .summary("Returns a list of command names.")
        .complexity("O(N) where N is the total number of commands")
        .args(&[ArgDoc::one_of(
            "filterby",
            &[
                ArgDoc::string("module-name").with_token("MODULE"),
                ArgDoc::string("category").with_token("ACLCAT"),
                ArgDoc::pattern("pattern").with_token("PATTERN"),
            ],
        )
        .with_token("FILTERBY")
        .optional()])
        .tips(&["nondeterministic_output_order"]),
    CommandSpec::new("command|info", -2, info)
        .flags(SUB)
        .group(Group::Server)
        .since("2.8.13")
        .summary("Returns information about one, multiple or all commands.")
        .complexity("O(N) where N is the number of commands to look up")
        .args(&[ArgDoc::string("command-name").optional().multiple()])
        .tips(&["nondeterministic_output_order"]),
    CommandSpec::new("command|docs", -2, docs)
        .flags(SUB)
        .group(Group::Server)
        .since("7.0.0")
        .summary("Returns documentary information about one, multiple or all commands.")
        .complexity("O(N) where N is the number of commands to look up")
        .args(&[ArgDoc::string("command-name").optional().multiple()])
        .tips(&["nondeterministic_output_order"]),
    CommandSpec::new("command|getkeys", -3, getkeys)
        .flags(SUB)
        .group(Group::Server)
        .since("2.8.13")
        .summary("Extracts the key names from an arbitrary command.")
        .complexity("O(N) where N is the number of arguments to the command")
        .args(&[
            ArgDoc::string("command"),
            ArgDoc::string("arg").optional().multiple(),
        ]),
    CommandSpec::new("command|help", 2, help)
        .flags(SUB)
        .group(Group::Server)
        .since("5.0.0")
        .summary("Returns helpful text about the different subcommands."),
];

pub(crate) const COMMANDS: &[CommandSpec] =
    &[CommandSpec::container_or("command", SUBCOMMANDS, all)
        .flags(SUB)
        .group(Group::Server)
        .since("2.8.13")
        .summary("Returns detailed information about all commands.")
        .complexity("O(N) where N is the total number of commands")
        .tips(&["nondeterministic_output_order"])];

fn all(ctx: &mut Ctx<'_>) -> CmdResult {
    let commands = ctx.state.commands.top_level();
    ctx.reply.array(commands.len());
    for spec in commands {
        write_info(ctx.reply, spec);
    }
    Ok(())
}

fn count(ctx: &mut Ctx<'_>) -> CmdResult {
    ctx.reply
        .integer(ctx.state.commands.top_level().len() as i64);
    Ok(())
}

/// Every command and subcommand, containers before their subcommands.
fn every_spec(ctx: &Ctx<'_>) -> Vec<&'static CommandSpec> {
    ctx.state
        .commands
        .top_level()
        .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands().iter()))
        .collect()
}

fn list(ctx: &mut Ctx<'_>) -> CmdResult {
    let specs = every_spec(ctx);
    let names: Vec<&str> = match ctx.args.len() {
        2 => specs.iter().map(|s| s.name).collect(),
        5 if ctx.arg(2).eq_ignore_ascii_case(b"filterby") => {
            let (by, value) = (ctx.arg(3), ctx.arg(4));
            if by.eq_ignore_ascii_case(b"module") {
                // No module is loaded.
                Vec::new()
            } else if by.eq_ignore_ascii_case(b"aclcat") {
                specs
                    .iter()
                    .filter(|s| {
                        s.acl_categories()
                            .any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(value))
                    })
                    .map(|s| s.name)
                    .collect()
            } else if by.eq_ignore_ascii_case(b"pattern") {
                specs
                    .iter()
                    .filter(|s| glob_match(value, s.name.as_bytes(), true))
                    .map(|s| s.name)
                    .collect()
            } else {
                return Err(CommandError::Syntax);
            }
        }
        _ => return Err(CommandError::Syntax),
    };
    ctx.reply.array(names.len());
    for name in names {
        ctx.reply.bulk(name.as_bytes());
    }
    Ok(())
}

/// The spec named `name`, which may be `container|sub`.
fn find(ctx: &Ctx<'_>, name: &[u8]) -> Option<&'static CommandSpec> {
    match memchr::memchr(b'|', name) {
        Some(bar) => {
            let (_, container) = ctx.state.commands.lookup(&name[..bar])?;
            ctx.state
                .commands
                .lookup_sub(container, &name[bar + 1..])
                .map(|(_, s)| s)
        }
        None => ctx.state.commands.lookup(name).map(|(_, s)| s),
    }
}

fn info(ctx: &mut Ctx<'_>) -> CmdResult {
    if ctx.args.len() == 2 {
        return all(ctx);
    }
    let names = ctx.args.skip(2);
    ctx.reply.array(names.len());
    for name in names.iter() {
        match find(ctx, name) {
            Some(spec) => write_info(ctx.reply, spec),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step, ACL categories, tips,
/// key specifications, subcommands.
fn write_info(r: &mut ReplyWriter, spec: &CommandSpec) {
    r.array(10);
    r.bulk(spec.name.as_bytes());
    r.integer(i64::from(spec.arity));
    let flags: Vec<&str> = spec.flags.names().collect();
    r.set(flags.len());
    for flag in flags {
        r.simple(flag);
    }
    r.integer(i64::from(spec.keys.first));
    r.integer(i64::from(spec.keys.last));
    r.integer(i64::from(spec.keys.step));
    let categories: Vec<&str> = spec.acl_categories().collect();
    r.set(categories.len());
    for category in categories {
        r.simple(category);
    }
    r.set(spec.tips.len());
    for tip in spec.tips {
        r.bulk(tip.as_bytes());
    }
    write_key_specs(r, spec);
    r.set(spec.subcommands().len());
    for sub in spec.subcommands() {
        write_info(r, sub);
    }
}

/// The key specification equivalent to the legacy (first, last, step) positions.
fn write_key_specs(r: &mut ReplyWriter, spec: &CommandSpec) {
    let k = spec.keys;
    if k.first == 0 {
        r.set(0);
        return;
    }
    let access: [&str; 2] = if spec.flags.contains(Flags::WRITE) {
        ["RW", "update"]
    } else {
        ["RO", "access"]
    };
    r.set(1);
    r.map(3);
    r.bulk(b"flags");
    r.set(2);
    r.simple(access[0]);
    r.simple(access[1]);
    r.bulk(b"begin_search");
    r.map(2);
    r.bulk(b"type");
    r.bulk(b"index");
    r.bulk(b"spec");
    r.map(1);
    r.bulk(b"index");
    r.integer(i64::from(k.first));
    r.bulk(b"find_keys");
    r.map(2);
    r.bulk(b"type");
    r.bulk(b"range");
    r.bulk(b"spec");
    r.map(3);
    r.bulk(b"lastkey");
    r.integer(i64::from(if k.last >= 0 {
        k.last - k.first
    } else {
        k.last
    }));
    r.bulk(b"keystep");
    r.integer(i64::from(k.step));
    r.bulk(b"limit");
    r.integer(0);
}

fn docs(ctx: &mut Ctx<'_>) -> CmdResult {
    let specs: Vec<&'static CommandSpec> = if ctx.args.len() == 2 {
        ctx.state.commands.top_level().collect()
    } else {
        ctx.args
            .skip(2)
            .iter()
            .filter_map(|name| find(ctx, name))
            .collect()
    };
    ctx.reply.map(specs.len());
    for spec in specs {
        ctx.reply.bulk(spec.name.as_bytes());
        write_doc(ctx.reply, spec);
    }
    Ok(())
}

/// One COMMAND DOCS entry: summary, since, group, complexity, then arguments and subcommands
/// when there are any.
fn write_doc(r: &mut ReplyWriter, spec: &CommandSpec) {
    let subs = spec.subcommands();
    r.map(4 + usize::from(!spec.args.is_empty()) + usize::from(!subs.is_empty()));
    r.bulk(b"summary");
    r.bulk(spec.summary.as_bytes());
    r.bulk(b"since");
    r.bulk(spec.since.as_bytes());
    r.bulk(b"group");
    r.bulk(spec.group.as_str().as_bytes());
    r.bulk(b"complexity");
    r.bulk(spec.complexity.as_bytes());
    if !spec.args.is_empty() {
        r.bulk(b"arguments");
        write_args(r, spec.args);
    }
    if !subs.is_empty() {
        r.bulk(b"subcommands");
        r.map(subs.len());
        for sub in subs {
            r.bulk(sub.name.as_bytes());
            write_doc(r, sub);
        }
    }
}

/// The arguments as COMMAND DOCS shows them.
fn write_args(r: &mut ReplyWriter, args: &[ArgDoc]) {
    r.array(args.len());
    for arg in args {
        let nested = match arg.kind {
            ArgKind::OneOf(nested) | ArgKind::Block(nested) => Some(nested),
            _ => None,
        };
        let is_key = arg.kind == ArgKind::Key;
        let flags: Vec<&str> = [
            arg.optional.then_some("optional"),
            arg.multiple.then_some("multiple"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let fields = 2
            + usize::from(is_key)
            + usize::from(arg.token.is_some())
            + usize::from(!flags.is_empty())
            + usize::from(nested.is_some());
        r.map(fields);
        r.bulk(b"name");
        r.bulk(arg.name.as_bytes());
        r.bulk(b"type");
        r.bulk(arg.kind.as_str().as_bytes());
        if is_key {
            // All key arguments of a command share its one key specification.
            r.bulk(b"key_spec_index");
            r.integer(0);
        }
        if let Some(token) = arg.token {
            r.bulk(b"token");
            r.bulk(token.as_bytes());
        }
        if !flags.is_empty() {
            r.bulk(b"flags");
            r.set(flags.len());
            for flag in flags {
                r.simple(flag);
            }
        }
        if let Some(nested) = nested {
            r.bulk(b"arguments");
            write_args(r, nested);
        }
    }
}

fn getkeys(ctx: &mut Ctx<'_>) -> CmdResult {
    let target = ctx.args.skip(2);
    let Some((_, spec)) = ctx.state.commands.lookup(target.arg(0)) else {
        return Err(CommandError::msg("ERR Invalid command specified"));
    };
    let spec = match spec.subcommands() {
        [] => spec,
        _ => target
            .get(1)
            .and_then(|sub| ctx.state.commands.lookup_sub(spec, sub))
            .map_or(spec, |(_, s)| s),
    };
    if !spec.arity_ok(target.len()) {
        return Err(CommandError::msg(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    if !spec.keys.has_keys() {
        return Err(CommandError::msg("ERR The command has no key arguments"));
    }
    let positions: Vec<usize> = spec.keys.positions(target.len()).collect();
    ctx.reply.array(positions.len());
    for p in positions {
        ctx.reply.bulk(target.arg(p));
    }
    Ok(())
}

fn help(ctx: &mut Ctx<'_>) -> CmdResult {
    write_help(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests;
