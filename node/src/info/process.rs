//! What the kernel knows about this process, from `/proc/self` (Linux). Reading files keeps
//! this free of `unsafe` libc calls; on systems without `/proc` every value reads as 0.

/// Memory use of the process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`).
    pub rss_peak_bytes: u64,
    /// Resident anonymous memory (`RssAnon`): the heap and stacks, without mapped files.
    pub anon_bytes: u64,
}

/// CPU time used by the process, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// In the kernel.
    pub system_s: f64,
    /// In user space.
    pub user_s: f64,
}

/// Reads a `Name:   123 kB` field of a `/proc/<pid>/status` text, in bytes.
pub fn status_field_bytes(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        let unit = match parts.next() {
            Some("kB") => 1024,
            _ => 1,
        };
        Some(value * unit)
    })
}

/// The memory of this process.
pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Memory {
        rss_bytes: status_field_bytes(&status, "VmRSS").unwrap_or(0),
        rss_peak_bytes: status_field_bytes(&status, "VmHWM").unwrap_or(0),
        anon_bytes: status_field_bytes(&status, "RssAnon").unwrap_or(0),
    }
}

/// The CPU time of this process.
pub fn cpu_time() -> CpuTime {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are
    // space-separated, utime and stime being the 12th and 13th of them.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0) as f64
            / 100.0
    };
    CpuTime {
        user_s: ticks(11),
        system_s: ticks(12),
    }
}

/// Bytes as Redis' `bytesToHuman`: `512B`, `1.50K`, `2.00M`, `3.25G`.
pub fn human_bytes(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K {
        format!("{bytes}B")
    } else if b < K * K {
        format!("{:.2}K", b / K)
    } else if b < K * K * K {
        format!("{:.2}M", b / (K * K))
    } else {
        format!("{:.2}G", b / (K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tcrdtkv\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t4\n";
        assert_eq!(status_field_bytes(status, "VmRSS"), Some(1024 * 1024));
        assert_eq!(status_field_bytes(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(status_field_bytes(status, "Threads"), Some(4));
        assert_eq!(status_field_bytes(status, "Vm"), None);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(memory().rss_bytes > 0);
        }
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00M");
    }
}
