//! The binary's life: flags and config errors, identity in the data directory, clean shutdown
//! on SIGTERM and SIGINT, and crash-restart on the same data directory.

mod common;

use common::{Node, Reply, run_binary};

#[test]
fn help_lists_every_flag() {
    let (status, out, _) = run_binary(&["--help"]);
    assert!(status.success());
    for flag in [
        "--config",
        "--port",
        "--bind",
        "--data-dir",
        "--node-id",
        "--log-level",
        "--check-config",
        "--version",
    ] {
        assert!(out.contains(flag), "{flag} missing from --help:\n{out}");
    }
}

fn with_config(text: &str) -> (std::process::ExitStatus, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let (status, out, err) = run_binary(&["--config", path.to_str().unwrap(), "--check-config"]);
    (status, out, err, dir)
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let (status, _, err, _d) = with_config("[server]\nport = 0\n");
    assert!(!status.success());
    assert!(
        err.contains("server.port: must be 1..=65535, got 0"),
        "{err}"
    );
    let (status, _, err, _d) = with_config("[server]\nprot = 6379\n");
    assert!(!status.success());
    assert!(err.contains("unknown field `prot`"), "{err}");
    let (status, _, err, _d) = with_config("[storage]\nfsync = \"sometimes\"\n");
    assert!(!status.success());
    assert!(err.contains("fsync"), "{err}");
    let (status, _, err, _d) = with_config("[limits]\nunauth_array_len_max = 2\n");
    assert!(!status.success());
    assert!(err.contains("limits.unauth_array_len_max"), "{err}");
    let (status, _, err) = run_binary(&["--config", "/nonexistent/crdtkv.toml"]);
    assert!(!status.success());
    assert!(err.contains("/nonexistent/crdtkv.toml"), "{err}");
    let (status, _, err) = run_binary(&["--port", "99999", "--check-config"]);
    assert!(!status.success());
    assert!(err.contains("server.port"), "{err}");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let (status, out, err, _d) = with_config("[server]\nport = 7001\n");
    assert!(status.success(), "{err}");
    assert!(
        out.contains("port = 7001")
            && out.contains("[limits]")
            && out.contains("fsync = \"everysec\""),
        "{out}"
    );
    let (status, out, _) =
        run_binary(&["--port", "7002", "--data-dir", "/tmp/x", "--check-config"]);
    assert!(status.success());
    assert!(
        out.contains("port = 7002") && out.contains("data_dir = \"/tmp/x\""),
        "{out}"
    );
}

#[test]
fn shipped_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/single.toml");
    let (status, out, err) = run_binary(&["--config", path, "--check-config"]);
    assert!(status.success(), "{err}");
    assert!(
        out.contains("port = 6379") && out.contains("data_dir = \"data/single\""),
        "{out}"
    );
}

fn node_id(node: &Node) -> String {
    let info = node.raw().cmd(&["INFO", "server"]).text();
    info.lines()
        .find_map(|l| l.strip_prefix("node_id:"))
        .expect("node_id in INFO")
        .to_owned()
}

#[test]
fn identity_persists_and_a_foreign_data_dir_is_refused() {
    let mut node = Node::start();
    let id = node_id(&node);
    assert_ne!(id, "0");
    node.restart();
    assert_eq!(node_id(&node), id, "a generated id is kept across restarts");
    node.kill9();
    let other = (id.parse::<u64>().unwrap() % 1000 + 1).to_string();
    let other = if other == id {
        "1001".to_owned()
    } else {
        other
    };
    let (status, _, err) = run_binary(&[
        "--config",
        node.config_path().to_str().unwrap(),
        "--node-id",
        &other,
    ]);
    assert!(!status.success());
    assert!(err.contains(&format!("belongs to node {id}")), "{err}");
}

#[test]
fn configured_node_id() {
    let node = Node::builder().set("node", "node_id", 42).start();
    assert_eq!(node_id(&node), "42");
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    for signal in ["TERM", "INT"] {
        let mut node = Node::start();
        let mut c = node.raw();
        assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
        let status = node.signal_and_wait(signal);
        assert!(
            status.success(),
            "exit after SIG{signal}: {status}\n{}",
            node.log()
        );
        let log = node.log();
        assert!(
            log.contains("shutdown requested") && log.contains("storage flushed"),
            "{log}"
        );
        assert!(c.is_closed(), "clients are disconnected at shutdown");
    }
}

#[test]
fn crash_and_restart_on_the_same_data_dir() {
    let mut node = Node::start();
    let pid = node.pid();
    node.kill9();
    assert!(!node.is_running());
    node.restart();
    assert_ne!(node.pid(), pid);
    assert_eq!(node.raw().cmd(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn occupied_port_is_a_clear_error() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let (status, _, err) = run_binary(&[
        "--port",
        &node.port.to_string(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{}", node.port)),
        "{err}"
    );
}
