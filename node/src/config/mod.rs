//! The node's configuration: one serde tree mirroring the TOML file.
//!
//! ```toml
//! [node]     # identity and data directory
//! [server]   # RESP listener, password, connection limits
//! [limits]   # bounds on what clients send
//! [storage]  # RocksDB and the fsync policy (storage::StoreOptions)
//! [log]      # log filter and format
//! [cluster]  # optional: QUIC endpoint, TLS, seeds, gossip tuning (see [`cluster`])
//! ```
//!
//! The model: defaults live in code ([`sections`]), the file overrides them, command-line flags
//! override the file ([`crate::cli`]), and [`Config::validate`] checks the result once, naming
//! the offending key (`server.port: must be 1..=65535, got 0`). Unknown keys are errors
//! (`deny_unknown_fields`), so a typo never silently falls back to a default. Relative paths
//! are relative to the working directory, like every other Unix tool.

mod cluster;
mod flatten;
mod sections;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use cluster::{ClusterSection, MESSAGE_OVERHEAD_BYTES};
pub use flatten::flatten;
pub use sections::{LimitsSection, LogFormat, LogSection, NodeSection, ServerSection};
pub use storage::{CommitLimits, FsyncPolicy, StoreOptions};

/// The whole configuration of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`
    pub node: NodeSection,
    /// `[server]`
    pub server: ServerSection,
    /// `[limits]`
    pub limits: LimitsSection,
    /// `[storage]` and `[storage.group_commit]`: owned by the storage crate, which documents
    /// and validates its keys.
    pub storage: StoreOptions,
    /// `[log]`
    pub log: LogSection,
    /// `[cluster]`: absent for a standalone node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSection>,
}

/// Why a configuration was refused. Nothing was started.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this tree (syntax, unknown key, wrong type). The message
    /// from the TOML parser shows the line and the key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the offending line.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{key}: {reason}")]
    Invalid {
        /// The dotted key, for example `server.port`.
        key: String,
        /// What is wrong, and the value found.
        reason: String,
    },
}

impl Config {
    /// Reads and parses `path`. The result is not validated yet: flags may still override it.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error is the parser's message.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The configuration as TOML, every key included (what `crdtkv --check-config` prints).
    pub fn to_toml(&self) -> String {
        // Plain structs of strings, integers and enums always serialise.
        toml::to_string(self).expect("the config tree serialises to TOML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example documents the defaults: parsing it gives the defaults except where
    /// it says otherwise (the data directory).
    #[test]
    fn shipped_single_node_config_is_the_defaults() {
        let text = include_str!("../../../config/single.toml");
        let parsed = Config::from_toml(text).unwrap();
        parsed.validate().unwrap();
        let mut expected = Config::default();
        expected.node.data_dir = PathBuf::from("data/single");
        assert_eq!(parsed, expected);
    }

    /// The shipped cluster examples are valid and describe the documented layout.
    #[test]
    fn shipped_cluster_configs_are_valid() {
        let files = [
            include_str!("../../../config/cluster/node1.toml"),
            include_str!("../../../config/cluster/node2.toml"),
            include_str!("../../../config/cluster/node3.toml"),
        ];
        for (i, text) in files.into_iter().enumerate() {
            let n = i as u64 + 1;
            let c = Config::from_toml(text).unwrap();
            c.validate().unwrap();
            assert_eq!(c.node.node_id, Some(n));
            assert_eq!(c.server.port, 6380 + n as u32);
            assert_eq!(c.node.data_dir, PathBuf::from(format!("data/node{n}")));
            let cluster = c.cluster.unwrap();
            assert_eq!(cluster.bind.port(), 7380 + n as u16);
            assert_eq!(cluster.seeds.len(), 3);
            assert_eq!(cluster.tls_dir, PathBuf::from(format!("data/tls/node{n}")));
        }
    }

    #[test]
    fn unknown_keys_and_bad_types_are_refused_with_the_key() {
        let err = Config::from_toml("[server]\nprot = 1\n").unwrap_err();
        assert!(err.contains("prot"), "{err}");
        let err = Config::from_toml("[cluster]\nsedes = []\n").unwrap_err();
        assert!(err.contains("sedes"), "{err}");
        let err = Config::from_toml("[cluster.replication]\nae_period = 1\n").unwrap_err();
        assert!(err.contains("ae_period"), "{err}");
        let err = Config::from_toml("[server]\nport = \"x\"\n").unwrap_err();
        assert!(err.contains("port"), "{err}");
        let err = Config::from_toml("[storage]\nfsync = \"sometimes\"\n").unwrap_err();
        assert!(err.contains("fsync"), "{err}");
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn toml_round_trip() {
        let mut c = Config::default();
        c.server.requirepass = Some("pw".into());
        c.node.node_id = Some(9);
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    }
}
