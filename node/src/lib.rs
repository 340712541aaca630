//! # node — the crdtkv daemon
//!
//! A Redis-protocol server whose keys are CRDTs. This crate is the process: configuration,
//! the RESP server and its command table, the shared node state, storage wiring, and the
//! binary `crdtkv`.
//!
//! ## Map
//! - [`config`]: the TOML configuration tree, defaults and validation.
//! - [`cli`]: command-line flags of `crdtkv` and how they override the file.
//! - [`startup`]: opening the store, establishing the node's identity, building the state.
//! - [`state`]: [`state::NodeState`], shared by all connections, and the hooks through which
//!   replication plugs in.
//! - [`keyspace`]: every key's CRDT value in memory, sharded by anti-entropy bucket, with the
//!   node's clock and the persistence policy of each key.
//! - [`resp`]: the protocol — request parser, arguments, reply encoder.
//! - [`server`]: the TCP listener, connections, pipelining, batching, shutdown.
//! - [`commands`]: the command table, the dispatcher and the command families.
//! - [`write_set`]: how a batch's writes are committed before its replies are sent.
//! - [`session`], [`clients`]: per-connection state and the registry of clients.
//! - [`info`]: INFO sections.
//! - [`glob`]: Redis glob patterns.
//!
//! ## One request, end to end
//! A connection reads into its buffer, parses every complete request in it (zero-copy), and
//! executes them in order through the dispatcher; replies accumulate in one output buffer. If
//! the batch wrote anything, the connection awaits one group commit, then writes every reply
//! of the batch in one write. Handlers are synchronous, so no lock is ever held across an
//! await.

pub mod cli;
pub mod clients;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod glob;
pub mod info;
pub mod keyspace;
pub mod logging;
pub mod resp;
pub mod server;
pub mod session;
pub mod startup;
pub mod state;
pub mod write_set;
