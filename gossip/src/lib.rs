//! # gossip — how crdtkv nodes find and talk to each other
//!
//! Peers authenticate each other with mutual TLS against a cluster CA, talk over one QUIC
//! endpoint per node, and agree on who is in the cluster with SWIM. Replication (delta
//! dissemination, anti-entropy) is built on these two foundations.
//!
//! ## Map
//! - [`tls`]: the cluster CA and node certificates (the library behind `crdtkv cert ...`), how a
//!   certificate binds a node id, and the rustls configurations with their verifiers.
//! - [`transport`]: the QUIC transport (quinn): unreliable datagrams for SWIM, reliable framed
//!   messages on streams for everything else, named limits, counters, and fault injection
//!   (`partition` / `heal`). A tokio shell; no protocol logic.
//! - [`membership`]: SWIM membership with foca as a sans-IO state machine ([`Membership`]:
//!   inputs with `now_ms`, effects out), and [`membership::driver`], the task that runs it over
//!   the transport.
//! - [`error`]: the crate's one error type.
//!
//! ## Why sans-IO
//! Protocol logic takes time and randomness as inputs and returns effects, so the same code runs
//! in production under tokio and in a deterministic, seeded simulation on virtual time (the
//! model is quinn-proto and foca themselves). The IO shells are thin: each owns one state
//! machine in one task and talks to the network through bounded channels.
//!
//! ## Trust
//! Every byte a node acts on comes from a connection whose peer presented a certificate from the
//! cluster CA (optionally restricted to `allowed_node_ids`). The transport labels every datagram
//! and message with the node id from that certificate; membership refuses SWIM packets that claim
//! another sender. A process without a cluster certificate can neither join nor inject state.

pub mod digest;
pub mod error;
pub mod membership;
pub mod replication;
pub mod sim;
pub mod tls;
pub mod transport;

pub use error::{Error, Result};
pub use membership::{Effect, MemberEvent, MemberIdentity, Membership, MembershipConfig};
pub use transport::{Transport, TransportConfig};
