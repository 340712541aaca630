//! Node identity as CRDT state sees it.
//!
//! A node id is a plain `u64` chosen by the operator (`node_id = 1` in the config file) or
//! generated once when a data directory is created. It is the actor of every dot, the owner of
//! a counter contribution and the tie-breaker of HLC timestamps, so it is kept small and `Copy`:
//! it is stored once per dot, per counter entry and per text run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity of one replica (one `crdtkv` node) in CRDT state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for NodeId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(NodeId)
    }
}

impl From<u64> for NodeId {
    fn from(value: u64) -> Self {
        NodeId(value)
    }
}
