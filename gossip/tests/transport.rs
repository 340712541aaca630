//! The QUIC transport over real sockets on loopback: mutual TLS, datagrams, messages, limits,
//! hostile peers and partitions. Waits are for conditions, with generous limits; the only fixed
//! sleeps are short windows in which something must NOT arrive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crdt::NodeId;
use gossip::Error;
use gossip::tls::{self, CaPem, NodeTls, PeerPolicy};
use gossip::transport::{Inbound, Transport, TransportConfig, TransportEvents};
use quinn::crypto::rustls::QuicClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

const PATIENCE: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(300);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn node_tls(ca: &CaPem, id: u64) -> NodeTls {
    let node = ca.issue_node(NodeId(id)).unwrap();
    NodeTls::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap()
}

fn start(ca: &CaPem, id: u64, config: TransportConfig) -> (Transport, TransportEvents) {
    let config = TransportConfig {
        bind_addr: loopback(),
        ..config
    };
    Transport::bind(config, &node_tls(ca, id)).unwrap()
}

fn quick_config() -> TransportConfig {
    TransportConfig {
        duplicate_close_grace_ms: 200,
        redial_backoff_ms: 100,
        ..TransportConfig::default()
    }
}

async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    timeout(PATIENCE, rx.recv())
        .await
        .expect("nothing arrived in time")
        .expect("channel closed")
}

