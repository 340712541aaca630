//! Server commands: INFO, TIME, DBSIZE.

use std::time::{SystemTime, UNIX_EPOCH};

use super::spec::{ArgDoc, CommandSpec, Flags, Group};
use super::{CmdResult, Ctx};

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("info", -1, info)
        .flags(Flags::LOADING.with(Flags::STALE))
        .group(Group::Server)
        .summary("Returns information and statistics about the server.")
        .args(&[ArgDoc::string("section").optional().multiple()])
        .tips(&[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ]),
    CommandSpec::new("time", 1, time)
        .flags(Flags::LOADING.with(Flags::STALE).with(Flags::FAST))
        .group(Group::Server)
        .since("2.6.0")
        .summary("Returns the server time.")
        .tips(&["nondeterministic_output"]),
    CommandSpec::new("dbsize", 1, dbsize)
        .flags(Flags::READONLY.with(Flags::FAST))
        .group(Group::Server)
        .summary("Returns the number of keys in the database.")
        .tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
];

fn info(ctx: &mut Ctx<'_>) -> CmdResult {
    let sections: Vec<&[u8]> = ctx.args.skip(1).iter().collect();
    let text = crate::info::render(ctx.state, &sections);
    ctx.reply.verbatim(b"txt", text.as_bytes());
    Ok(())
}

fn time(ctx: &mut Ctx<'_>) -> CmdResult {
    // A clock before 1970 is reported as the epoch rather than failing the command.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ctx.reply.array(2);
    ctx.reply
        .bulk_integer(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
    ctx.reply.bulk_integer(i64::from(now.subsec_micros()));
    Ok(())
}

fn dbsize(ctx: &mut Ctx<'_>) -> CmdResult {
    let keys = ctx.state.keyspace.key_count();
    ctx.reply.integer(i64::try_from(keys).unwrap_or(i64::MAX));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::test_support::TestClient;
    use crate::config::Config;

    #[test]
    fn info_sections_time_dbsize() {
        let mut c = TestClient::new(Config::default());
        let all = c.run(&["INFO"]);
        for header in [
            "# Server\r\n",
            "# Clients\r\n",
            "# Memory\r\n",
            "# Persistence\r\n",
            "# Stats\r\n",
            "# Replication\r\n",
            "# Cpu\r\n",
            "# Keyspace\r\n",
        ] {
            assert!(all.contains(header), "{header} missing in {all}");
        }
        let server = c.run(&["INFO", "server"]);
        assert!(server.contains("redis_version:7.2.4\r\n") && !server.contains("# Clients"));
        let two = c.run(&["info", "CLIENTS", "memory"]);
        assert!(
            two.contains("# Clients\r\nconnected_clients:1\r\n")
                && two.contains("\r\n\r\n# Memory\r\n"),
            "{two}"
        );
        assert!(!two.contains("# Server"));
        assert_eq!(c.run(&["INFO", "nosuch"]), "$0\r\n\r\n");
        let time = c.run(&["TIME"]);
        assert!(time.starts_with("*2\r\n$10\r\n"), "{time}");
        assert_eq!(c.run(&["DBSIZE"]), ":0\r\n");
        c.run(&["HELLO", "3"]);
        assert!(
            c.run(&["INFO", "server"]).starts_with("="),
            "RESP3 INFO is a verbatim string"
        );
    }
}
