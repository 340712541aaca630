//! The receiving end of one peer's delta stream: which batches arrived, and up to which of the
//! peer's watermarks this node provably holds the peer's writes (see "Freshness" in
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet};

use crdt::Timestamp;

use super::wire::SyncPoint;

/// The state of one peer's stream as received here.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The stream (one per run of the peer's replicator; later runs have larger ids).
    stream: u64,
    /// All batches up to this one are accounted for (received, or covered by anti-entropy).
    /// `None` until anti-entropy anchors the stream.
    contiguous: Option<u64>,
    /// Batches received beyond `contiguous`.
    received: BTreeSet<u64>,
    /// Watermark claims: every write acknowledged before the timestamp is in batches ≤ the key.
    claims: BTreeMap<u64, Timestamp>,
    /// Since when something beyond `contiguous` is waiting (a gap, or mere reordering).
    gap_since_ms: Option<u64>,
}

impl Link {
    pub(crate) fn new(stream: u64) -> Self {
        Link {
            stream,
            contiguous: None,
            received: BTreeSet::new(),
            claims: BTreeMap::new(),
            gap_since_ms: None,
        }
    }

    /// Whether anti-entropy has anchored the stream.
    #[cfg(test)]
    pub(crate) fn is_anchored(&self) -> bool {
        self.contiguous.is_some()
    }

    /// Whether the stream is stuck: not anchored, or a gap older than `after_ms`.
    pub(crate) fn is_stalled(&self, now_ms: u64, after_ms: u64) -> bool {
        self.contiguous.is_none()
            || self
                .gap_since_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= after_ms)
    }

    /// A batch `seq` of `stream` with `watermark` arrived. Returns a new lower bound for
    /// `synced_at`, if one became provable. `stream` must be this link's (see [`Self::accepts`]).
    pub(crate) fn on_batch(
        &mut self,
        seq: u64,
        watermark: Timestamp,
        window: usize,
        now_ms: u64,
    ) -> Option<Timestamp> {
        if self.contiguous.is_some_and(|c| seq <= c) {
            return None; // a duplicate
        }
        self.received.insert(seq);
        self.claim(seq, watermark);
        self.settle(window, now_ms)
    }

    /// A heartbeat: every write acknowledged before `watermark` is in batches ≤ `seq`.
    pub(crate) fn on_heartbeat(
        &mut self,
        seq: u64,
        watermark: Timestamp,
        window: usize,
        now_ms: u64,
    ) -> Option<Timestamp> {
        self.claim(seq, watermark);
        self.settle(window, now_ms)
    }

    /// Anti-entropy proved that this node holds everything of the peer as of `point`: every
    /// batch ≤ `point.seq` is accounted for. Returns the new lower bound for `synced_at`.
    pub(crate) fn anchor(&mut self, point: SyncPoint, window: usize, now_ms: u64) -> Timestamp {
        debug_assert_eq!(point.stream, self.stream);
        let c = self.contiguous.map_or(point.seq, |c| c.max(point.seq));
        self.contiguous = Some(c);
        let settled = self.settle(window, now_ms);
        settled.map_or(point.watermark, |w| w.max(point.watermark))
    }

    /// Whether a message of `stream` belongs to this link; a later stream replaces it (the peer
    /// restarted), an earlier one is stale.
    pub(crate) fn accepts(&self, stream: u64) -> bool {
        stream == self.stream
    }

    pub(crate) fn stream(&self) -> u64 {
        self.stream
    }

    fn claim(&mut self, seq: u64, watermark: Timestamp) {
        let slot = self.claims.entry(seq).or_insert(watermark);
        *slot = (*slot).max(watermark);
    }

    /// Advances `contiguous` over received batches and applies the claims it covers.
    fn settle(&mut self, window: usize, now_ms: u64) -> Option<Timestamp> {
        let mut best = None;
        if let Some(mut c) = self.contiguous {
            while self.received.first().is_some_and(|&s| s <= c + 1) {
                let s = self.received.pop_first().expect("checked");
                c = c.max(s);
            }
            self.contiguous = Some(c);
            while let Some(entry) = self.claims.first_entry() {
                if *entry.key() > c {
                    break;
                }
                let w = entry.remove();
                best = Some(best.map_or(w, |b: Timestamp| b.max(w)));
            }
        }
        if self.received.len() + self.claims.len() > window {
            if self.contiguous.is_some() {
                // Too much out of order to track: give up on the stream until anti-entropy
                // anchors it again (which repairs whatever is missing).
                self.contiguous = None;
                self.received.clear();
                self.claims.clear();
            } else {
                // Not anchored yet: keep the newest, which anchoring is most likely to need.
                while self.received.len() > window / 2 {
                    self.received.pop_first();
                }
                while self.claims.len() > window / 2 {
                    self.claims.pop_first();
                }
            }
        }
        let waiting = !self.received.is_empty() || !self.claims.is_empty();
        self.gap_since_ms = match (waiting, self.gap_since_ms) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now_ms),
        };
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::NodeId;

    fn w(ms: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(9),
        }
    }

    fn point(seq: u64, ms: u64) -> SyncPoint {
        SyncPoint {
            stream: 1,
            seq,
            watermark: w(ms),
        }
    }

    #[test]
    fn nothing_is_provable_before_anchoring() {
        let mut link = Link::new(1);
        assert_eq!(link.on_batch(1, w(10), 64, 0), None);
        assert_eq!(link.on_heartbeat(1, w(20), 64, 0), None);
        assert!(link.is_stalled(0, 1000));
        // Anchored at seq 0: the batch and heartbeat received before count.
        assert_eq!(link.anchor(point(0, 5), 64, 0), w(20));
        assert!(!link.is_stalled(0, 1000));
    }

    #[test]
    fn contiguous_batches_advance_reordering_waits_a_gap_stalls() {
        let mut link = Link::new(1);
        link.anchor(point(3, 100), 64, 0);
        assert_eq!(link.on_batch(4, w(110), 64, 1), Some(w(110)));
        assert_eq!(link.on_batch(6, w(130), 64, 2), None, "5 is missing");
        assert_eq!(link.on_heartbeat(6, w(140), 64, 3), None);
        assert!(!link.is_stalled(500, 1000), "could be reordering");
        assert!(link.is_stalled(1002, 1000), "a gap older than the limit");
        assert_eq!(link.on_batch(5, w(120), 64, 4), Some(w(140)));
        assert!(!link.is_stalled(5000, 1000));
        assert_eq!(link.on_batch(5, w(120), 64, 5), None, "duplicate");
    }

    #[test]
    fn anchoring_repairs_a_gap() {
        let mut link = Link::new(1);
        link.anchor(point(1, 10), 64, 0);
        assert_eq!(link.on_batch(3, w(30), 64, 0), None);
        assert_eq!(link.on_batch(4, w(40), 64, 0), None);
        // Anti-entropy as of seq 2 fills the gap; 3 and 4 then count.
        assert_eq!(link.anchor(point(2, 25), 64, 0), w(40));
    }

    #[test]
    fn overflowing_the_window_breaks_the_link() {
        let mut link = Link::new(1);
        link.anchor(point(0, 0), 4, 0);
        for seq in 2..10 {
            link.on_batch(seq, w(seq), 4, 0);
        }
        assert!(!link.is_anchored());
        assert_eq!(link.on_batch(1, w(1), 4, 0), None);
    }
}
