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

mod context;
mod dot;
mod version_vector;

pub use context::CausalContext;
pub use dot::Dot;
pub use version_vector::VersionVector;