/// Datagrams are unreliable by nature: resend until one arrives.
async fn datagram_through(
    from: &Transport,
    to: (NodeId, SocketAddr),
    rx: &mut mpsc::Receiver<Inbound>,
    bytes: &'static [u8],
) -> Inbound {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let _ = from.send_datagram(to, Bytes::from_static(bytes));
        if let Ok(Some(got)) = timeout(Duration::from_millis(200), rx.recv()).await {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no datagram arrived in time"
        );
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

fn assert_quiet(rx: &mut mpsc::Receiver<Inbound>, what: &str) {
    if let Ok(got) = rx.try_recv() {
        panic!(
            "{what}: unexpected delivery from {} ({} bytes)",
            got.from,
            got.bytes.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_datagrams_and_messages_including_several_megabytes() {
    let ca = CaPem::generate().unwrap();
    let (a, mut a_rx) = start(&ca, 1, quick_config());
    let (b, mut b_rx) = start(&ca, 2, quick_config());
    let b_at = (NodeId(2), b.local_addr());

    let got = datagram_through(&a, b_at, &mut b_rx.datagrams, b"ping").await;
    assert_eq!(got.from, NodeId(1));
    assert_eq!(&got.bytes[..], b"ping");
    // B answers by node id alone: the connection A opened identifies A.
    let got = datagram_through(
        &b,
        (NodeId(1), a.local_addr()),
        &mut a_rx.datagrams,
        b"pong",
    )
    .await;
    assert_eq!(got.from, NodeId(2));

    a.send_message(NodeId(2), Bytes::from_static(b"hello"))
        .unwrap();
    let got = recv(&mut b_rx.messages).await;
    assert_eq!((got.from, &got.bytes[..]), (NodeId(1), &b"hello"[..]));

    let big: Bytes = (0..5 * 1024 * 1024u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    b.send_message(NodeId(1), big.clone()).unwrap();
    b.send_message(NodeId(1), Bytes::new()).unwrap();
    let mut got = [
        recv(&mut a_rx.messages).await,
        recv(&mut a_rx.messages).await,
    ];
    got.sort_by_key(|m| m.bytes.len());
    assert!(got.iter().all(|m| m.from == NodeId(2)));
    assert!(got[0].bytes.is_empty());
    assert_eq!(got[1].bytes, big, "the 5 MiB message arrives intact");

    let counters = a.counters();
    assert!(
        counters.messages_received >= 2 && counters.datagrams_sent >= 1,
        "{counters:?}"
    );
    assert_eq!(
        counters.dropped_malformed + counters.dropped_oversized,
        0,
        "{counters:?}"
    );
    assert_eq!(a.connected_peers(), vec![(NodeId(2), b.local_addr())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_dialling_each_other_at_once_keep_one_connection_per_pair() {
    let ca = CaPem::generate().unwrap();
    let nodes: Vec<_> = (1..=3).map(|id| start(&ca, id, quick_config())).collect();
    let addrs: Vec<_> = nodes.iter().map(|(t, _)| t.local_addr()).collect();
    let (transports, mut events): (Vec<_>, Vec<_>) = nodes.into_iter().unzip();
    // Everyone sends to everyone at the same moment: simultaneous dials in both directions.
    for (i, t) in transports.iter().enumerate() {
        for (j, addr) in addrs.iter().enumerate() {
            if i != j {
                let to = (NodeId(j as u64 + 1), *addr);
                t.send_message(to, Bytes::from(format!("{}->{}", i + 1, j + 1)))
                    .unwrap();
            }
        }
    }
    for (j, ev) in events.iter_mut().enumerate() {
        let mut got = [recv(&mut ev.messages).await, recv(&mut ev.messages).await];
        got.sort_by_key(|m| m.from);
        let expected: Vec<_> = (1..=3u64).filter(|i| *i != j as u64 + 1).collect();
        for (m, from) in got.iter().zip(expected) {
            assert_eq!(m.from, NodeId(from));
            assert_eq!(
                m.bytes,
                Bytes::from(format!("{}->{}", from, j + 1)),
                "sender identity matches payload"
            );
        }
    }
    // Duplicates are closed after their grace period; one connection per pair remains and works.
    wait_until("one connection per pair", || {
        transports.iter().all(|t| t.connected_peers().len() == 2)
            && transports
                .iter()
                .all(|t| t.counters().connections_established >= 2)
    })
    .await;
    sleep(Duration::from_millis(600)).await;
    for (i, t) in transports.iter().enumerate() {
        assert_eq!(t.connected_peers().len(), 2, "node {} peers", i + 1);
        let next = NodeId(((i + 1) % 3) as u64 + 1);
        t.send_message(next, Bytes::from_static(b"again")).unwrap();
    }
    for ev in events.iter_mut() {
        assert_eq!(&recv(&mut ev.messages).await.bytes[..], b"again");
    }
    // Datagrams around the ring, each labelled with its authenticated sender.
    for (i, sender) in transports.iter().enumerate() {
        let next = (i + 1) % 3;
        let to = (NodeId(next as u64 + 1), addrs[next]);
        let got = datagram_through(sender, to, &mut events[next].datagrams, b"ring").await;
        assert_eq!(got.from, NodeId(i as u64 + 1));
    }
}

/// A client endpoint that is not a cluster node, dialling `addr` with `client`.
async fn rogue_attempt(client: rustls::ClientConfig, addr: SocketAddr, server_name: &str) -> bool {
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).unwrap()));
    let connecting = endpoint.connect_with(config, addr, server_name).unwrap();
    let connected = match timeout(PATIENCE, connecting).await.expect("handshake hung") {
        Err(_) => false,
        Ok(conn) => {
            // TLS 1.3 lets a client finish before the server has judged its certificate: try to
            // push data anyway. None of it may be delivered.
            let _ = conn.send_datagram(Bytes::from_static(b"rogue datagram"));
            if let Ok(mut s) = conn.open_uni().await {
                let _ = s.write_all(&5u32.to_be_bytes()).await;
                let _ = s.write_all(b"rogue").await;
                let _ = s.finish();
            }
            let _ = timeout(PATIENCE, conn.closed())
                .await
                .expect("rogue connection never closed");
            true
        }
    };
    endpoint.close(0u32.into(), b"");
    connected
}

fn raw_client_config(ca: &CaPem, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![tls::ALPN.to_vec()];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_valid_allowed_cluster_certificate_fail_the_handshake_and_deliver_nothing()
{
    let ca = CaPem::generate().unwrap();
    let other_ca = CaPem::generate().unwrap();
    let config = TransportConfig {
        allowed_node_ids: Some(vec![NodeId(1), NodeId(2), NodeId(3)]),
        ..quick_config()
    };
    let (server, mut server_rx) = start(&ca, 2, config);
    let addr = server.local_addr();
    let name = tls::node_dns_name(NodeId(2));

    let self_signed =
        rcgen::generate_simple_self_signed(vec![tls::node_dns_name(NodeId(3))]).unwrap();
    let (ss_cert, ss_key) = (
        self_signed.cert.pem(),
        self_signed.signing_key.serialize_pem(),
    );
    let foreign = other_ca.issue_node(NodeId(3)).unwrap();
    let not_allowed = ca.issue_node(NodeId(4)).unwrap();
    let attempts = [
        ("no client certificate", raw_client_config(&ca, None)),
        (
            "self-signed certificate",
            raw_client_config(&ca, Some((&ss_cert, &ss_key))),
        ),
        (
            "certificate from another CA",
            raw_client_config(&ca, Some((&foreign.cert_pem, &foreign.key_pem))),
        ),
        (
            "node id not allowed",
            raw_client_config(&ca, Some((&not_allowed.cert_pem, &not_allowed.key_pem))),
        ),
    ];
    for (i, (what, client)) in attempts.into_iter().enumerate() {
        rogue_attempt(client, addr, &name).await;
        wait_until(what, || server.counters().handshake_failures > i as u64).await;
        assert_eq!(server.counters().connections_established, 0, "{what}");
    }

    // The same node-4 certificate through a full node: the server refuses it. (A TLS 1.3
    // client may believe it connected before the server's verdict reaches it, so what is
    // checked is that the connection dies and the server never admitted it.)
    let (intruder, _intruder_rx) = start(&ca, 4, quick_config());
    let _ = intruder.connect(addr).await;
    wait_until("node 4 refused", || {
        server.counters().handshake_failures >= 5
    })
    .await;
    wait_until("node 4 disconnected", || {
        intruder.connected_peers().is_empty()
    })
    .await;
    assert_eq!(server.counters().connections_established, 0);
    // And a node of another cluster is refused by our client verifier when we dial it.
    let (stranger, _stranger_rx) = start(&other_ca, 3, quick_config());
    let (member, _member_rx) = start(&ca, 1, quick_config());
    assert!(member.connect(stranger.local_addr()).await.is_err());
    assert!(member.counters().handshake_failures >= 1);
    assert_eq!(stranger.counters().connections_established, 0);

    // A legitimate peer gets through, and it is the only thing that ever arrived.
    member
        .send_message((NodeId(2), addr), Bytes::from_static(b"legit"))
        .unwrap();
    let got = recv(&mut server_rx.messages).await;
    assert_eq!((got.from, &got.bytes[..]), (NodeId(1), &b"legit"[..]));
    sleep(QUIET).await;
    assert_quiet(&mut server_rx.messages, "messages");
    assert_quiet(&mut server_rx.datagrams, "datagrams");
    assert_eq!(
        server.connected_peers(),
        vec![(NodeId(1), member.local_addr())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_datagrams_and_messages_are_dropped_and_counted_and_the_link_survives() {
    let ca = CaPem::generate().unwrap();
    let (big, _big_rx) = start(&ca, 1, quick_config());
    let small_limits = TransportConfig {
        datagram_bytes_max: 200,
        message_bytes_max: 1024,
        ..quick_config()
    };
    let (small, mut small_rx) = start(&ca, 2, small_limits);
    let small_at = (NodeId(2), small.local_addr());

    // Sender side: above its own limit, refused at once and counted.
    let too_big = Bytes::from(vec![7u8; 9 * 1024 * 1024]);
    assert!(matches!(
        big.send_message(small_at, too_big),
        Err(Error::Oversized { .. })
    ));
    assert!(matches!(
        small.send_datagram((NodeId(1), big.local_addr()), Bytes::from(vec![0u8; 201])),
        Err(Error::Oversized { .. })
    ));
    assert_eq!(big.counters().dropped_oversized, 1);
    assert_eq!(small.counters().dropped_oversized, 1);

    // Receiver side: within the sender's limits, above the receiver's.
    big.send_message(small_at, Bytes::from(vec![1u8; 4096]))
        .unwrap();
    wait_until("oversized message counted", || {
        small.counters().dropped_oversized >= 2
    })
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while small.counters().dropped_oversized < 3 {
        let _ = big.send_datagram(small_at, Bytes::from(vec![2u8; 500]));
        sleep(Duration::from_millis(50)).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "oversized datagram never counted"
        );
    }
    assert_quiet(&mut small_rx.messages, "oversized message");
    assert_quiet(&mut small_rx.datagrams, "oversized datagram");

    // The connection and both nodes are still fine.
    big.send_message(small_at, Bytes::from_static(b"fits"))
        .unwrap();
    assert_eq!(&recv(&mut small_rx.messages).await.bytes[..], b"fits");
    let got = datagram_through(&big, small_at, &mut small_rx.datagrams, b"small").await;
    assert_eq!(&got.bytes[..], b"small");
    assert_eq!(small.connected_peers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_framing_from_an_authenticated_peer_is_dropped_and_counted() {
    let ca = CaPem::generate().unwrap();
    let (node, mut rx) = start(&ca, 2, quick_config());
    // A real cluster member (node 3) that writes raw streams.
    let member = node_tls(&ca, 3);
    let client = tls::client_config(&member, &PeerPolicy::default()).unwrap();
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).unwrap()));
    let conn = endpoint
        .connect_with(config, node.local_addr(), &tls::node_dns_name(NodeId(2)))
        .unwrap()
        .await
        .unwrap();
    let raw = |bytes: Vec<u8>| {
        let conn = conn.clone();
        async move {
            let mut s = conn.open_uni().await.unwrap();
            s.write_all(&bytes).await.unwrap();
            s.finish().unwrap();
            let _ = s.stopped().await;
        }
    };
    let frame = |len: u32, body: &[u8]| {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    raw(frame(u32::MAX, b"claims four gigabytes")).await;
    wait_until("huge prefix counted", || {
        node.counters().dropped_oversized == 1
    })
    .await;
    raw(frame(100, b"only ten b")).await;
    raw(vec![0, 0]).await;
    raw(frame(3, b"abcdef")).await;
    wait_until("malformed frames counted", || {
        node.counters().dropped_malformed == 3
    })
    .await;
    assert_quiet(&mut rx.messages, "garbage");

    raw(frame(2, b"ok")).await;
    let got = recv(&mut rx.messages).await;
    assert_eq!((got.from, &got.bytes[..]), (NodeId(3), &b"ok"[..]));
    assert_eq!(node.counters().dropped_oversized, 1);
    endpoint.close(0u32.into(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_drops_traffic_both_ways_and_heal_restores_it() {
    let ca = CaPem::generate().unwrap();
    let (a, mut a_rx) = start(&ca, 1, quick_config());
    let (b, mut b_rx) = start(&ca, 2, quick_config());
    let (a_at, b_at) = ((NodeId(1), a.local_addr()), (NodeId(2), b.local_addr()));
    a.send_message(b_at, Bytes::from_static(b"before")).unwrap();
    assert_eq!(&recv(&mut b_rx.messages).await.bytes[..], b"before");

    a.partition(&[NodeId(2)]);
    assert_eq!(a.cut_set().into_iter().collect::<Vec<_>>(), vec![NodeId(2)]);
    wait_until("connections closed", || {
        a.connected_peers().is_empty() && b.connected_peers().is_empty()
    })
    .await;
    for _ in 0..5 {
        // A's sends vanish as on a cut wire; B's redials are refused right after the handshake.
        a.send_message(b_at, Bytes::from_static(b"cut")).unwrap();
        a.send_datagram(b_at, Bytes::from_static(b"cut")).unwrap();
        let _ = b.send_message(a_at, Bytes::from_static(b"cut"));
        let _ = b.send_datagram(a_at, Bytes::from_static(b"cut"));
        sleep(Duration::from_millis(60)).await;
    }
    sleep(QUIET).await;
    assert_quiet(&mut a_rx.messages, "A while cut");
    assert_quiet(&mut a_rx.datagrams, "A while cut");
    assert_quiet(&mut b_rx.messages, "B while cut");
    assert_quiet(&mut b_rx.datagrams, "B while cut");
    assert!(a.counters().dropped_partitioned >= 10, "{:?}", a.counters());
    assert!(a.counters().connections_refused >= 1, "{:?}", a.counters());

    a.heal();
    assert!(a.cut_set().is_empty());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (mut a_got, mut b_got) = (false, false);
    while !(a_got && b_got) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "traffic did not resume after heal"
        );
        let _ = a.send_message(b_at, Bytes::from_static(b"healed"));
        let _ = b.send_message(a_at, Bytes::from_static(b"healed"));
        sleep(Duration::from_millis(100)).await;
        while let Ok(m) = b_rx.messages.try_recv() {
            b_got |= m.from == NodeId(1) && &m.bytes[..] == b"healed";
        }
        while let Ok(m) = a_rx.messages.try_recv() {
            a_got |= m.from == NodeId(2) && &m.bytes[..] == b"healed";
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_a_crash_on_the_same_address_resets_stale_connections() {
    let ca = CaPem::generate().unwrap();
    let b_tls = node_tls(&ca, 2);
    // A would keep a dead connection for 60 s; only a stateless reset from the restarted B (same
    // key, hence same reset key) can make A redial within PATIENCE.
    let patient = TransportConfig {
        idle_timeout_ms: 60_000,
        ..quick_config()
    };
    let (a, _a_rx) = start(&ca, 1, patient);

    // B runs on its own runtime so that it can "crash": shutting that runtime down stops its
    // endpoint driver without sending any CONNECTION_CLOSE.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let patient_b = TransportConfig {
        idle_timeout_ms: 60_000,
        ..quick_config()
    };
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let b_tls2 = b_tls.clone();
    let b_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = TransportConfig {
            bind_addr: loopback(),
            ..patient_b
        };
        let bound = rt.block_on(async { Transport::bind(config, &b_tls2).unwrap() });
        ready_tx.send(bound).unwrap();
        crash_rx.recv().unwrap();
        rt.shutdown_timeout(Duration::from_secs(5));
    });
    let (b, mut b_rx) = tokio::task::spawn_blocking(move || ready_rx.recv().unwrap())
        .await
        .unwrap();
    let b_addr = b.local_addr();
    a.send_message((NodeId(2), b_addr), Bytes::from_static(b"first"))
        .unwrap();
    assert_eq!(&recv(&mut b_rx.messages).await.bytes[..], b"first");

    crash_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || b_thread.join().unwrap())
        .await
        .unwrap();
    drop((b, b_rx));
    assert_eq!(a.connected_peers().len(), 1, "A has not noticed the crash");

    let config = TransportConfig {
        bind_addr: b_addr,
        ..quick_config()
    };
    // The crashed runtime releases the port as its tasks are dropped.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (b2, mut b2_rx) = loop {
        match Transport::bind(config.clone(), &b_tls) {
            Ok(bound) => break bound,
            Err(Error::Bind { .. }) if tokio::time::Instant::now() < deadline => {
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("rebinding the crashed node's port: {e}"),
        }
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let _ = a.send_message(NodeId(2), Bytes::from_static(b"second"));
        if let Ok(Some(m)) = timeout(Duration::from_millis(200), b2_rx.messages.recv()).await {
            assert_eq!((m.from, &m.bytes[..]), (NodeId(1), &b"second"[..]));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarted node never reached"
        );
    }
    assert_eq!(b2.connected_peers().len(), 1);
}
