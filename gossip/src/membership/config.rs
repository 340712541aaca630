//! SWIM timings and limits, named with their unit last, defaulted for a LAN or loopback cluster.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Configuration of SWIM membership (the `[membership]` section of a node config).
///
/// With the defaults a dead or partitioned node is suspected within about two probe periods of
/// its peers and declared down `suspect_to_down_ms` later: about 3 to 5 seconds in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// How often each member probes a random other member. Default 1000.
    pub probe_period_ms: u64,
    /// How long a direct probe waits for its ack before asking others to probe indirectly;
    /// must be below `probe_period_ms`. Default 300.
    pub probe_rtt_ms: u64,
    /// How many members are asked to probe indirectly. Default 3.
    pub indirect_probes: usize,
    /// How long a suspect member has to refute the suspicion before it is declared down.
    /// Default 2000.
    pub suspect_to_down_ms: u64,
    /// How many times each membership update is piggybacked on outgoing packets. Default 6.
    pub update_transmissions_max: u8,
    /// How often updates are gossiped besides probes, and to how many members. Default 200.
    pub gossip_period_ms: u64,
    /// Members gossiped to every `gossip_period_ms`. Default 3.
    pub gossip_fanout: usize,
    /// How often a member asks a random peer for its member list, to discover everyone in a
    /// larger cluster. Default 10000.
    pub announce_period_ms: u64,
    /// How often a member announces itself to members it believes down, so that both sides of
    /// a healed partition find each other again. Default 2000.
    pub announce_down_period_ms: u64,
    /// Members believed down that are announced to every `announce_down_period_ms`. Default 2.
    pub announce_down_fanout: usize,
    /// While this member has no live peer (not joined yet, or cut off), how often it announces
    /// itself again to its seeds and known members. Default 1000.
    pub rejoin_period_ms: u64,
    /// Seeds and known members announced to per rejoin attempt. Default 8.
    pub rejoin_targets_max: usize,
    /// How long foca remembers a down member before forgetting it (it may then rejoin with the
    /// same identity). The member table keeps it regardless. Default 3600000.
    pub remove_down_after_ms: u64,
    /// Largest SWIM packet, wire version byte included. Must fit a QUIC datagram at the
    /// smallest path MTU (about 1150 bytes). Default 1100.
    pub packet_bytes_max: usize,
    /// After a graceful leave, how long the driver keeps running so that the leave reaches
    /// peers before the transport closes. Default 300.
    pub leave_linger_ms: u64,
    /// Capacity of the driver's member-event channel; events beyond it are dropped and counted
    /// (the member table stays exact). Default 1024.
    pub events_queue_len_max: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_period_ms: 1_000,
            probe_rtt_ms: 300,
            indirect_probes: 3,
            suspect_to_down_ms: 2_000,
            update_transmissions_max: 6,
            gossip_period_ms: 200,
            gossip_fanout: 3,
            announce_period_ms: 10_000,
            announce_down_period_ms: 2_000,
            announce_down_fanout: 2,
            rejoin_period_ms: 1_000,
            rejoin_targets_max: 8,
            remove_down_after_ms: 3_600_000,
            packet_bytes_max: 1_100,
            leave_linger_ms: 300,
            events_queue_len_max: 1_024,
        }
    }
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

impl MembershipConfig {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.to_string(),
            })
        };
        let positive: [(&'static str, u64); 9] = [
            ("probe_period_ms", self.probe_period_ms),
            ("probe_rtt_ms", self.probe_rtt_ms),
            ("suspect_to_down_ms", self.suspect_to_down_ms),
            ("gossip_period_ms", self.gossip_period_ms),
            ("announce_period_ms", self.announce_period_ms),
            ("announce_down_period_ms", self.announce_down_period_ms),
            ("rejoin_period_ms", self.rejoin_period_ms),
            ("remove_down_after_ms", self.remove_down_after_ms),
            ("events_queue_len_max", self.events_queue_len_max as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(key, "must be at least 1");
        }
        if self.probe_rtt_ms >= self.probe_period_ms {
            return bad("probe_rtt_ms", "must be below probe_period_ms");
        }
        let counts: [(&'static str, usize); 5] = [
            ("indirect_probes", self.indirect_probes),
            (
                "update_transmissions_max",
                self.update_transmissions_max.into(),
            ),
            ("gossip_fanout", self.gossip_fanout),
            ("announce_down_fanout", self.announce_down_fanout),
            ("rejoin_targets_max", self.rejoin_targets_max),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, v)| *v == 0) {
            return bad(key, "must be at least 1");
        }
        if !(256..=65_000).contains(&self.packet_bytes_max) {
            return bad("packet_bytes_max", "must be between 256 and 65000");
        }
        Ok(())
    }

    /// The foca configuration these values stand for. Call after [`Self::validate`].
    pub(crate) fn to_foca(&self) -> foca::Config {
        let nz = |v: usize| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        foca::Config {
            probe_period: ms(self.probe_period_ms),
            probe_rtt: ms(self.probe_rtt_ms),
            num_indirect_probes: nz(self.indirect_probes),
            max_transmissions: NonZeroU8::new(self.update_transmissions_max)
                .unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: ms(self.suspect_to_down_ms),
            remove_down_after: Some(ms(self.remove_down_after_ms)),
            // One byte of every datagram is the crdtkv wire version.
            max_packet_size: nz(self.packet_bytes_max - 1),
            // A member we consider down learns it at once and renews itself, instead of
            // talking into the void until it notices.
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: ms(self.announce_period_ms),
                num_members: NonZeroUsize::MIN,
            }),
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: ms(self.announce_down_period_ms),
                num_members: nz(self.announce_down_fanout),
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: ms(self.gossip_period_ms),
                num_members: nz(self.gossip_fanout),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        MembershipConfig::default().validate().unwrap();
        let config = MembershipConfig {
            probe_rtt_ms: 5_000,
            ..MembershipConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("probe_rtt_ms"), "{err}");
        let config = MembershipConfig {
            gossip_fanout: 0,
            ..MembershipConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("gossip_fanout")
        );
    }
}
