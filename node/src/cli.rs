//! The command line of `crdtkv`.
//!
//! `crdtkv --config FILE` starts a node from a file; `--port`, `--bind`, `--data-dir`,
//! `--node-id` and `--log-level` override the file (or the defaults, without `--config`), so
//! `crdtkv --port 7000 --data-dir /tmp/x` starts a node with no file at all.
//! `--check-config` validates and prints the effective configuration without starting.

use std::path::PathBuf;

use clap::Parser;

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
