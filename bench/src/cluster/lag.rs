//! Replication lag: from a write acknowledged on node 1 to the value visible on the others.
//!
//! One thread holds a connection to every node. It `SET`s a unique value on node 1; the
//! moment the `+OK` arrives it sends `GET` for that key to every other node at once, reads the
//! replies, and repeats the `GET`s on the nodes that do not show the value yet. A sample is
//! the time from the acknowledgement to the arrival of the first reply that shows the value,
//! so it errs high by at most one `GET` round trip (tens of microseconds on loopback). The next
//! write goes out once every node shows the previous one, after `pause_us`: with no pause a
//! steady stream of small writes, each waiting for its replication (node 1 then sees a write
//! every 1–3 ms, so its outbox holds each delta for the rest of `delta_batch_delay_ms` after the
//! previous batch); with a pause longer than that delay, writes that each find the stream
//! quiet and are sent at once.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::client::{Conn, Reply};
use super::nodes::Group;

/// Lag samples in microseconds, per reading node.
pub struct Lag {
    /// `(node id, samples)`.
    pub per_node: Vec<(u64, Vec<u64>)>,
    /// Writes whose value did not show everywhere within [`VISIBLE_TIMEOUT`].
    pub timeouts: u64,
    pub writes: usize,
}

/// After this long a write counts as not replicated and the next one goes out.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes not sampled at the start (connections and code warm up).
const WARMUP_WRITES: usize = 100;

pub fn measure(group: &Group, writes: usize, pause_us: u64) -> Result<Lag> {
    let mut writer = group.node(1).conn()?;
    let mut readers: Vec<(u64, Conn)> = group
        .nodes
        .iter()
        .filter(|n| n.id != 1)
        .map(|n| Ok((n.id, n.conn()?)))
        .collect::<Result<_>>()?;
    let mut per_node: Vec<(u64, Vec<u64>)> = readers
        .iter()
        .map(|(id, _)| (*id, Vec::with_capacity(writes)))
        .collect();
    let nonce = std::process::id();
    let mut timeouts = 0;
    let mut pending = vec![false; readers.len()];
    for i in 0..WARMUP_WRITES + writes {
        let key = format!("lag:{nonce}:{i}");
        let value = format!("v{i}-{nonce}");
        match writer.cmd(&[b"SET", key.as_bytes(), value.as_bytes()])? {
            Reply::Status(s) if s == "OK" => {}
            other => bail!("SET on node 1 answered {other:?}"),
        }
        let acked = Instant::now();
        let want = Reply::Bulk(Some(value.into_bytes()));
        pending.fill(true);
        while pending.iter().any(|p| *p) {
            for (r, (_, conn)) in readers.iter_mut().enumerate() {
                if pending[r] {
                    conn.queue(&[b"GET", key.as_bytes()]);
                    conn.flush()?;
                }
            }
            for (r, (id, conn)) in readers.iter_mut().enumerate() {
                if !pending[r] {
                    continue;
                }
                let reply = conn.read()?;
                let elapsed = acked.elapsed();
                if reply == want {
                    pending[r] = false;
                    if i >= WARMUP_WRITES {
                        per_node[r].1.push(elapsed.as_micros() as u64);
                    }
                } else if reply != Reply::Bulk(None) {
                    bail!("GET {key} on node {id} answered {reply:?}");
                }
            }
            if acked.elapsed() > VISIBLE_TIMEOUT {
                timeouts += 1;
                break;
            }
        }
        if pause_us > 0 {
            std::thread::sleep(Duration::from_micros(pause_us));
        }
    }
    Ok(Lag {
        per_node,
        timeouts,
        writes,
    })
}

/// The `q` quantile (nearest rank) of sorted samples.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
