//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! A [`Timestamp`] is `(physical_ms, logical, node)`, ordered in that order. The physical part
//! follows the wall clock when the wall clock moves ahead; the logical part counts events that
//! happen within one physical millisecond or while the wall clock lags behind a timestamp already
//! seen. Because a node [`observe`](Hlc::observe)s every remote timestamp it merges, a write that
//! causally follows another always gets a larger timestamp, whatever the wall clocks say. The node
//! id makes timestamps of different nodes distinct, so "highest timestamp wins" never ties.
//!
//! The crate never reads a clock: callers pass the physical time in. A remote timestamp more than
//! `max_offset_ms` ahead of the local wall clock is refused ([`Error::ClockSkew`]) instead of
//! dragging this node's clock (and every later write) into the future.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::node_id::NodeId;

/// One point of hybrid logical time. Ordered by physical time, then logical counter, then node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch, as the issuing node's HLC saw them.
    pub physical_ms: u64,
    /// Events within the same physical millisecond.
    pub logical: u32,
    /// The node that issued the timestamp; breaks ties between nodes.
    pub node: NodeId,
}

impl Timestamp {
    /// The smallest timestamp of `node`; lower than any timestamp an [`Hlc`] issues.
    pub const fn zero(node: NodeId) -> Self {
        Timestamp {
            physical_ms: 0,
            logical: 0,
            node,
        }
    }

    /// The timestamp as one sortable `u128` without the node: `physical_ms << 32 | logical`.
    pub const fn time_part(&self) -> u128 {
        ((self.physical_ms as u128) << 32) | self.logical as u128
    }
}

/// Default bound on how far ahead of the local wall clock a remote timestamp may be.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 60_000;

/// A hybrid logical clock owned by one node.
#[derive(Clone, Debug)]
pub struct Hlc {
    node: NodeId,
    physical_ms: u64,
    logical: u32,
    max_offset_ms: u64,
}

impl Hlc {
    /// A clock for `node` that has issued nothing yet.
    pub fn new(node: NodeId, max_offset_ms: u64) -> Self {
        Hlc {
            node,
            physical_ms: 0,
            logical: 0,
            max_offset_ms,
        }
    }

    /// A clock that resumes after `high_water`, the highest timestamp issued or observed before a
    /// restart (persisted by the node), so timestamps stay monotonic across restarts even if the
    /// wall clock went back.
    pub fn resume(node: NodeId, max_offset_ms: u64, high_water: Timestamp) -> Self {
        Hlc {
            node,
            physical_ms: high_water.physical_ms,
            logical: high_water.logical,
            max_offset_ms,
        }
    }

    /// The node this clock belongs to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The configured bound on remote clock offset.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// The highest timestamp issued or observed so far (what a node persists).
    pub fn high_water(&self) -> Timestamp {
        Timestamp {
            physical_ms: self.physical_ms,
            logical: self.logical,
            node: self.node,
        }
    }

    /// Issues a timestamp for a local event at wall time `physical_ms`. Strictly greater than
    /// every timestamp issued or observed before.
    pub fn now(&mut self, physical_ms: u64) -> Timestamp {
        if physical_ms > self.physical_ms {
            self.physical_ms = physical_ms;
            self.logical = 0;
        } else {
            self.tick_logical();
        }
        self.high_water()
    }

    /// Takes a remote timestamp into account so that every later [`now`](Hlc::now) is greater
    /// than it. Refuses (and leaves the clock unchanged) if `remote` is more than
    /// `max_offset_ms` ahead of `physical_ms`.
    pub fn observe(&mut self, remote: Timestamp, physical_ms: u64) -> Result<(), Error> {
        if remote.physical_ms > physical_ms.saturating_add(self.max_offset_ms) {
            return Err(Error::ClockSkew {
                remote_ms: remote.physical_ms,
                local_ms: physical_ms,
                max_offset_ms: self.max_offset_ms,
            });
        }
        if (remote.physical_ms, remote.logical) > (self.physical_ms, self.logical) {
            self.physical_ms = remote.physical_ms;
            self.logical = remote.logical;
        }
        Ok(())
    }

    fn tick_logical(&mut self) {
        // Overflowing the logical counter (4 billion events in one millisecond, or a wall clock
        // stuck far behind) borrows a millisecond from the future rather than wrapping, which
        // would break monotonicity.
        match self.logical.checked_add(1) {
            Some(next) => self.logical = next,
            None => {
                self.physical_ms += 1;
                self.logical = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn follows_wall_clock_when_it_moves_ahead() {
        let mut c = Hlc::new(A, 1000);
        assert_eq!(
            c.now(10),
            Timestamp {
                physical_ms: 10,
                logical: 0,
                node: A
            }
        );
        assert_eq!(
            c.now(20),
            Timestamp {
                physical_ms: 20,
                logical: 0,
                node: A
            }
        );
    }

    #[test]
    fn counts_logically_when_wall_clock_stalls_or_goes_back() {
        let mut c = Hlc::new(A, 1000);
        let t1 = c.now(100);
        let t2 = c.now(100);
        let t3 = c.now(50);
        assert!(t1 < t2 && t2 < t3);
        assert_eq!(
            t3,
            Timestamp {
                physical_ms: 100,
                logical: 2,
                node: A
            }
        );
    }

    #[test]
    fn causally_later_write_wins_despite_slow_clock() {
        let mut fast = Hlc::new(A, 10_000);
        let mut slow = Hlc::new(B, 10_000);
        let remote = fast.now(5_000);
        slow.observe(remote, 1_000).unwrap();
        let later = slow.now(1_001);
        assert!(later > remote);
    }

    #[test]
    fn rejects_remote_too_far_ahead_and_stays_put() {
        let mut c = Hlc::new(A, 500);
        let before = c.now(1_000);
        let far = Timestamp {
            physical_ms: 1_501,
            logical: 0,
            node: B,
        };
        let err = c.observe(far, 1_000).unwrap_err();
        assert_eq!(
            err,
            Error::ClockSkew {
                remote_ms: 1_501,
                local_ms: 1_000,
                max_offset_ms: 500
            }
        );
        assert_eq!(c.high_water(), before);
        let ok = Timestamp {
            physical_ms: 1_500,
            logical: 7,
            node: B,
        };
        c.observe(ok, 1_000).unwrap();
        assert_eq!(
            c.now(1_000),
            Timestamp {
                physical_ms: 1_500,
                logical: 8,
                node: A
            }
        );
    }

    #[test]
    fn logical_overflow_borrows_a_millisecond() {
        let mut c = Hlc::resume(
            A,
            0,
            Timestamp {
                physical_ms: 7,
                logical: u32::MAX,
                node: A,
            },
        );
        assert_eq!(
            c.now(7),
            Timestamp {
                physical_ms: 8,
                logical: 0,
                node: A
            }
        );
    }

    #[test]
    fn resume_is_monotonic_across_restart() {
        let mut c = Hlc::new(A, 0);
        let last = c.now(9_000);
        let mut restarted = Hlc::resume(A, 0, c.high_water());
        assert!(restarted.now(1_000) > last);
    }

    #[test]
    fn ties_break_by_node() {
        let a = Timestamp {
            physical_ms: 1,
            logical: 1,
            node: A,
        };
        let b = Timestamp {
            physical_ms: 1,
            logical: 1,
            node: B,
        };
        assert!(a < b);
    }
}
