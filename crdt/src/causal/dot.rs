//! One event of one node.

use serde::{Deserialize, Serialize};

use crate::node_id::NodeId;

/// The `counter`-th event of `node` (counters start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The node that created the event.
    pub node: NodeId,
    /// Its position in that node's sequence of events; at least 1.
    pub counter: u64,
}

impl Dot {
    /// The dot `(node, counter)`.
    pub const fn new(node: NodeId, counter: u64) -> Self {
        Dot { node, counter }
    }
}
