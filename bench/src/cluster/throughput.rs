//! Write throughput under `redis-benchmark -t set`: the same load against node 1 of the
//! cluster (every write replicated to two peers) and against a standalone node.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::client::Reply;
use super::nodes::Group;

/// One redis-benchmark invocation's shape.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub clients: u32,
    pub requests: u64,
    pub keyspace: u64,
    pub pipeline: u32,
}

/// `redis-benchmark -t set ... --csv` against `port`; returns SET requests per second.
pub fn redis_benchmark(binary: &Path, port: u16, load: Load) -> Result<f64> {
    let output = Command::new(binary)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &load.clients.to_string()])
        .args(["-n", &load.requests.to_string()])
        .args(["-r", &load.keyspace.to_string()])
        .args(["-P", &load.pipeline.to_string()])
        .args(["-t", "set", "--csv"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "running {} (Debian: apt-get install redis-tools)",
                binary.display()
            )
        })?;
    ensure!(
        output.status.success(),
        "redis-benchmark failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    // `"SET","131578.95",...`; the header and anything else are skipped.
    for line in stdout.lines() {
        let mut cols = line.split(',').map(|c| c.trim().trim_matches('"'));
        if cols.next() == Some("SET")
            && let Some(Ok(rps)) = cols.next().map(str::parse::<f64>)
        {
            return Ok(rps);
        }
    }
    bail!(
        "redis-benchmark printed no SET result:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    )
}

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
