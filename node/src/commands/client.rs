//! CLIENT: the connection's identity and the list of connected clients.

use super::connection::{BAD_CLIENT_NAME, valid_client_name};
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, CommandError, Ctx};
use crate::resp::parse_i64;

const SUB: Flags = Flags::NOSCRIPT.with(Flags::LOADING).with(Flags::STALE);

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("client|id", 2, id)
        .flags(SUB)
        .group(Group::Connection)
        .since("5.0.0")
        .summary("Returns the unique client ID of the connection."),
    CommandSpec::new("client|setname", 3, setname)
        .flags(SUB)
        .group(Group::Connection)
        .since("2.6.9")
        .summary("Sets the connection name.")
        .args(&[ArgDoc::string("connection-name")]),
    CommandSpec::new("client|getname", 2, getname)
        .flags(SUB)
        .group(Group::Connection)
        .since("2.6.9")
        .summary("Returns the name of the connection."),
    CommandSpec::new("client|setinfo", 4, setinfo)
        .flags(SUB)
        .group(Group::Connection)
        .since("7.2.0")
        .summary("Sets information specific to the client or connection.")
        .args(&[ArgDoc::one_of(
            "attr",
            &[
                ArgDoc::string("libname").with_token("LIB-NAME"),
                ArgDoc::string("libver").with_token("LIB-VER"),
            ],
        )])
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    CommandSpec::new("client|info", 2, info)
        .flags(SUB)
        .group(Group::Connection)
        .since("6.2.0")
        .summary("Returns information about the connection.")
        .tips(&["nondeterministic_output"]),
    CommandSpec::new("client|list", -2, list)
        .flags(SUB.with(Flags::ADMIN))
        .group(Group::Connection)
        .since("2.4.0")
        .summary("Lists open connections.")
        .complexity("O(N) where N is the number of client connections")
        .args(&[
            ArgDoc::one_of(
                "client-type",
                &[
                    ArgDoc::token("normal", "NORMAL"),
                    ArgDoc::token("master", "MASTER"),
                    ArgDoc::token("replica", "REPLICA"),
                    ArgDoc::token("pubsub", "PUBSUB"),
                ],
            )
            .with_token("TYPE")
            .optional(),
            ArgDoc::integer("client-id")
                .with_token("ID")
                .optional()
                .multiple(),
        ])
        .tips(&["nondeterministic_output"]),
    CommandSpec::new("client|help", 2, help)
        .flags(Flags::LOADING.with(Flags::STALE))
        .group(Group::Connection)
        .since("5.0.0")
        .summary("Returns helpful text about the different subcommands."),
];

pub(crate) const COMMANDS: &[CommandSpec] = &[CommandSpec::container("client", SUBCOMMANDS)
    .group(Group::Connection)
    .since("2.4.0")
    .summary("A container for client connection commands.")];

fn id(ctx: &mut Ctx<'_>) -> CmdResult {
    ctx.reply
        .integer(i64::try_from(ctx.session.id).unwrap_or(i64::MAX));
    Ok(())
}

fn setname(ctx: &mut Ctx<'_>) -> CmdResult {
    let name = ctx.arg(2);
    if !valid_client_name(name) {
        return Err(BAD_CLIENT_NAME);
    }
    ctx.session
        .client
        .update_meta(|m| m.name = (!name.is_empty()).then(|| name.into()));
    ctx.reply.ok();
    Ok(())
}

fn getname(ctx: &mut Ctx<'_>) -> CmdResult {
    match ctx.session.client.name() {
        Some(name) => ctx.reply.bulk(&name),
        None => ctx.reply.null(),
    }
    Ok(())
}

fn setinfo(ctx: &mut Ctx<'_>) -> CmdResult {
    let (attr, value) = (ctx.arg(2), ctx.arg(3));
    let lib_name = attr.eq_ignore_ascii_case(b"lib-name");
    if !lib_name && !attr.eq_ignore_ascii_case(b"lib-ver") {
        let attr = String::from_utf8_lossy(attr);
        return Err(CommandError::owned(format!(
            "ERR Unrecognized option '{attr}'"
        )));
    }
    if !valid_client_name(value) {
        let attr = String::from_utf8_lossy(attr);
        return Err(CommandError::owned(format!(
            "ERR {attr} cannot contain spaces, newlines or special characters."
        )));
    }
    let value = (!value.is_empty()).then(|| value.into());
    ctx.session.client.update_meta(|m| {
        if lib_name {
            m.lib_name = value;
        } else {
            m.lib_ver = value;
        }
    });
    ctx.reply.ok();
    Ok(())
}

fn info(ctx: &mut Ctx<'_>) -> CmdResult {
    let mut line = Vec::new();
    ctx.session.client.render(&ctx.state.commands, &mut line);
    ctx.reply.verbatim(b"txt", &line);
    Ok(())
}

/// Which clients CLIENT LIST shows.
enum Filter {
    All,
    None,
    Ids(Vec<u64>),
}

