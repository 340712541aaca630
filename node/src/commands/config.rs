//! CONFIG GET: read the running configuration.
//!
//! Two sets of names match the patterns: the Redis parameters that tools ask for (`port`,
//! `maxclients`, `appendfsync`, `save`, ...), mapped onto crdtkv's settings, and every key of
//! crdtkv's own config tree under its dotted name (`server.port`, `limits.bulk_bytes_max`).
//! Like Redis, `requirepass` is shown to clients that could authenticate, and an unset password
//! is the empty string. The configuration cannot be changed at run time: CONFIG SET is not a
//! command here (restart with a changed file instead).

use super::client::write_help;
use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, Ctx};
use crate::config::{Config, flatten};
use crate::glob::glob_match;
use crate::info::fsync_name;

const SUB: Flags = Flags::ADMIN
    .with(Flags::NOSCRIPT)
    .with(Flags::LOADING)
    .with(Flags::STALE);

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("config|get", -3, get)
        .flags(SUB)
        .group(Group::Server)
        .since("2.0.0")
        .summary("Returns the effective values of configuration parameters.")
        .complexity("O(N) when N is the number of configuration parameters provided")
        .args(&[ArgDoc::string("parameter").multiple()]),
    CommandSpec::new("config|help", 2, help)
        .flags(Flags::LOADING.with(Flags::STALE))
        .group(Group::Server)
        .since("5.0.0")
        .summary("Returns helpful text about the different subcommands."),
];

pub(crate) const COMMANDS: &[CommandSpec] = &[CommandSpec::container("config", SUBCOMMANDS)
    .group(Group::Server)
    .since("2.0.0")
    .summary("A container for server configuration commands.")];

/// The Redis parameters crdtkv answers, with their values.
fn redis_parameters(config: &Config) -> Vec<(String, String)> {
    let s = &config.server;
    let data_dir =
        std::path::absolute(&config.node.data_dir).unwrap_or_else(|_| config.node.data_dir.clone());
    [
        ("bind", s.bind.clone()),
        ("port", s.port.to_string()),
        ("requirepass", s.requirepass.clone().unwrap_or_default()),
        ("maxclients", s.connections_max.to_string()),
        ("timeout", (s.client_idle_timeout_ms / 1000).to_string()),
        (
            "proto-max-bulk-len",
            config.limits.bulk_bytes_max.to_string(),
        ),
        (
            "client-query-buffer-limit",
            config.limits.query_buffer_bytes_max.to_string(),
        ),
        // Every write goes to RocksDB's write-ahead log: an always-on append-only file, and
        // no snapshots.
        ("appendonly", "yes".to_owned()),
        ("appendfsync", fsync_name(config.storage.fsync).to_owned()),
        ("save", String::new()),
        ("dir", data_dir.display().to_string()),
        ("databases", "1".to_owned()),
        ("maxmemory", "0".to_owned()),
        ("loglevel", config.log.level.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn get(ctx: &mut Ctx<'_>) -> CmdResult {
    let config = &ctx.state.config;
    let patterns: Vec<&[u8]> = ctx.args.skip(2).iter().collect();
    let matched: Vec<(String, String)> = redis_parameters(config)
        .into_iter()
        .chain(flatten(config))
        .filter(|(name, _)| {
            patterns
                .iter()
                .any(|p| glob_match(p, name.as_bytes(), true))
        })
        .collect();
    ctx.reply.map(matched.len());
    for (name, value) in matched {
        ctx.reply.bulk(name.as_bytes());
        ctx.reply.bulk(value.as_bytes());
    }
    Ok(())
}

fn help(ctx: &mut Ctx<'_>) -> CmdResult {
    write_help(
        ctx,
        "CONFIG",
        &[
            "GET <pattern> [<pattern> ...]",
            "    Return parameters matching the glob-like <pattern> and their values.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::test_support::TestClient;
    use crate::config::Config;

    #[test]
    fn redis_and_native_names() {
        let mut cfg = Config::default();
        cfg.server.port = 7001;
        let mut c = TestClient::new(cfg);
        assert_eq!(
            c.run(&["CONFIG", "GET", "port"]),
            "*2\r\n$4\r\nport\r\n$4\r\n7001\r\n"
        );
        assert_eq!(
            c.run(&["CONFIG", "GET", "maxclients", "APPENDFSYNC"]),
            "*4\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n$11\r\nappendfsync\r\n$8\r\neverysec\r\n"
        );
        assert_eq!(
            c.run(&["CONFIG", "GET", "requirepass"]),
            "*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n"
        );
        assert_eq!(
            c.run(&["CONFIG", "GET", "server.port"]),
            "*2\r\n$11\r\nserver.port\r\n$4\r\n7001\r\n"
        );
        let limits = c.run(&["CONFIG", "GET", "limits.*"]);
        assert!(limits.starts_with("*18\r\n"), "{limits}");
        assert_eq!(c.run(&["CONFIG", "GET", "nosuch"]), "*0\r\n");
        c.run(&["HELLO", "3"]);
        assert_eq!(
            c.run(&["CONFIG", "GET", "port"]),
            "%1\r\n$4\r\nport\r\n$4\r\n7001\r\n"
        );
        assert_eq!(
            c.run(&["CONFIG", "GET"]),
            "-ERR wrong number of arguments for 'config|get' command\r\n"
        );
        assert_eq!(
            c.run(&["CONFIG", "SET", "port", "1"]),
            "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n"
        );
    }
}
