//! The command line of `crdtkv`.
//!
//! `crdtkv --config FILE` starts a node from a file; `--port`, `--bind`, `--data-dir`,
//! `--node-id` and `--log-level` override the file (or the defaults, without `--config`), so
//! `crdtkv --port 7000 --data-dir /tmp/x` starts a node with no file at all.
//! `--check-config` validates and prints the effective configuration without starting.
//!
//! `crdtkv cert ca --out DIR` and `crdtkv cert node --ca DIR --node-id N --out DIR` make the
//! cluster's TLS material (see `[cluster]` in `config/cluster/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// A peer-to-peer key-value store whose keys are CRDTs, speaking the Redis protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "crdtkv", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (see config/single.toml). Without it, defaults are used.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// TCP port of the RESP listener (overrides server.port).
    #[arg(short, long)]
    pub port: Option<u32>,

    /// IP address to listen on (overrides server.bind).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Data directory (overrides node.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Node id, 1 or more (overrides node.node_id). Must match the id recorded in an existing
    /// data directory.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<u64>,

    /// Log filter such as `info` or `info,node=debug` (overrides log.level; RUST_LOG wins).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Validate the configuration, print it with every default filled in, and exit.
    #[arg(long)]
    pub check_config: bool,

    /// A tool instead of a node.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools that do not start a node.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Cluster TLS: a CA, and certificates signed by it that bind node ids.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `crdtkv cert ...`
#[derive(Debug, Clone, Subcommand)]
pub enum CertCommand {
    /// Create a cluster CA: DIR/ca.pem and DIR/ca.key (mode 0600; keep it off the nodes).
    /// Refuses to overwrite.
    Ca {
        /// Directory to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Issue the certificate of one node, signed by the CA in --ca: OUT/node.pem,
    /// OUT/node.key (0600) and OUT/ca.pem. Point the node's cluster.tls_dir at OUT.
    /// Refuses to overwrite.
    Node {
        /// Directory holding ca.pem and ca.key (from `crdtkv cert ca`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node id the certificate binds (1 or more); the node takes its id from it.
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
        node_id: u64,
        /// Directory to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

impl Command {
    /// Runs the tool; errors are printed.
    pub fn run(&self) -> ExitCode {
        let result = match self {
            Command::Cert(CertCommand::Ca { out }) => gossip::tls::create_ca_files(out)
                .map(|f| format!("wrote {} and {}", f.cert.display(), f.key.display())),
            Command::Cert(CertCommand::Node { ca, node_id, out }) => {
                gossip::tls::issue_node_files(ca, crdt::NodeId(*node_id), out).map(|f| {
                    format!(
                        "wrote {}, {} and {} for node {node_id}",
                        f.cert.display(),
                        f.key.display(),
                        f.ca_cert.display()
                    )
                })
            }
        };
        match result {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("crdtkv: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

impl Cli {
    /// The configuration: the file (or the defaults), then the flags, validated.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Applies the overriding flags to `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(port) = self.port {
            config.server.port = port;
        }
        if let Some(bind) = &self.bind {
            config.server.bind.clone_from(bind);
        }
        if let Some(dir) = &self.data_dir {
            config.node.data_dir.clone_from(dir);
        }
        if let Some(id) = self.node_id {
            config.node.node_id = Some(id);
        }
        if let Some(level) = &self.log_level {
            config.log.level.clone_from(level);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::parse_from([
            "crdtkv",
            "--port",
            "7000",
            "--data-dir",
            "/tmp/x",
            "--node-id",
            "3",
        ]);
        let c = cli.load_config().unwrap();
        assert_eq!(c.server.port, 7000);
        assert_eq!(c.node.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.node.node_id, Some(3));
        assert_eq!(c.server.bind, "127.0.0.1");
    }

    #[test]
    fn bad_flag_values_name_the_key() {
        let cli = Cli::parse_from(["crdtkv", "--port", "70000"]);
        assert_eq!(
            cli.load_config().unwrap_err().to_string(),
            "server.port: must be 1..=65535, got 70000"
        );
        let cli = Cli::parse_from(["crdtkv", "--node-id", "0"]);
        assert!(
            cli.load_config()
                .unwrap_err()
                .to_string()
                .starts_with("node.node_id:")
        );
    }

    #[test]
    fn help_is_consistent() {
        Cli::command().debug_assert();
    }
}