fn list_filter(ctx: &Ctx<'_>) -> Result<Filter, CommandError> {
    let argc = ctx.args.len();
    if argc == 2 {
        return Ok(Filter::All);
    }
    let option = ctx.arg(2);
    if argc == 4 && option.eq_ignore_ascii_case(b"type") {
        let kind = ctx.arg(3);
        // Every crdtkv client is a normal client: there are no replicas or pub/sub clients.
        return if kind.eq_ignore_ascii_case(b"normal") {
            Ok(Filter::All)
        } else if [&b"master"[..], b"replica", b"slave", b"pubsub"]
            .iter()
            .any(|k| kind.eq_ignore_ascii_case(k))
        {
            Ok(Filter::None)
        } else {
            let kind = String::from_utf8_lossy(kind);
            Err(CommandError::owned(format!(
                "ERR Unknown client type '{kind}'"
            )))
        };
    }
    if argc > 3 && option.eq_ignore_ascii_case(b"id") {
        let ids = ctx
            .args
            .skip(3)
            .iter()
            .map(|a| {
                parse_i64(a)
                    .filter(|&id| id >= 1)
                    .map(|id| id as u64)
                    .ok_or(CommandError::msg("ERR Invalid client ID"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Filter::Ids(ids));
    }
    Err(CommandError::Syntax)
}

fn list(ctx: &mut Ctx<'_>) -> CmdResult {
    let filter = list_filter(ctx)?;
    let mut text = Vec::new();
    for client in ctx.state.clients.snapshot() {
        let shown = match &filter {
            Filter::All => true,
            Filter::None => false,
            Filter::Ids(ids) => ids.contains(&client.id),
        };
        if shown {
            client.render(&ctx.state.commands, &mut text);
        }
    }
    ctx.reply.verbatim(b"txt", &text);
    Ok(())
}

/// Writes a HELP reply: the usage line, the given lines, and the HELP entry Redis appends.
pub(super) fn write_help(ctx: &mut Ctx<'_>, container: &str, lines: &[&str]) {
    ctx.reply.array(lines.len() + 3);
    ctx.reply.simple(&format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for line in lines {
        ctx.reply.simple(line);
    }
    ctx.reply.simple("HELP");
    ctx.reply.simple("    Prints this help.");
}

fn help(ctx: &mut Ctx<'_>) -> CmdResult {
    write_help(
        ctx,
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "    * ID id [id ...]",
            "      Return clients of specified IDs only.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::test_support::TestClient;
    use crate::config::Config;

    #[test]
    fn identity_subcommands() {
        let mut c = TestClient::new(Config::default());
        assert_eq!(c.run(&["CLIENT", "ID"]), format!(":{}\r\n", c.session.id));
        assert_eq!(c.run(&["CLIENT", "GETNAME"]), "$-1\r\n");
        assert_eq!(c.run(&["CLIENT", "SETNAME", "worker-1"]), "+OK\r\n");
        assert_eq!(c.run(&["CLIENT", "GETNAME"]), "$8\r\nworker-1\r\n");
        assert_eq!(
            c.run(&["CLIENT", "SETNAME", "a b"]),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
        assert_eq!(c.run(&["CLIENT", "SETNAME", ""]), "+OK\r\n");
        assert_eq!(c.run(&["CLIENT", "GETNAME"]), "$-1\r\n");
        assert_eq!(
            c.run(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
            "+OK\r\n"
        );
        assert_eq!(c.run(&["CLIENT", "SETINFO", "lib-ver", "5.0"]), "+OK\r\n");
        assert_eq!(
            c.run(&["CLIENT", "SETINFO", "foo", "x"]),
            "-ERR Unrecognized option 'foo'\r\n"
        );
        assert_eq!(
            c.run(&["CLIENT", "SETINFO", "LIB-NAME", "a b"]),
            "-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n"
        );
        let info = c.run(&["CLIENT", "INFO"]);
        assert!(info.contains(" cmd=client|info "), "{info}");
        assert!(info.contains(" lib-name=redis-py lib-ver=5.0\n"), "{info}");
    }

    #[test]
    fn errors_and_list_filters() {
        let mut c = TestClient::new(Config::default());
        let mut other = TestClient::connect(&c.state);
        other.run(&["CLIENT", "SETNAME", "other"]);
        assert_eq!(
            c.run(&["CLIENT"]),
            "-ERR wrong number of arguments for 'client' command\r\n"
        );
        assert_eq!(
            c.run(&["client", "foo"]),
            "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n"
        );
        assert_eq!(
            c.run(&["CLIENT", "SETNAME"]),
            "-ERR wrong number of arguments for 'client|setname' command\r\n"
        );
        let all = c.run(&["CLIENT", "LIST"]);
        assert_eq!(all.matches("id=").count(), 2, "{all}");
        assert!(all.contains("name=other "));
        assert_eq!(
            c.run(&["CLIENT", "LIST", "TYPE", "normal"])
                .matches("id=")
                .count(),
            2
        );
        assert_eq!(c.run(&["CLIENT", "LIST", "TYPE", "pubsub"]), "$0\r\n\r\n");
        assert_eq!(
            c.run(&["CLIENT", "LIST", "TYPE", "foo"]),
            "-ERR Unknown client type 'foo'\r\n"
        );
        let id = other.session.id.to_string();
        let one = c.run(&["CLIENT", "LIST", "ID", &id, "999999"]);
        assert_eq!(one.matches("id=").count(), 1);
        assert!(one.contains("name=other"));
        assert_eq!(
            c.run(&["CLIENT", "LIST", "ID", "abc"]),
            "-ERR Invalid client ID\r\n"
        );
        assert_eq!(c.run(&["CLIENT", "LIST", "foo"]), "-ERR syntax error\r\n");
        let help = c.run(&["CLIENT", "HELP"]);
        assert!(help.starts_with("*21\r\n+CLIENT <subcommand>"), "{help}");
    }
}
