//! Write throughput under `redis-benchmark -t set`: the same load against node 1 of the
//! cluster (every write replicated to two peers) and against a standalone node.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};

use super::client::Reply;
use super::nodes::Group;

/// Writes a fresh sentinel key on node 1 once the load is over and waits until every peer shows
/// it and holds as many keys as node 1: the time for replication to catch up with the load.
/// (Delta batches of one stream may arrive out of order, so the key counts are checked too.)
pub fn wait_replicated(group: &Group, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut conns = group.conns()?;
    let key = format!("sentinel:{}:{:?}", std::process::id(), start);
    match conns[0].cmd(&[b"SET", key.as_bytes(), b"1"])? {
        Reply::Status(s) if s == "OK" => {}
        other => bail!("SET on node 1 answered {other:?}"),
    }
    loop {
        let mut done = true;
        for conn in &mut conns[1..] {
            done &= conn.cmd(&[b"GET", key.as_bytes()])? == Reply::Bulk(Some(b"1".to_vec()));
        }
        let sizes: Vec<u64> = conns
            .iter_mut()
            .map(|c| c.dbsize())
            .collect::<Result<_>>()?;
        if done && sizes.iter().all(|s| *s == sizes[0]) {
            return Ok(start.elapsed());
        }
        ensure!(
            start.elapsed() < timeout,
            "peers did not catch up with node 1 within {timeout:?}: DBSIZE {sizes:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
