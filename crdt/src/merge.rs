//! The one trait every replicated state implements.

/// A state-based CRDT: a join-semilattice whose `merge` is the join.
///
/// Every implementation obeys these laws, checked as proptest properties in `crdt/tests/`:
///
/// * **commutative**: `a ⊔ b == b ⊔ a`
/// * **associative**: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`
/// * **idempotent**: `a ⊔ a == a`
/// * **deltas are states**: a mutator applied to `s` returns a delta `d` (a value of the same
///   type) such that the mutated state equals `s ⊔ d`; hence for any other state `t`,
///   `(s ⊔ d) ⊔ t == (s ⊔ t) ⊔ d`, so a delta can be shipped, reordered, duplicated or dropped
///   and later repaired by merging full state.
/// * **convergence**: replicas that received the same set of deltas or states, in any order and
///   with any duplicates, are equal (`==`), and so encode to the same bytes.
///
/// `merge` takes `other` by value so a received delta's contents are moved, not cloned.
pub trait Merge: Sized {
    /// Joins `other` into `self`.
    fn merge(&mut self, other: Self);

    /// Joins two states into a new one; a convenience over [`Merge::merge`].
    fn merged(mut self, other: Self) -> Self {
        self.merge(other);
        self
    }
}
