//! What `INFO replication`, `CLUSTER INFO` and `CLUSTER MEMBERS` show: the membership table and
//! replication's freshness per peer, read from the drivers' published status.

use std::fmt::Write as _;

use gossip::MemberIdentity;
use gossip::membership::{LocalStatus, MemberState};
use gossip::replication::PeerStatus;

use super::Cluster;
use crate::info::InfoWriter;
use crate::state::NodeState;

/// A member state's name.
pub fn member_state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Down => "down",
        MemberState::Left => "left",
    }
}

/// This node's membership status's name.
pub fn local_status_name(status: LocalStatus) -> &'static str {
    match status {
        LocalStatus::Joining => "joining",
        LocalStatus::Active => "active",
        LocalStatus::Isolated => "isolated",
        LocalStatus::Left => "left",
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// One member as this node sees it: membership's row joined with replication's freshness.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// The member's identity (address, generation).
    pub identity: MemberIdentity,
    /// `alive`, `suspect`, `down`, `left`, or `myself`.
    pub state: &'static str,
    /// Replication's view, if replication knows the member.
    pub peer: Option<PeerStatus>,
    /// Whether this node cut it with `CLUSTER PARTITION`.
    pub partitioned: bool,
    /// Its SWIM incarnation (grows as it refutes suspicion).
    pub incarnation: u16,
}

/// Every member, this node first, then by node id.
pub fn members(cluster: &Cluster) -> Vec<MemberRow> {
    let view = cluster.membership.view();
    let peers = cluster.replication.peers();
    let cut = cluster.transport.cut_set();
    let mut rows = vec![MemberRow {
        identity: view.local,
        state: "myself",
        peer: None,
        partitioned: false,
        incarnation: 0,
    }];
    for m in &view.members {
        rows.push(MemberRow {
            identity: m.identity(),
            state: member_state_name(m.state),
            peer: peers.iter().find(|p| p.node_id == m.node_id).copied(),
            partitioned: cut.contains(&m.node_id),
            incarnation: m.incarnation,
        });
    }
    // Members replication counts (configured ones) that membership has not seen yet.
    for p in peers {
        if !rows.iter().any(|r| r.identity.node_id == p.node_id) {
            rows.push(MemberRow {
                identity: MemberIdentity::new(p.node_id, ([0, 0, 0, 0], 0).into(), 0),
                state: "unseen",
                peer: Some(p),
                partitioned: cut.contains(&p.node_id),
                incarnation: 0,
            });
        }
    }
    rows
}

/// `CLUSTER MEMBERS`: one line per member:
/// `<id> <addr> <state> lag_ms=<ms|-> synced_at=<ms|-> in_sync=<0|1> partitioned=<0|1>
/// generation=<g> incarnation=<i>` (no lag fields on this node's own line, `myself`).
pub fn members_text(cluster: &Cluster) -> String {
    let mut text = String::new();
    for row in members(cluster) {
        let _ = write!(
            text,
            "{} {} {}",
            row.identity.node_id, row.identity.addr, row.state
        );
        if let Some(p) = row.peer {
            let _ = write!(
                text,
                " lag_ms={} synced_at={} in_sync={}",
                opt(p.lag_ms),
                opt(p.synced_at.map(|t| t.physical_ms)),
                u8::from(p.in_sync)
            );
        }
        let _ = writeln!(
            text,
            " partitioned={} generation={} incarnation={}",
            u8::from(row.partitioned),
            row.identity.generation,
            row.incarnation
        );
    }
    text
}

/// The fields of `CLUSTER INFO` and of `INFO replication` on a cluster node.
pub fn fields(cluster: &Cluster, state: &NodeState, out: &mut InfoWriter) {
    let view = cluster.membership.view();
    let status = cluster.replication.status();
    let peers = cluster.replication.peers();
    out.field("role", "master");
    out.field("crdtkv_mode", "cluster");
    out.field("node_id", cluster.node_id);
    out.field("quic_addr", cluster.transport.local_addr());
    out.field("membership", local_status_name(view.status));
    out.field("replication_mode", status.mode.as_str());
    out.field("caught_up", u8::from(status.caught_up));
    out.field("writes_accepted", u8::from(state.gate.is_open()));
    out.field("members_known", view.members.len() + 1);
    out.field(
        "members_alive",
        1 + view
            .members
            .iter()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .count(),
    );
    out.field("staleness_ms", opt(cluster.replication.staleness_ms()));
    let cut: Vec<String> = cluster
        .transport
        .cut_set()
        .iter()
        .map(ToString::to_string)
        .collect();
    out.field("partitioned_from", cut.join(","));
    for (i, p) in peers.iter().enumerate() {
        out.field(
            &format!("peer{i}"),
            format!(
                "id={},reachable={},in_sync={},lag_ms={},synced_at={}",
                p.node_id,
                u8::from(p.reachable),
                u8::from(p.in_sync),
                opt(p.lag_ms),
                opt(p.synced_at.map(|t| t.physical_ms))
            ),
        );
    }
    let m = &status.metrics;
    out.field("delta_batches_sent", m.delta_batches_sent);
    out.field("delta_bytes_sent", m.delta_bytes_sent);
    out.field("delta_batches_received", m.delta_batches_received);
    out.field("delta_bytes_received", m.delta_bytes_received);
    out.field("deltas_dropped", m.deltas_dropped);
    out.field("ae_rounds_started", m.ae_rounds_started);
    out.field("ae_rounds_completed", m.ae_rounds_completed);
    out.field("ae_rounds_in_sync", m.ae_rounds_in_sync);
    out.field("ae_keys_repaired", m.ae_keys_repaired);
    out.field("ae_bytes_sent", m.ae_bytes_sent);
    out.field("ae_bytes_received", m.ae_bytes_received);
    out.field("tombstones_dropped", m.tombstones_dropped);
    out.field("repl_lag_p50_ms", opt(m.delta_lag.quantile_bound_ms(0.5)));
    out.field("repl_lag_p99_ms", opt(m.delta_lag.quantile_bound_ms(0.99)));
    let t = cluster.transport.counters();
    out.field(
        "messages_malformed",
        m.messages_malformed + t.dropped_malformed,
    );
    out.field(
        "messages_oversized",
        m.messages_over_limit + t.dropped_oversized,
    );
    out.field("handshake_failures", t.handshake_failures);
}
