//! Network-namespace plumbing for tests that need a real network between `crdtkv` processes
//! (`netns_partition`): one namespace per node and one for the test's clients, joined by veths
//! to a bridge in a namespace of its own, iptables rules inside the node namespaces to cut and
//! heal links, and a helper that opens client sockets from a thread that joined the client
//! namespace (setns). Namespace names carry the test's pid (`crdtkv-n1-P`, `crdtkv-br-P`,
//! `crdtkv-c-P`), so runs at the same time do not collide; [`Net`] deletes its namespaces when
//! dropped, and [`delete_leftovers`] those of earlier runs that were killed. The host's own
//! network namespace is never changed; [`host_network`] snapshots it so a test can check that.
//!
//! Needs root, `ip` (iproute2) and a working `iptables`; [`unsupported`] and [`skip`] handle a
//! machine without them.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

/// Runs a command; Ok(stdout) on success, Err(what failed, with stderr) otherwise.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn must(program: &str, args: &[&str]) -> String {
    run(program, args).unwrap_or_else(|e| panic!("{e}"))
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2)) // effective uid
            == Some("0")
    })
}

/// Why this machine cannot run the test, if it cannot (before any namespace exists).
pub fn unsupported() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces and iptables)".into());
    }
    if run("ip", &["-V"]).is_err() {
        return Some("no `ip` command (apt-get install iproute2)".into());
    }
    None
}

pub fn skip(why: &str) {
    if std::env::var("CRDTKV_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("CRDTKV_REQUIRE_NETNS=1 but: {why}");
    }
    eprintln!("skipped: {why}");
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid a namespace made by this test carries (`crdtkv-n1-123`, `crdtkv-br-123`,
/// `crdtkv-c-123`), `Some(None)` for the fixed names an older version might have used
/// (`crdtkv-n1`, `crdtkv-br`), `None` for anything else.
fn owner_pid(name: &str) -> Option<Option<u32>> {
    let rest = name.strip_prefix("crdtkv-")?;
    let (role, pid) = match rest.split_once('-') {
        Some((role, pid)) => (role, Some(pid.parse().ok()?)),
        None => (rest, None),
    };
    let node = role
        .strip_prefix('n')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    (node || role == "br" || role == "c").then_some(pid)
}

/// Deletes the namespaces (and the processes in them) of earlier runs whose test process is
/// gone. Only namespaces: the host's own links are never touched.
pub fn delete_leftovers() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        match owner_pid(ns) {
            Some(Some(pid)) if pid_alive(pid) => {}
            Some(_) => {
                eprintln!("deleting namespace {ns} left by an earlier run");
                delete_namespace(ns);
            }
            None => {}
        }
    }
}

