//! Causality: dots, version vectors and dotted causal contexts.
//!
//! A **dot** `(node, counter)` names one event: the `counter`-th update `node` made to one key.
//! Counters are per key and per node and start at 1, so a node's events on a key form the
//! contiguous sequence `1, 2, 3, …` and a prefix of them can be summarised by one number.
//!
//! A **version vector** maps each node to the highest counter such that every dot of that node up
//! to it has been seen. A **causal context** is a version vector plus a *dot cloud*: the dots seen
//! beyond the contiguous prefix, which appear when deltas arrive out of order or are lost. The
//! cloud folds into the vector as soon as the gap closes, so a context that has seen everything is
//! just a version vector.
//!
//! Causal CRDTs (the OR-set, the multi-value register) pair their payload with a causal context:
//! "this dot is in my context but not in my payload" means "I saw that event and it was removed".
//! That is what lets them drop removed elements entirely instead of keeping a tombstone each.
//!
//! ## Fresh starts
//! A node that holds no dot of its own in a context (it never wrote the key, or the key's
//! tombstone was garbage-collected) does not start counting at 1: that could reuse dots of an
//! earlier life of the key that a slower replica still holds in a tombstone's context, which
//! would silently cancel the new write there. It starts at [`fresh_floor`] — its HLC time
//! shifted left 20 bits, above any counter an earlier life could have reached (that would take
//! a million writes to one key per millisecond) — and claims every lower dot of its own as seen
//! ([`CausalContext::advance`]). The claim is sound because a node lacks its own dots only when
//! none of them is live anywhere: a tombstone is collected only once every member holds the
//! same, empty state, and a node that lost its data takes no writes before anti-entropy gave
//! its dots back.

mod context;
mod dot;
mod version_vector;

pub use context::CausalContext;
pub use dot::Dot;
pub use version_vector::VersionVector;

use crate::hlc::Timestamp;

/// Where a node's counters start on a key it holds nothing of its own for (see the module doc):
/// `physical_ms << 20`, at least 1, at most 2^61 so that counters never run out.
pub fn fresh_floor(ts: Timestamp) -> u64 {
    ts.physical_ms.saturating_mul(1 << 20).clamp(1, 1 << 61)
}
