use crate::commands::FAMILIES;
use crate::commands::test_support::TestClient;
use crate::config::Config;

fn client() -> TestClient {
    TestClient::new(Config::default())
}

#[test]
fn count_matches_the_table() {
    let mut c = client();
    let top: usize = FAMILIES.iter().map(|f| f.len()).sum();
    assert_eq!(c.run(&["COMMAND", "COUNT"]), format!(":{top}\r\n"));
    assert!(
        c.run(&["COMMAND"])
            .starts_with(&format!("*{top}\r\n*10\r\n"))
    );
    assert_eq!(
        c.run(&["COMMAND", "COUNT", "x"]),
        "-ERR wrong number of arguments for 'command|count' command\r\n"
    );
    assert_eq!(
        c.run(&["COMMAND", "foo"]),
        "-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n"
    );
}

#[test]
fn info_has_redis_shape() {
    let mut c = client();
    assert_eq!(
        c.run(&["COMMAND", "INFO", "ping"]),
        "*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@connection\r\n+@fast\r\n\
         *2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n"
    );
    assert_eq!(c.run(&["COMMAND", "INFO", "nosuch"]), "*1\r\n$-1\r\n");
    let client_info = c.run(&["COMMAND", "INFO", "client"]);
    assert!(
        client_info.contains("$9\r\nclient|id\r\n:2\r\n"),
        "{client_info}"
    );
    let sub = c.run(&["COMMAND", "INFO", "config|get"]);
    assert!(
        sub.starts_with("*1\r\n*10\r\n$10\r\nconfig|get\r\n:-3\r\n"),
        "{sub}"
    );
    c.run(&["HELLO", "3"]);
    let r3 = c.run(&["COMMAND", "INFO", "echo", "nosuch"]);
    assert!(
        r3.starts_with("*2\r\n*10\r\n$4\r\necho\r\n:2\r\n~1\r\n+fast\r\n"),
        "{r3}"
    );
    assert!(r3.ends_with("_\r\n"), "{r3}");
}

#[test]
fn docs_have_redis_shape() {
    let mut c = client();
    assert_eq!(
        c.run(&["COMMAND", "DOCS", "ping"]),
        "*2\r\n$4\r\nping\r\n*10\r\n$7\r\nsummary\r\n$41\r\nReturns the server's liveliness response.\r\n\
         $5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$10\r\nconnection\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n\
         $9\r\narguments\r\n*1\r\n*6\r\n$4\r\nname\r\n$7\r\nmessage\r\n$4\r\ntype\r\n$6\r\nstring\r\n\
         $5\r\nflags\r\n*1\r\n+optional\r\n"
    );
    assert_eq!(c.run(&["COMMAND", "DOCS", "nosuch"]), "*0\r\n");
    let client = c.run(&["COMMAND", "DOCS", "client"]);
    assert!(client.contains("$11\r\nsubcommands\r\n"), "{client}");
    c.run(&["HELLO", "3"]);
    let all = c.run(&["COMMAND", "DOCS"]);
    let top: usize = FAMILIES.iter().map(|f| f.len()).sum();
    assert!(all.starts_with(&format!("%{top}\r\n")), "{all}");
}

#[test]
fn list_and_getkeys() {
    let mut c = client();
    let all = c.run(&["COMMAND", "LIST"]);
    assert!(all.contains("$11\r\nclient|list\r\n") && all.contains("$4\r\nping\r\n"));
    let pattern = c.run(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "cl*"]);
    assert!(
        pattern.contains("$6\r\nclient\r\n") && !pattern.contains("$4\r\nping\r\n"),
        "{pattern}"
    );
    let acl = c.run(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "connection"]);
    assert!(
        acl.contains("$4\r\nping\r\n") && !acl.contains("$4\r\ninfo\r\n"),
        "{acl}"
    );
    assert_eq!(
        c.run(&["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]),
        "*0\r\n"
    );
    assert_eq!(c.run(&["COMMAND", "LIST", "foo"]), "-ERR syntax error\r\n");
    assert_eq!(
        c.run(&["COMMAND", "GETKEYS", "nosuch", "a"]),
        "-ERR Invalid command specified\r\n"
    );
    assert_eq!(
        c.run(&["COMMAND", "GETKEYS", "ping", "a"]),
        "-ERR The command has no key arguments\r\n"
    );
    assert_eq!(
        c.run(&["COMMAND", "GETKEYS"]),
        "-ERR wrong number of arguments for 'command|getkeys' command\r\n"
    );
    assert_eq!(
        c.run(&["COMMAND", "GETKEYS", "echo", "a", "b"]),
        "-ERR Invalid number of arguments specified for command\r\n"
    );
    assert!(
        c.run(&["COMMAND", "HELP"])
            .starts_with("*19\r\n+COMMAND <subcommand>")
    );
}
