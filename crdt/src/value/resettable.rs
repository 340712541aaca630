//! Counters with an observed-remove reset, for key-level `DEL` on counter keys.
//!
//! `DEL` on a counter must remove what the deleting node has seen while increments made
//! concurrently elsewhere survive. A counter's per-node contributions only grow, so a reset is
//! recorded as a second counter, `removed`: the contributions observed at the time of the reset.
//! The value is `total − removed`. Both halves max-merge, so this is a lattice; a concurrent
//! increment raises `total` beyond what was removed and is counted exactly, and no reset ever
//! cancels an increment it did not see. The key is absent when `removed == total`.
//!
//! Both halves also count *writes* per node (a grow-only counter bumped by every increment), so
//! an increment by zero — `INCRBY k 0`, or `SET k 7` then `DECRBY k 7` — still makes the key
//! exist with value 0, as in Redis, although it leaves the counted value unchanged.

use serde::{Deserialize, Deserializer, Serialize};

use crate::g_counter::GCounter;
use crate::merge::Merge;
use crate::node_id::NodeId;
use crate::pn_counter::PnCounter;

/// What [`Resettable`] needs of a counter.
pub trait CounterState: Merge + Clone + Default + PartialEq + Eq {
    /// The counter's value.
    fn signed_value(&self) -> i128;
    /// Whether `other ≤ self` in the lattice.
    fn covers(&self, other: &Self) -> bool;
}

impl CounterState for GCounter {
    fn signed_value(&self) -> i128 {
        // Bounded by nodes × u64::MAX, far below i128::MAX.
        self.value() as i128
    }
    fn covers(&self, other: &Self) -> bool {
        self.dominates(other)
    }
}

impl CounterState for PnCounter {
    fn signed_value(&self) -> i128 {
        self.value()
    }
    fn covers(&self, other: &Self) -> bool {
        self.dominates(other)
    }
}

/// A counter and the number of writes that built it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally<C> {
    /// The counted value.
    pub count: C,
    /// Writes per node, including increments by zero.
    pub writes: GCounter,
}

impl<C: CounterState> Tally<C> {
    fn covers(&self, other: &Self) -> bool {
        self.count.covers(&other.count) && self.writes.dominates(&other.writes)
    }
}

impl<C: CounterState> Merge for Tally<C> {
    fn merge(&mut self, other: Self) {
        self.count.merge(other.count);
        self.writes.merge(other.writes);
    }
}

/// A counter plus the part of it removed by observed-remove resets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resettable<C> {
    total: Tally<C>,
    removed: Tally<C>,
}

impl<C: CounterState> Resettable<C> {
    /// The live value: everything counted minus everything reset.
    pub fn value(&self) -> i128 {
        self.total.count.signed_value() - self.removed.count.signed_value()
    }

    /// Whether every write has been reset (the key holds no counter).
    pub fn is_empty(&self) -> bool {
        self.removed == self.total
    }

    /// Everything counted, including what was reset.
    pub fn total(&self) -> &C {
        &self.total.count
    }

    /// What resets removed.
    pub fn removed(&self) -> &C {
        &self.removed.count
    }

    /// Applies `f` to the total as a write of `node`; returns the delta with the same shape.
    pub(crate) fn update<E: From<crate::Error>>(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut C) -> Result<C, E>,
    ) -> Result<Self, E> {
        // Check the write count first: if `f` succeeds nothing after it may fail.
        let mut writes = self.total.writes.clone();
        let writes_delta = writes.increment(node, 1)?;
        let count = f(&mut self.total.count)?;
        self.total.writes = writes;
        Ok(Resettable {
            total: Tally {
                count,
                writes: writes_delta,
            },
            removed: Tally::default(),
        })
    }

    /// Resets everything observed; returns the delta. The delta carries the observed total too,
    /// so a replica that merges it never sees `removed` above `total`.
    pub(crate) fn clear(&mut self) -> Self {
        self.removed = self.total.clone();
        Resettable {
            total: self.total.clone(),
            removed: self.total.clone(),
        }
    }
}

impl<C: CounterState> Merge for Resettable<C> {
    fn merge(&mut self, other: Self) {
        self.total.merge(other.total);
        self.removed.merge(other.removed);
    }
}

impl<'de, C: CounterState + Deserialize<'de>> Deserialize<'de> for Resettable<C> {
    /// Refuses a state that removed more than it counted.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (total, removed): (Tally<C>, Tally<C>) = Deserialize::deserialize(deserializer)?;
        if !total.covers(&removed) {
            return Err(serde::de::Error::custom("counter reset exceeds its total"));
        }
        Ok(Resettable { total, removed })
    }
}
