//! Prometheus metrics over HTTP: `GET /metrics` on `cluster.metrics_bind`.
//!
//! Every scrape builds a fresh [`prometheus_client`] registry from the drivers' published
//! status and the transport's counters (all cheap snapshots), so the values are always those
//! the gossip code itself keeps; nothing is double-counted on the write path.
//!
//! The HTTP side is a few lines over a tokio listener rather than an HTTP framework: the
//! endpoint answers one fixed GET, reads at most [`REQUEST_BYTES_MAX`] of the request and
//! closes the connection, which is all a Prometheus scraper needs, and keeps hyper and its
//! dependencies out of the daemon.

use std::net::SocketAddr;
use std::time::Duration;

use gossip::Transport;
use gossip::membership::MemberState;
use gossip::membership::driver::MembershipHandle;
use gossip::replication::LAG_BUCKETS_MS;
use gossip::replication::driver::ReplicationHandle;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::info::member_state_name;

/// Most bytes of a request read before answering.
pub const REQUEST_BYTES_MAX: usize = 8192;

/// How long a client gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Labels = Vec<(String, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// A histogram whose observations were bucketed already (by the replication driver), exposed
/// as a Prometheus histogram: `_bucket{le}` cumulative in `le` order, `_sum`, `_count`.
#[derive(Debug)]
struct BucketedHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, non-cumulative count)`, the last bound infinite.
    buckets: Vec<(f64, u64)>,
}

impl BucketedHistogram {
    fn from_lag(lag: &gossip::replication::LagHistogram) -> Self {
        let buckets = lag
            .counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let le = LAG_BUCKETS_MS.get(i).map_or(f64::INFINITY, |&b| b as f64);
                (le, n)
            })
            .collect();
        BucketedHistogram {
            sum: lag.sum_ms as f64,
            count: lag.count,
            buckets,
        }
    }
}

impl EncodeMetric for BucketedHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The metrics text as of now.
pub fn render(
    transport: &Transport,
    membership: &MembershipHandle,
    replication: &ReplicationHandle,
) -> String {
    let mut r = Registry::with_prefix("crdtkv");
    let view = membership.view();
    let members: Family<Labels, Gauge> = Family::default();
    for state in [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Down,
        MemberState::Left,
    ] {
        let n = view.members.iter().filter(|m| m.state == state).count();
        members
            .get_or_create(&vec![("state".into(), member_state_name(state).into())])
            .set(n as i64);
    }
    r.register("members", "Other members by SWIM state", members);

    let status = replication.status();
    let mode: Family<Labels, Gauge> = Family::default();
    for m in [
        gossip::replication::Mode::Normal,
        gossip::replication::Mode::Degraded,
        gossip::replication::Mode::CatchUp,
    ] {
        mode.get_or_create(&vec![("mode".into(), m.as_str().into())])
            .set(i64::from(status.mode == m));
    }
    r.register("replication_mode", "1 for the node's current mode", mode);
    gauge(
        &mut r,
        "caught_up",
        "1 once this run completed anti-entropy with every known member",
        i64::from(status.caught_up),
    );
    let lag: Family<Labels, Gauge> = Family::default();
    for p in replication.peers() {
        if let Some(ms) = p.lag_ms {
            lag.get_or_create(&vec![("peer".into(), p.node_id.to_string())])
                .set(i64::try_from(ms).unwrap_or(i64::MAX));
        }
    }
    r.register(
        "convergence_lag_ms",
        "Now minus the time up to which this node provably holds the peer's writes",
        lag,
    );
    if let Some(s) = replication.staleness_ms() {
        gauge(
            &mut r,
            "staleness_ms",
            "Bound on the staleness of a local read",
            i64::try_from(s).unwrap_or(i64::MAX),
        );
    }

    let m = &status.metrics;
    for (name, help, value) in [
        (
            "deltas_submitted",
            "Local deltas handed to replication",
            m.deltas_submitted,
        ),
        (
            "deltas_dropped",
            "Local deltas dropped on a full queue",
            m.deltas_dropped,
        ),
        (
            "delta_batches_sent",
            "Delta batches sent, per peer",
            m.delta_batches_sent,
        ),
        (
            "delta_keys_sent",
            "Keys in delta batches sent",
            m.delta_keys_sent,
        ),
        (
            "delta_bytes_sent",
            "Bytes of delta batches sent",
            m.delta_bytes_sent,
        ),
        (
            "delta_batches_received",
            "Delta batches received",
            m.delta_batches_received,
        ),
        (
            "delta_keys_received",
            "Keys in delta batches received",
            m.delta_keys_received,
        ),
        (
            "delta_bytes_received",
            "Bytes of delta batches received",
            m.delta_bytes_received,
        ),
        (
            "ae_rounds_started",
            "Anti-entropy sessions started",
            m.ae_rounds_started,
        ),
        (
            "ae_rounds_completed",
            "Anti-entropy sessions completed",
            m.ae_rounds_completed,
        ),
        (
            "ae_rounds_in_sync",
            "Sessions that found the roots equal",
            m.ae_rounds_in_sync,
        ),
        ("ae_rounds_failed", "Sessions abandoned", m.ae_rounds_failed),
        (
            "ae_keys_repaired",
            "Keys changed by anti-entropy",
            m.ae_keys_repaired,
        ),
        (
            "ae_bytes_sent",
            "Bytes of anti-entropy messages sent",
            m.ae_bytes_sent,
        ),
        (
            "ae_bytes_received",
            "Bytes of anti-entropy messages received",
            m.ae_bytes_received,
        ),
        (
            "tombstones_dropped",
            "Tombstones garbage-collected",
            m.tombstones_dropped,
        ),
        (
            "messages_malformed",
            "Replication messages that did not decode",
            m.messages_malformed,
        ),
        (
            "messages_over_limit",
            "Replication messages over a limit",
            m.messages_over_limit,
        ),
    ] {
        counter(&mut r, name, help, value);
    }
    r.register(
        "replication_lag_ms",
        "Delta batches received by lag from write to visible here, ms",
        BucketedHistogram::from_lag(&m.delta_lag),
    );

    let t = transport.counters();
    for (name, help, value) in [
        (
            "transport_datagrams_sent",
            "Datagrams sent",
            t.datagrams_sent,
        ),
        (
            "transport_datagrams_received",
            "Datagrams received",
            t.datagrams_received,
        ),
        ("transport_messages_sent", "Messages sent", t.messages_sent),
        (
            "transport_messages_received",
            "Messages received",
            t.messages_received,
        ),
        ("transport_bytes_sent", "Payload bytes sent", t.bytes_sent),
        (
            "transport_bytes_received",
            "Payload bytes received",
            t.bytes_received,
        ),
        (
            "transport_dropped_malformed",
            "Malformed datagrams or messages dropped",
            t.dropped_malformed,
        ),
        (
            "transport_dropped_oversized",
            "Oversized datagrams or messages dropped",
            t.dropped_oversized,
        ),
        (
            "transport_dropped_partitioned",
            "Traffic dropped by CLUSTER PARTITION",
            t.dropped_partitioned,
        ),
        (
            "transport_handshake_failures",
            "TLS handshakes that failed",
            t.handshake_failures,
        ),
        (
            "membership_rejected_malformed",
            "SWIM packets that did not decode",
            view.counters.rejected_malformed,
        ),
    ] {
        counter(&mut r, name, help, value);
    }
    let mut text = String::new();
    // Encoding into a String cannot fail.
    let _ = encode(&mut text, &r);
    text
}

/// Binds `addr` and serves `GET /metrics` until the runtime stops; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    transport: Transport,
    membership: MembershipHandle,
    replication: ReplicationHandle,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let (transport, membership, replication) =
                (transport.clone(), membership.clone(), replication.clone());
            tokio::spawn(async move {
                let mut request = Vec::with_capacity(1024);
                let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let mut buf = [0u8; 1024];
                    while request.len() < REQUEST_BYTES_MAX
                        && !request.windows(4).any(|w| w == b"\r\n\r\n")
                    {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let (status, body) =
                    if request.starts_with(b"GET /metrics ") || request.starts_with(b"GET / ") {
                        ("200 OK", render(&transport, &membership, &replication))
                    } else {
                        ("404 Not Found", "try GET /metrics\n".to_owned())
                    };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(local)
}
