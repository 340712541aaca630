//! The built-in INFO sections. Field names are Redis' where Redis has the field, so dashboards
//! and tools that parse INFO keep working; fields that only crdtkv has are named for what they
//! count and documented here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::process::{cpu_time, human_bytes, memory};
use super::{InfoSection, InfoWriter};
use crate::state::NodeState;

/// The Redis release whose commands and replies crdtkv follows; clients that read
/// `redis_version` to pick features see this.
pub const REDIS_COMPAT_VERSION: &str = "7.2.4";

/// A section rendered by a plain function.
struct Builtin {
    name: &'static str,
    is_default: bool,
    render: fn(&NodeState, &mut InfoWriter),
}

impl InfoSection for Builtin {
    fn name(&self) -> &'static str {
        self.name
    }

    fn is_default(&self) -> bool {
        self.is_default
    }

    fn render(&self, state: &NodeState, out: &mut InfoWriter) {
        (self.render)(state, out);
    }
}

/// The built-in sections in Redis' order.
pub(super) fn sections() -> Vec<Arc<dyn InfoSection>> {
    let s = |name, render| -> Arc<dyn InfoSection> {
        Arc::new(Builtin {
            name,
            is_default: true,
            render,
        })
    };
    vec![
        s("server", server),
        s("clients", clients),
        s("memory", memory_section),
        s("persistence", persistence),
        s("stats", stats),
        s("replication", replication),
        s("cpu", cpu),
        s("keyspace", keyspace),
    ]
}

fn server(state: &NodeState, out: &mut InfoWriter) {
    let uptime = state.started.elapsed().as_secs();
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let os_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.field("redis_version", REDIS_COMPAT_VERSION);
    // crdtkv's own version; redis_version above is the Redis release it is compatible with.
    out.field("crdtkv_version", env!("CARGO_PKG_VERSION"));
    out.field("redis_mode", "standalone");
    out.field(
        "os",
        format!(
            "{} {} {}",
            std::env::consts::OS,
            os_release.trim(),
            std::env::consts::ARCH
        ),
    );
    out.field("arch_bits", usize::BITS);
    out.field("multiplexing_api", "epoll");
    out.field("process_id", std::process::id());
    out.field("run_id", &state.run_id);
    // This node's id in CRDT state.
    out.field("node_id", state.node_id);
    out.field("tcp_port", state.config.server.port);
    out.field("server_time_usec", now_us);
    out.field("uptime_in_seconds", uptime);
    out.field("uptime_in_days", uptime / 86_400);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    out.field("executable", exe);
    let config_file = state.config_file.as_ref().map(|p| p.display().to_string());
    out.field("config_file", config_file.unwrap_or_default());
}

fn clients(state: &NodeState, out: &mut InfoWriter) {
    let clients = state.clients.snapshot();
    let max_input = clients
        .iter()
        .map(|c| c.buffer_sizes().read)
        .max()
        .unwrap_or(0);
    let max_output = clients
        .iter()
        .map(|c| c.buffer_sizes().output)
        .max()
        .unwrap_or(0);
    out.field("connected_clients", clients.len());
    out.field("cluster_connections", 0);
    out.field("maxclients", state.clients.connections_max());
    out.field("client_recent_max_input_buffer", max_input);
    out.field("client_recent_max_output_buffer", max_output);
    out.field("blocked_clients", 0);
    out.field("tracking_clients", 0);
    out.field("clients_in_timeout_table", 0);
}

fn memory_section(state: &NodeState, out: &mut InfoWriter) {
    let m = memory();
    // Without a counting allocator, the anonymous resident memory (heap, stacks) is the
    // closest measure of what Redis calls used_memory.
    out.field("used_memory", m.anon_bytes);
    out.field("used_memory_human", human_bytes(m.anon_bytes));
    out.field("used_memory_rss", m.rss_bytes);
    out.field("used_memory_rss_human", human_bytes(m.rss_bytes));
    out.field("used_memory_peak", m.rss_peak_bytes);
    out.field("used_memory_peak_human", human_bytes(m.rss_peak_bytes));
    // RocksDB memtables and block cache, included in the figures above.
    let storage = state.rocks.as_ref().map_or(0, |r| r.memory_bytes());
    out.field("storage_memory", storage);
    out.field("storage_memory_human", human_bytes(storage));
    out.field("maxmemory", 0);
    out.field("maxmemory_human", "0B");
    out.field("maxmemory_policy", "noeviction");
    out.field("mem_allocator", "libc");
}

