//! Starting crdtkv processes for the scenario: a 3-node cluster or a standalone node, each in a
//! fresh temporary directory, on free loopback ports, configured like `config/cluster/*.toml`
//! (plus `fsync = "everysec"` and log level `warn`). Every process is killed and reaped when its
//! handle is dropped, also when the scenario fails or panics.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use super::client::{Conn, Info, Reply};

/// How long a node may take to answer PING, and a cluster to see every member.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One crdtkv process, killed and reaped on drop.
pub struct Node {
    pub id: u64,
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Node {
    pub fn conn(&self) -> Result<Conn> {
        Conn::connect(self.port)
    }

    /// Fails, with the end of the node's log, if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "crdtkv node {} exited ({status}); end of its log:\n{}",
                self.id,
                log_tail(&self.log)
            );
        }
        Ok(())
    }

    /// CPU time (user + system) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        crate::procs::cpu_seconds(self.child.id())
    }

    fn wait_ping(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_alive()?;
            if let Ok(mut conn) = self.conn()
                && conn
                    .cmd(&[b"PING"])
                    .is_ok_and(|r| r == Reply::Status("PONG".into()))
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "node {} did not answer PING on port {} within {START_TIMEOUT:?}; end of its \
                 log:\n{}",
                self.id,
                self.port,
                log_tail(&self.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Killed hard: nothing of the run needs to survive.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes started in one temporary directory; the processes are killed before the
/// directory is removed (fields drop in order).
pub struct Group {
    pub nodes: Vec<Node>,
    dir: TempDir,
}

impl Group {
    /// Keeps the directory (configs, logs, data) after the run, for a look at the logs.
    pub fn keep(&mut self) {
        self.dir.disable_cleanup(true);
        eprintln!("cluster: keeping {}", self.dir.path().display());
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// A fresh connection to every node, in node order.
    pub fn conns(&self) -> Result<Vec<Conn>> {
        self.nodes.iter().map(Node::conn).collect()
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.nodes.iter_mut().try_for_each(Node::check_alive)
    }

    /// Waits until every node answers PING and, in a cluster, sees every member alive, accepts
    /// writes and is in `normal` replication mode.
    fn wait_ready(&mut self, cluster: bool) -> Result<()> {
        for node in &mut self.nodes {
            node.wait_ping()?;
        }
        if !cluster {
            return Ok(());
        }
        let n = self.nodes.len() as u64;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_alive()?;
            let infos: Vec<Info> = self
                .conns()?
                .iter_mut()
                .map(Conn::cluster_info)
                .collect::<Result<_>>()?;
            if infos.iter().all(|i| {
                i.u64("members_alive") == n
                    && i.u64("writes_accepted") == 1
                    && i.str("replication_mode") == "normal"
            }) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let states: Vec<String> = infos
                    .iter()
                    .map(|i| {
                        format!(
                            "alive={} writes={} mode={}",
                            i.str("members_alive"),
                            i.str("writes_accepted"),
                            i.str("replication_mode")
                        )
                    })
                    .collect();
                bail!("the cluster did not form within {START_TIMEOUT:?}: {states:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Ports picked while all the sockets are held, so that no two of them collide.
struct Ports {
    resp: Vec<u16>,
    quic: Vec<u16>,
    metrics: Vec<u16>,
}

fn free_ports(n: usize) -> Result<Ports> {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for _ in 0..2 * n {
        tcp.push(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?);
    }
    for _ in 0..n {
        udp.push(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?);
    }
    let tcp: Vec<u16> = tcp
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    let quic = udp
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    Ok(Ports {
        resp: tcp[..n].to_vec(),
        metrics: tcp[n..].to_vec(),
        quic,
    })
}

/// Runs one of crdtkv's tools (`cert ...`) to completion.
fn run_tool(cmd: &mut Command) -> Result<()> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        output.status.success(),
        "{cmd:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn toml_str(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// The part of a node's config every start shares: storage and logging.
fn common_config(out: &mut String, id: u64, data: &Path, port: u16) {
    let _ = write!(
        out,
        "[node]\nnode_id = {id}\ndata_dir = {data}\n\n\
         [server]\nbind = \"127.0.0.1\"\nport = {port}\n\n\
         [limits]\nvalue_bytes_max = 4194304\n\n\
         [storage]\nfsync = \"everysec\"\n\n\
         [log]\nlevel = \"warn\"\n\n",
        data = toml_str(data),
    );
}

fn spawn(binary: &Path, id: u64, port: u16, config: &Path, log: PathBuf) -> Result<Node> {
    let child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Node {
        id,
        port,
        child,
        log,
    })
}

/// Starts `n` nodes with ids 1..=n forming one cluster, TLS material made by `crdtkv cert`;
/// `tuning` is appended to every node's config (TOML tables below `[cluster]`).
pub fn start_cluster(binary: &Path, n: usize, tuning: &str) -> Result<Group> {
    let dir = tempfile::Builder::new()
        .prefix("crdtkv-bench-cluster-")
        .tempdir()?;
    let tls = dir.path().join("tls");
    let ca = tls.join("ca");
    run_tool(Command::new(binary).args(["cert", "ca", "--out"]).arg(&ca))?;
    let ports = free_ports(n)?;
    let seeds: Vec<String> = ports
        .quic
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut group = Group {
        nodes: Vec::new(),
        dir,
    };
    for i in 0..n {
        let id = i as u64 + 1;
        let node_tls = tls.join(format!("node{id}"));
        run_tool(
            Command::new(binary)
                .args(["cert", "node", "--ca"])
                .arg(&ca)
                .args(["--node-id", &id.to_string(), "--out"])
                .arg(&node_tls),
        )?;
        let base = group.dir.path().to_path_buf();
        let mut config = String::new();
        common_config(
            &mut config,
            id,
            &base.join(format!("node{id}")),
            ports.resp[i],
        );
        let _ = write!(
            config,
            "[cluster]\nbind = \"127.0.0.1:{quic}\"\nseeds = [{seeds}]\ntls_dir = {tls}\n\
             allowed_node_ids = [{ids}]\nstartup_sync_timeout_ms = 30000\n\
             metrics_bind = \"127.0.0.1:{metrics}\"\n\n{tuning}\n",
            quic = ports.quic[i],
            seeds = seeds.join(", "),
            tls = toml_str(&node_tls),
            ids = ids.join(", "),
            metrics = ports.metrics[i],
        );
        let path = base.join(format!("node{id}.toml"));
        std::fs::write(&path, config)?;
        let node = spawn(
            binary,
            id,
            ports.resp[i],
            &path,
            base.join(format!("node{id}.log")),
        )?;
        group.nodes.push(node);
    }
    group.wait_ready(true)?;
    Ok(group)
}

/// Starts one node without `[cluster]`, otherwise configured like a cluster node.
pub fn start_standalone(binary: &Path) -> Result<Group> {
    let dir = tempfile::Builder::new()
        .prefix("crdtkv-bench-alone-")
        .tempdir()?;
    let port = free_ports(1)?.resp[0];
    let mut config = String::new();
    common_config(&mut config, 1, &dir.path().join("node1"), port);
    let path = dir.path().join("node1.toml");
    std::fs::write(&path, config)?;
    let node = spawn(binary, 1, port, &path, dir.path().join("node1.log"))?;
    let mut group = Group {
        nodes: vec![node],
        dir,
    };
    group.wait_ready(false)?;
    Ok(group)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
