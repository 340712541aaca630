//! The sections of the config file, one struct per `[section]`, with their defaults.
//!
//! Every field has a default here (in code, not only in `config/single.toml`), so an empty file
//! and no file at all both give a working single node. Sizes are in bytes and durations in
//! milliseconds, with the unit last in the name (`bulk_bytes_max`, `shutdown_timeout_ms`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[node]`: who this node is and where it keeps its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// The node's id in CRDT state. When absent, an id is generated when the data directory is
    /// created and read back from it afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// Directory of the RocksDB store; relative paths are relative to the working directory.
    pub data_dir: PathBuf,
    /// How far ahead of this node's wall clock a peer's HLC timestamp may be before it is
    /// refused rather than dragging this node's clock into the future.
    pub max_clock_offset_ms: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            node_id: None,
            data_dir: PathBuf::from("data"),
            max_clock_offset_ms: crdt::hlc::DEFAULT_MAX_OFFSET_MS,
        }
    }
}

/// `[server]`: the RESP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// IP address to listen on. Loopback by default, like Redis' protected mode: exposing the
    /// node is a decision the operator makes explicitly.
    pub bind: String,
    /// TCP port of the RESP listener.
    pub port: u32,
    /// Password of the `default` user. When set, every connection must `AUTH` (or `HELLO ...
    /// AUTH`) before anything but AUTH, HELLO, QUIT and RESET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirepass: Option<String>,
    /// Most client connections open at once; one more is answered
    /// `-ERR max number of clients reached` and closed.
    pub connections_max: u64,
    /// Close a client that sent nothing for this long; 0 never closes idle clients (Redis
    /// `timeout 0`).
    pub client_idle_timeout_ms: u64,
    /// On SIGINT/SIGTERM, how long to wait for connections to finish their in-flight batch and
    /// write their replies before the node stops anyway (storage is flushed in both cases).
    pub shutdown_timeout_ms: u64,
    /// Threads that run client connections, each an event loop of its own; a connection
    /// starts on the least busy one, and the writers of a hot key gather on one
    /// (`server::affinity`). 0 starts one per CPU core.
    pub connection_threads: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".to_owned(),
            port: 6379,
            requirepass: None,
            connections_max: 10_000,
            client_idle_timeout_ms: 0,
            shutdown_timeout_ms: 10_000,
            connection_threads: 0,
        }
    }
}

/// `[limits]`: bounds on everything a client controls. Requests over a limit are answered with
/// the Redis error for it; none of these values is ever used to pre-allocate memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Longest bulk string in a request (Redis `proto-max-bulk-len`).
    pub bulk_bytes_max: u64,
    /// Most arguments in one multibulk request.
    pub array_len_max: u64,
    /// Longest inline command line, and longest `*N` / `$N` header line.
    pub inline_bytes_max: u64,
    /// Largest value a key may hold after a write; data commands refuse writes that would
    /// exceed it.
    pub value_bytes_max: u64,
    /// Most bytes buffered for one incomplete request before the connection is closed (Redis
    /// `client-query-buffer-limit`).
    pub query_buffer_bytes_max: u64,
    /// Most commands executed from one read before their replies are written and their writes
    /// committed: bounds the latency of a batch and the size of its storage write.
    pub pipeline_commands_max: u64,
    /// Once a batch's replies reach this size, no further command of the read is executed until
    /// they are written: bounds reply memory of a pipelining client that does not read.
    pub reply_buffer_bytes_max: u64,
    /// Longest bulk string a client may send before it has authenticated (Redis uses 16 KiB).
    pub unauth_bulk_bytes_max: u64,
    /// Most arguments a client may send in one request before it has authenticated (Redis uses
    /// 10).
    pub unauth_array_len_max: u64,
}

/// One mebibyte.
const MIB: u64 = 1024 * 1024;

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            bulk_bytes_max: 512 * MIB,
            array_len_max: 1024 * 1024,
            inline_bytes_max: 64 * 1024,
            value_bytes_max: 512 * MIB,
            query_buffer_bytes_max: 1024 * MIB,
            pipeline_commands_max: 1024,
            reply_buffer_bytes_max: MIB,
            unauth_bulk_bytes_max: 16 * 1024,
            unauth_array_len_max: 10,
        }
    }
}

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event with timestamp, level, target and fields.
    Text,
    /// Like `text`, shorter: fields of enclosing spans are left out.
    Compact,
}

/// `[log]`: logging to standard error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or directives
    /// such as `info,node=debug`. The `RUST_LOG` environment variable, when set, wins.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}