pub fn delete_namespace(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// Runs `f` on a new thread that has first joined the network namespace `ns` (made by `ip netns
/// add`); the calling thread, and so the rest of the process, stays where it is. Sockets `f`
/// creates stay in `ns` wherever they are used later.
pub fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns({path}): {e}"))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The host namespace's links and addresses (`ip -o link`, `ip -o addr` without the address
/// lifetimes, which may count down); this test must leave them as they are.
pub fn host_network() -> String {
    let links = must("ip", &["-o", "link", "show"]);
    let addrs = must("ip", &["-o", "addr", "show"]);
    let addrs = addrs.lines().map(|l| match l.find("valid_lft") {
        Some(i) => l[..i].trim_end(),
        None => l,
    });
    let mut out = links;
    for a in addrs {
        out.push_str(a);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The network

/// The namespaces, bridge and veths of one run; deleted when dropped.
pub struct Net {
    pub pid: u32,
    /// `10.77.0`: every run has its own bridge and client namespace, so no run's addresses are
    /// visible to another's or to the host.
    pub prefix: String,
    /// How many node namespaces (`crdtkv-n1-P` .. `crdtkv-nN-P`).
    pub nodes: usize,
    /// Namespaces created so far (deleted on drop).
    namespaces: Vec<String>,
    /// The iptables binary that works in the namespaces.
    pub iptables: String,
}

impl Net {
    pub fn node_ns(&self, id: usize) -> String {
        format!("crdtkv-n{id}-{}", self.pid)
    }

    pub fn bridge_ns(&self) -> String {
        format!("crdtkv-br-{}", self.pid)
    }

    /// Where the test's RESP clients live.
    pub fn client_ns(&self) -> String {
        format!("crdtkv-c-{}", self.pid)
    }

    pub fn client_ip(&self) -> String {
        format!("{}.100", self.prefix)
    }

    /// Runs `f` on a thread in the client namespace (see [`in_namespace`]).
    pub fn in_client_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_namespace(&self.client_ns(), f).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn ip(&self, id: usize) -> String {
        format!("{}.{id}", self.prefix)
    }

    /// Builds the topology for `nodes` nodes; Err(reason) if this machine cannot (what exists
    /// is deleted).
    pub fn create(nodes: usize) -> Result<Self, String> {
        let pid = std::process::id();
        let mut net = Self {
            pid,
            prefix: "10.77.0".into(),
            nodes,
            namespaces: Vec::new(),
            iptables: String::new(),
        };
        let br = net.bridge_ns();
        let client = net.client_ns();
        let names: Vec<String> = (1..=nodes)
            .map(|i| net.node_ns(i))
            .chain([br.clone(), client.clone()])
            .collect();
        for ns in names {
            run("ip", &["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        run("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &br, "link", "set", "br0", "up"])?;
        let hosts = (1..=nodes).map(|i| (net.node_ns(i), format!("v{i}"), net.ip(i)));
        let hosts = hosts.chain([(client.clone(), "vc".into(), net.client_ip())]);
        for (ns, port, ip) in hosts {
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &br,
                ],
            )?;
            run(
                "ip",
                &["-n", &br, "link", "set", &port, "master", "br0", "up"],
            )?;
            let addr = format!("{ip}/24");
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        }

        // A thread that joins the client namespace must really be in it.
        let want = std::fs::metadata(format!("/run/netns/{client}"))
            .map(|m| format!("net:[{}]", m.ino()))
            .map_err(|e| format!("/run/netns/{client}: {e}"))?;
        let got = in_namespace(&client, || std::fs::read_link("/proc/thread-self/ns/net"))?
            .map_err(|e| format!("/proc/thread-self/ns/net: {e}"))?;
        if got.to_str() != Some(want.as_str()) {
            return Err(format!(
                "setns into {client}: the thread is in {got:?}, not {want}"
            ));
        }

        // nft or legacy: whichever can add and delete a rule in a node's namespace.
        let ns = net.node_ns(1);
        let probe = format!("{}.254", net.prefix);
        let mut tried = Vec::new();
        for candidate in ["iptables", "iptables-legacy", "iptables-nft"] {
            let rule = ["-d", probe.as_str(), "-j", "DROP"];
            let add: Vec<&str> = ["netns", "exec", &ns, candidate, "-w", "-A", "OUTPUT"]
                .into_iter()
                .chain(rule)
                .collect();
            match run("ip", &add) {
                Ok(_) => {
                    let del: Vec<&str> = ["netns", "exec", &ns, candidate, "-w", "-D", "OUTPUT"]
                        .into_iter()
                        .chain(rule)
                        .collect();
                    run("ip", &del)?;
                    net.iptables = candidate.to_owned();
                    break;
                }
                Err(e) => tried.push(e),
            }
        }
        if net.iptables.is_empty() {
            return Err(format!(
                "no working iptables in a namespace (apt-get install iptables): {}",
                tried.join("; ")
            ));
        }
        Ok(net)
    }

    fn iptables(&self, id: usize, args: &[&str]) {
        let ns = self.node_ns(id);
        let mut full = vec!["netns", "exec", &ns, &self.iptables, "-w"];
        full.extend_from_slice(args);
        must("ip", &full);
    }

    /// Drops every packet between the two groups, both ways, in each node's namespace.
    pub fn cut(&self, a: &[usize], b: &[usize]) {
        for (side, other) in [(a, b), (b, a)] {
            for &id in side {
                for &peer in other {
                    let peer = self.ip(peer);
                    self.iptables(id, &["-A", "INPUT", "-s", &peer, "-j", "DROP"]);
                    self.iptables(id, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"]);
                }
            }
        }
    }

    /// Flushes every rule.
    pub fn heal(&self) {
        for id in 1..=self.nodes {
            self.iptables(id, &["-F", "INPUT"]);
            self.iptables(id, &["-F", "OUTPUT"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            delete_namespace(ns);
        }
    }
}
