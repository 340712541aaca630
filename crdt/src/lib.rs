//! # crdt — the pure core of crdtkv
//!
//! Every key of crdtkv holds one [`Value`]: a typed, state-based CRDT that any node may update
//! on its own and that converges when nodes exchange state. This crate is the whole data model
//! and nothing else: no IO, no runtime, no clock, no randomness. Time enters as an argument
//! (the [`Hlc`] takes the wall time; mutators take a [`Timestamp`]), so every behaviour here is
//! a deterministic function of its inputs and is tested as such.
//!
//! ## Map
//! - [`hlc`]: hybrid logical clock, the order of last-writer-wins.
//! - [`causal`]: dots, version vectors, dotted causal contexts.
//! - [`merge`]: the [`Merge`] trait and its laws.
//! - [`g_counter`], [`pn_counter`]: counters (per-node contributions, max-merge).
//! - [`or_set`]: add-wins observed-remove set without tombstones (ORSWOT).
//! - [`lww_register`]: register whose highest HLC timestamp wins, with observed-remove delete.
//! - [`rga`]: replicated growable array for text, run-length encoded, O(log n) edits.
//! - [`value`]: the typed value of one key, key-level delete and type-conflict resolution.
//! - [`encoding`]: versioned, canonical MessagePack encoding and safe decoding.
//!
//! ## Deltas
//! Every mutator returns a *delta*: a small value of the same type that, merged into any replica,
//! has the effect of the mutation. Nodes ship deltas; full state is shipped only by anti-entropy.

pub mod causal;
pub mod encoding;
pub mod error;
pub mod g_counter;
pub mod hlc;
pub mod inline_bytes;
pub mod lww_register;
pub mod merge;
pub mod node_id;
pub mod or_set;
pub mod pn_counter;
pub mod rga;
pub mod value;

pub use causal::{CausalContext, Dot, VersionVector};
pub use error::{DecodeError, Error};
pub use g_counter::GCounter;
pub use hlc::{Hlc, Timestamp};
pub use inline_bytes::InlineBytes;
pub use lww_register::LwwRegister;
pub use merge::Merge;
pub use node_id::NodeId;
pub use or_set::OrSet;
pub use pn_counter::PnCounter;
pub use rga::Rga;
pub use value::{Kind, Value, View};
