//! What the `resp` and `cluster` scenarios share about the processes they run: finding the
//! `crdtkv` binary, running `redis-benchmark` and reading its CSV, CPU time from `/proc`, and
//! the median of the rounds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

/// The crdtkv binary: `explicit` (`--crdtkv`), else `crdtkv` next to this executable.
pub fn crdtkv_path(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("locating the bench binary")?
            .parent()
            .context("the bench binary has no directory")?
            .join("crdtkv"),
    };
    ensure!(
        path.is_file(),
        "no crdtkv binary at {}: run `cargo build --release -p node` first, or pass --crdtkv PATH",
        path.display()
    );
    Ok(path)
}

/// One redis-benchmark invocation's shape.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub clients: u32,
    pub requests: u64,
    pub keyspace: u64,
    pub pipeline: u32,
}

/// Runs one redis-benchmark test (`SET`, …) against `port` on 127.0.0.1 with `--csv`; returns
/// its requests per second.
pub fn redis_benchmark(binary: &Path, port: u16, test: &str, load: Load) -> Result<f64> {
    let output = Command::new(binary)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &load.clients.to_string()])
        .args(["-n", &load.requests.to_string()])
        .args(["-r", &load.keyspace.to_string()])
        .args(["-P", &load.pipeline.to_string()])
        .args(["-t", &test.to_lowercase()])
        .arg("--csv")
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
    parse_csv(&stdout)
        .into_iter()
        .find_map(|(t, rps)| (t == test).then_some(rps))
        .with_context(|| {
            format!(
                "redis-benchmark printed no result for {test}:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// `"SET","131578.95",...` lines (the header and anything else are skipped).
fn parse_csv(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.split(',').map(|c| c.trim().trim_matches('"'));
            let test = cols.next()?;
            let rps: f64 = cols.next()?.parse().ok()?;
            Some((test.to_owned(), rps))
        })
        .collect()
}

/// CPU time (user + system) `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/PID/stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Units of `/proc/PID/stat` times: Linux reports them in USER_HZ, which is 100 on every
/// architecture (independent of the kernel's internal tick rate).
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// The median; NaN for no samples.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"131578.95\",\"0.279\"\n\
                   \"GET\",\"1000.00\",\"0.2\"\n";
        assert_eq!(
            parse_csv(csv),
            vec![("SET".to_owned(), 131578.95), ("GET".to_owned(), 1000.0)]
        );
    }
}