fn persistence(state: &NodeState, out: &mut InfoWriter) {
    let c = state.committer.stats();
    out.field("loading", 0);
    out.field("async_loading", 0);
    // Every write goes to RocksDB's write-ahead log: the equivalent of an always-on AOF.
    out.field("aof_enabled", 1);
    out.field("appendfsync", fsync_name(state.config.storage.fsync));
    let failed = state.stats.failed_commits.load(Ordering::Relaxed);
    out.field(
        "aof_last_write_status",
        if c.write_errors == 0 { "ok" } else { "err" },
    );
    // Group-commit counters of the storage writer: batches answered, RocksDB writes issued,
    // ops and payload bytes written, fsyncs, failures, and batches waiting now.
    out.field("storage_commits", c.commits);
    out.field("storage_write_groups", c.groups);
    out.field("storage_ops", c.ops);
    out.field("storage_bytes", c.bytes);
    out.field("storage_syncs", c.syncs);
    out.field("storage_write_errors", c.write_errors);
    out.field("storage_sync_errors", c.sync_errors);
    out.field("storage_queue_len", c.queue_len);
    out.field("failed_commits", failed);
}

/// The policy's name as in the config file and Redis' `appendfsync`.
pub fn fsync_name(policy: storage::FsyncPolicy) -> &'static str {
    match policy {
        storage::FsyncPolicy::Always => "always",
        storage::FsyncPolicy::EverySec => "everysec",
        storage::FsyncPolicy::Never => "no",
    }
}

fn stats(state: &NodeState, out: &mut InfoWriter) {
    let s = &state.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    out.field("total_connections_received", get(&s.connections_received));
    out.field("total_commands_processed", get(&s.commands_processed));
    out.field("total_net_input_bytes", get(&s.net_input_bytes));
    out.field("total_net_output_bytes", get(&s.net_output_bytes));
    out.field("rejected_connections", get(&s.rejected_connections));
    out.field("keyspace_hits", get(&s.keyspace_hits));
    out.field("keyspace_misses", get(&s.keyspace_misses));
    out.field("total_error_replies", get(&s.error_replies));
    // Connections closed after a malformed request.
    out.field("protocol_errors", get(&s.protocol_errors));
    // Moves of a connection to the connection thread of the other writers of its hot key.
    out.field("total_connection_moves", get(&s.connection_moves));
}

fn replication(state: &NodeState, out: &mut InfoWriter) {
    if let Some(cluster) = &state.cluster {
        crate::cluster::info::fields(cluster, state, out);
        return;
    }
    // A standalone node: what Redis shows for a master without replicas.
    out.field("role", "master");
    out.field("connected_slaves", 0);
    out.field("master_failover_state", "no-failover");
    out.field("master_replid", &state.run_id);
    out.field("master_replid2", "0000000000000000000000000000000000000000");
    out.field("master_repl_offset", 0);
    out.field("second_repl_offset", -1);
    out.field("repl_backlog_active", 0);
}

fn cpu(_state: &NodeState, out: &mut InfoWriter) {
    let t = cpu_time();
    out.field("used_cpu_sys", format!("{:.6}", t.system_s));
    out.field("used_cpu_user", format!("{:.6}", t.user_s));
}

fn keyspace(state: &NodeState, out: &mut InfoWriter) {
    let keys = state.keyspace.key_count();
    // Like Redis, a database without keys is not listed.
    if keys > 0 {
        out.field("db0", format!("keys={keys},expires=0,avg_ttl=0"));
    }
}
