//! Replication: delta dissemination, anti-entropy, freshness bookkeeping and tombstone GC.
//!
//! ## Model
//! Every key holds a [`crdt::Value`], a join-semilattice: replicas that merged the same states in
//! any order, with duplicates, are equal. Replication therefore only has to make every state
//! reach every replica *eventually*, and may lose, duplicate or reorder messages freely. Two
//! mechanisms share the work:
//!
//! * **Delta dissemination** is fast and cheap: every local write's delta goes promptly to every
//!   live peer, batched. Only a node's *own* writes are pushed (no relaying), which keeps the
//!   freshness argument per link.
//! * **Anti-entropy** is complete: two nodes compare hash trees of their keyspaces and exchange
//!   the full states of the keys that differ, in both directions. It repairs any divergence —
//!   lost deltas, a long partition, a node restarted empty or restored from an old data
//!   directory — at a cost that grows with the difference, not with the keyspace.
//!
//! [`Replicator`] is a sans-IO state machine: inputs carry the time (`now_ms`, any monotonic
//! millisecond clock) and randomness comes from an RNG given at construction. It reads and
//! writes the local keyspace through the [`Replica`] trait, synchronously, and returns effects
//! ([`Effect::Send`]). [`driver`] runs it under tokio over the QUIC transport; [`crate::sim`]
//! runs several in one thread on virtual time.
//!
//! ## Delta dissemination
//! Deltas wait in the outbox, merged per key (deltas are states), and go out as one `Deltas`
//! message per batch to every reachable member: at once if no batch went out in the last
//! `delta_batch_delay_ms` (so an isolated write is not delayed), otherwise when that delay
//! expires or the batch reaches `delta_batch_bytes_max` / `delta_batch_keys_max`. Batches of one
//! run of the replicator form a *stream* numbered 1, 2, 3, …; the stream id grows from one run to
//! the next (it starts with the HLC time). A send the transport refuses (a slow peer's full queue,
//! a dead connection) is simply lost: the peer sees a gap and anti-entropy repairs.
//!
//! ## Anti-entropy
//! Keys live in `2^leaf_bits` buckets with XOR digests ([`crate::digest`]), folded into a tree of
//! fanout 16. Every `ae_period_ms` a node opens a session with one reachable peer (each peer that
//! is out of sync, else one at random), and at once with a peer that comes (back) up:
//!
//! ```text
//! A → P  AeStart{root_A, point_A}        P compares roots
//! P → A  AeAccept{point_P, in_sync}      equal: done, both sides
//! A → P  AeDescend{level, nodes}         ask for the children of differing nodes …
//! P → A  AeDigests{level+1, digests}     … A compares, descends to differing buckets
//! A → P  AeKeysReq{(bucket, after)…}     ask for key lists (entry hashes) of differing buckets
//! P → A  AeKeys{pages}                   A compares key by key over each page's range
//! A → P  AeStates{states, want}          A's states P lacks, and the keys A lacks
//! P → A  AeStatesReply{states, missing}  P merged A's states; here are P's
//! A → P  AeDone                          both hold the other's state as of the session start
//! ```
//!
//! Nodes that agree exchange two small messages. Every message is bounded
//! (`ae_keys_per_message_max`, `ae_bytes_per_message_max`; big buckets are paged), at most
//! `ae_requests_inflight_max` requests are in flight per session, a session without progress
//! for `ae_session_timeout_ms` is dropped, and a node keeps at most one session it started and
//! one it answers per peer.
//!
//! ## Freshness: `synced_at`
//! **Guarantee.** If `synced_at[P] = w`, this node holds (has merged) every write that P
//! acknowledged to a client before P's clock read `w`. Staleness of a local read is therefore
//! at most `now − min(synced_at)` over the members not known to have left, up to the clock
//! offset between nodes (bounded by the HLC's `max_offset_ms`).
//!
//! **Mechanism.** The driver samples the node's clock, *then* drains the local delta channel,
//! then passes the sample ([`Replicator::set_clock`]). A write is submitted before it is
//! acknowledged, so every write acknowledged before a sample is in the outbox or an earlier batch
//! by the time the sample arrives. Batch `n` carries the latest sample `w_n`: every write
//! acknowledged before `w_n` is in batches ≤ `n`. Heartbeats (`heartbeat_period_ms`) repeat the
//! claim while idle. A receiver that holds batches 1..=n of the stream may set
//! `synced_at[P] ≥ w_n`; a missing batch stalls it. A local delta lost before the outbox (full
//! channel) burns a batch number, so it shows as a gap everywhere instead of going unnoticed.
//!
//! **Anchoring.** Anti-entropy resets a link: each side sends its [`wire::SyncPoint`] — stream,
//! last batch number, clock sample — taken before it reads its digests. Every batch ≤ that
//! number was applied locally before the digests were read, and so was every write acknowledged
//! before the sample; a completed session makes the other side hold all of it. The receiver then
//! counts batches ≤ the point's number as received and sets `synced_at[P] ≥` the sample.
//!
//! **Earlier runs.** A new stream (the peer restarted, or this node sees it for the first time)
//! is trusted only once anchored this way, so writes of a previous run that never arrived cannot
//! be skipped over. And anchoring proves only what the peer holds *now*: if it came back
//! without some of its data (an empty or restored data directory), writes it acknowledged before
//! may survive only on other members. So a new stream raises `synced_at[P]` only once this node
//! has also completed anti-entropy, started after the new stream appeared, with every other
//! member it knows of (a *barrier*); until then P counts as catching up. Writes that survive
//! nowhere are lost, and no guarantee can cover them. After this node restarts, every
//! `synced_at` starts unknown.
//!
//! **Known members.** Freshness (like GC) can only account for members this node knows of: feed
//! the members known at start (persisted, or configured) with [`Replicator::add_member`], so a
//! member that is unreachable when this node starts still counts.
//!
//! **Writes after data loss.** Counter entries and dots are per node and live in the CRDT state,
//! so a node that came back without its data must not accept writes before it has them back
//! ([`Replicator::caught_up`]), or it would reuse them.
//!
//! ## Mode
//! [`Mode::Degraded`] while some member (not one that left) is unreachable; otherwise
//! [`Mode::CatchUp`] while some member has not completed anti-entropy since it came up, waits
//! on a barrier, or has a stream that is unanchored or has had a gap for `gap_repair_after_ms`
//! (such peers, and the members a barrier waits for, get anti-entropy at the next period);
//! otherwise [`Mode::Normal`].
//!
//! ## Tombstone GC
//! A deleted key is a tombstone: its causal information cancels late copies of what the delete
//! removed. Dropping it is safe only if no such copy can reach a node afterwards, *and* if no
//! later write reuses a dot or counter entry the tombstone covers. The second holds because a
//! node writing a key it holds nothing of starts its dots, text ids and counter epochs from an
//! HLC-derived floor (`crdt::causal` on fresh starts). The rule for the first:
//!
//! 1. Each refresh of the digests carries an *epoch*; an entry records the epoch at which its
//!    hash last changed. A completed session started at local epoch `e` proves that the peer
//!    holds every local state as of `e` (the initiator pushed every differing key and saw each
//!    push acknowledged; the responder learns from `AeDone` that the initiator pulled every
//!    differing key). States only grow, so the proof stays true.
//! 2. A tombstone changed at epoch `c` is dropped when every member not known to have left —
//!    reachable or not — has such a proof with `e ≥ c`, and each proof completed at least
//!    `tombstone_gc_grace_ms` ago (and this node has been part of the cluster at least once in
//!    this run, unless it runs standalone: see [`Replicator::set_expect_peers`]).
//! 3. Then every member holds a state ≥ the tombstone, so no member can ship back what it
//!    cancelled. What could still arrive is a message sent before the member merged the
//!    tombstone; the grace period outlasts any message in flight (the transport times messages
//!    out sooner). Members that are down keep their proofs: they hold what they proved (merges
//!    are durable before they are acknowledged). A member that restarts or rejoins loses its
//!    proofs and must prove again.
//! 4. Nodes drop independently. A node that dropped a tombstone refuses, for the grace period,
//!    any state the tombstone covers, so peers that have not dropped it yet cannot bounce it back;
//!    they drop it themselves once their own proofs are complete.
//!
//! Limits of the argument: a member that comes back from a data directory older than
//! `tombstone_gc_grace_ms` (a restored backup) may hold states whose tombstones were already
//! dropped everywhere, and brings those keys back; a member that never returns and never leaves
//! blocks GC until it is forgotten ([`Replicator::forget_member`]).

mod ae;
mod config;
pub mod driver;
mod gc;
mod link;
mod memory;
mod metrics;
mod outbox;
mod replica;
mod replicator;
pub mod wire;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use crdt::NodeId;

pub use config::ReplicationConfig;
pub use memory::{MemReplica, WriteOutcome};
pub use metrics::{LAG_BUCKETS_MS, LagHistogram, Mode, PeerStatus, ReplicationMetrics};
pub use replica::Replica;
pub use replicator::Replicator;

/// What the replicator asks of the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send `bytes` as one reliable message to node `to`
    /// ([`crate::transport::Transport::send_message`]). If the send fails, report it with
    /// [`Replicator::send_failed`].
    Send {
        /// The destination.
        to: NodeId,
        /// The encoded [`wire::Message`].
        bytes: Bytes,
    },
}
