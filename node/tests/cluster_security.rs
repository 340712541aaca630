//! Processes without a valid cluster identity try to join a real cluster through its seeds and
//! write keys locally: a certificate from another CA, a self-signed one, one from the cluster
//! CA but for a node id outside `allowed_node_ids`, garbage datagrams — and none at all. The
//! cluster never lists them, never sees their keys, counts their failed handshakes, and keeps
//! converging as if they were not there.

mod common;

use std::net::UdpSocket;
use std::path::Path;

use common::cluster::{
    Cluster, WAIT, base_config, make_ca, make_node_cert, metric, prepare_node, wait_for,
};
use common::{Node, Reply, run_binary};

fn handshake_failures(cluster: &Cluster, i: usize) -> u64 {
    cluster.info(i)["handshake_failures"]
        .parse()
        .expect("handshake_failures is a number")
}

/// Writes `node.pem` / `node.key` of a self-signed certificate naming node `id` as the
/// cluster's own certificates do, next to the cluster's `ca.pem`.
fn self_signed(dir: &Path, id: u64, cluster_ca: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![format!("node-{id}.crdtkv")]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("node.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("node.key"), key.serialize_pem()).unwrap();
    std::fs::copy(cluster_ca.join("ca.pem"), dir.join("ca.pem")).unwrap();
}

/// One intruder: a name for messages, its process and its QUIC port.
struct Intruder {
    name: &'static str,
    node: Node,
    quic: u16,
}

#[test]
fn processes_without_a_valid_identity_cannot_join_or_inject() {
    let cluster = Cluster::start(3);
    let work = tempfile::tempdir().unwrap();
    let foreign_ca = work.path().join("foreign-ca");
    make_ca(&foreign_ca);

    // No certificate material at all: the node refuses to start in cluster mode.
    let empty = work.path().join("empty-tls");
    std::fs::create_dir_all(&empty).unwrap();
    let bare = prepare_node(base_config(&empty, 1, cluster.seeds()));
    let (status, _, err) = run_binary(&["--config", bare.config_path().to_str().unwrap()]);
    assert!(!status.success(), "started without TLS material");
    assert!(err.contains("cluster TLS in"), "{err}");

    // The TLS directories of the intruders.
    let tls = |name: &str| work.path().join(name);
    // (a) Everything from another CA, claiming to be node 2.
    make_node_cert(&foreign_ca, 2, &tls("foreign"));
    // (a') A node certificate from another CA, claiming node 3, but trusting the cluster CA.
    make_node_cert(&foreign_ca, 3, &tls("foreign-cert"));
    std::fs::copy(
        cluster.ca_dir().join("ca.pem"),
        tls("foreign-cert").join("ca.pem"),
    )
    .unwrap();
    // (b) A self-signed certificate claiming node 1, trusting the cluster CA.
    self_signed(&tls("self-signed"), 1, &cluster.ca_dir());
    // (c) A genuine certificate of the cluster CA for node 4, which is not allowed.
    make_node_cert(&cluster.ca_dir(), 4, &tls("not-allowed"));

    let mut intruders = Vec::new();
    for name in ["foreign", "foreign-cert", "self-signed", "not-allowed"] {
        let before: Vec<u64> = (0..3).map(|i| handshake_failures(&cluster, i)).collect();
        let (node, quic) = cluster.start_outsider(&tls(name));
        // It writes locally: keys of its own, and keys the cluster has too.
        let mut r = node.raw();
        assert_eq!(
            r.cmd(&["SET", &format!("intruder:{name}"), "x"]),
            Reply::Simple("OK".into())
        );
        r.cmd(&["INCRBY", "ctr", "1000"]).int();
        r.cmd(&["SADD", "set", &format!("from-{name}")]).int();
        // Every cluster node refuses its handshakes (it dials every seed, again and again).
        for (i, b) in before.iter().enumerate() {
            wait_for(
                &format!("node {} to refuse the {name} intruder", i + 1),
                WAIT,
                || {
                    let now = handshake_failures(&cluster, i);
                    if now >= b + 2 {
                        Ok(())
                    } else {
                        Err(format!("handshake_failures {b} -> {now}"))
                    }
                },
            );
        }
        intruders.push(Intruder { name, node, quic });
    }
    // Garbage datagrams at every node's QUIC port.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for &port in &cluster.quic {
        for n in 0..200u32 {
            let junk: Vec<u8> = (0..(n % 1200 + 1)).map(|i| (i * 31 + n) as u8).collect();
            let _ = socket.send_to(&junk, ("127.0.0.1", port));
        }
    }

    // Meanwhile the cluster works as usual.
    let mut expected_ctr = 0;
    for i in 0..3 {
        let mut r = cluster.raw(i);
        r.cmd(&["INCRBY", "ctr", "1"]).int();
        expected_ctr += 1;
        r.cmd(&["SADD", "set", &format!("member-{i}")]).int();
    }
    let mut keys: Vec<String> = vec!["ctr".into(), "set".into()];
    keys.extend(intruders.iter().map(|x| format!("intruder:{}", x.name)));
    let (values, _) = cluster.wait_identical(&keys, WAIT);
    assert_eq!(
        values[0],
        format!("string:{expected_ctr}"),
        "no injected increment"
    );
    assert_eq!(
        values[1], "set:member-0\nmember-1\nmember-2",
        "no injected member"
    );
    assert!(
        values[2..].iter().all(|v| v == "none"),
        "an intruder's key reached the cluster: {values:?}"
    );

    // Every intruder keeps trying; one more refusal on every node from now on...
    let before: Vec<u64> = (0..3).map(|i| handshake_failures(&cluster, i)).collect();
    for (i, b) in before.iter().enumerate() {
        wait_for("more refused handshakes", WAIT, || {
            let now = handshake_failures(&cluster, i);
            if now >= b + intruders.len() as u64 {
                Ok(())
            } else {
                Err(format!("{b} -> {now}"))
            }
        });
    }
    // ...and the cluster still lists exactly its three members, all alive, at their own
    // addresses; the intruders see nobody.
    let addrs: Vec<String> = cluster
        .quic
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    for i in 0..3 {
        let members = cluster.members(i);
        let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "{members:#?}");
        for m in &members {
            assert!(addrs.contains(&m.addr), "unknown address in {members:#?}");
            assert!(m.state == "myself" || m.state == "alive", "{members:#?}");
        }
        for x in &intruders {
            assert!(
                !members
                    .iter()
                    .any(|m| m.addr.ends_with(&format!(":{}", x.quic))),
                "{} intruder listed: {members:#?}",
                x.name
            );
        }
        let (status, body) = cluster.scrape(i);
        assert_eq!(status, "HTTP/1.1 200 OK");
        let failures = metric(&body, "crdtkv_transport_handshake_failures_total")
            .expect("handshake failure counter");
        assert!(failures >= 8.0, "{body}");
    }
    for x in &intruders {
        let mut r = x.node.raw();
        let members = common::cluster::members(&mut r);
        assert!(
            members.iter().all(|m| m.state != "alive"),
            "the {} intruder sees a live peer: {members:#?}",
            x.name
        );
        assert_eq!(r.cmd(&["GET", "ctr"]), Reply::bulk("1000"), "{}", x.name);
        assert_eq!(
            r.cmd(&["SCARD", "set"]).int(),
            1,
            "the {} intruder received cluster state",
            x.name
        );
    }
    cluster.wait_all_alive();
}
