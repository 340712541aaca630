//! Three members over the real QUIC transport on loopback: they converge, see a partition made
//! with `Transport::partition` as down, see everyone up again after `heal`, and see a graceful
//! leave as left. Waits are for conditions, with generous limits.

use std::net::SocketAddr;
use std::time::Duration;

use crdt::NodeId;
use gossip::membership::driver::{self, MembersView, MembershipHandle};
use gossip::membership::{
    LocalStatus, MemberEvent, MemberIdentity, MemberState, Membership, MembershipConfig,
};
use gossip::tls::{CaPem, NodeTls};
use gossip::transport::{Transport, TransportConfig};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(30);

struct Member {
    transport: Transport,
    handle: MembershipHandle,
    events: mpsc::Receiver<MemberEvent>,
}

fn start(ca: &CaPem, id: u64, seeds: Vec<SocketAddr>) -> Member {
    let node = ca.issue_node(NodeId(id)).unwrap();
    let tls = NodeTls::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
    let config = TransportConfig {
        bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        redial_backoff_ms: 200,
        ..TransportConfig::default()
    };
    let (transport, channels) = Transport::bind(config, &tls).unwrap();
    let identity = MemberIdentity::new(
        NodeId(id),
        transport.local_addr(),
        driver::generation_from_clock(),
    );
    let rng = SmallRng::seed_from_u64(id);
    let membership = Membership::new(identity, MembershipConfig::default(), rng, 0).unwrap();
    let (handle, events) = driver::spawn(membership, transport.clone(), channels.datagrams, seeds);
    Member {
        transport,
        handle,
        events,
    }
}

async fn wait_for(
    what: &str,
    members: &[&Member],
    cond: impl Fn(&[std::sync::Arc<MembersView>]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let views: Vec<_> = members.iter().map(|m| m.handle.view()).collect();
        if cond(&views) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {views:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sees(view: &MembersView, of: u64, state: MemberState) -> bool {
    view.member(NodeId(of)).is_some_and(|m| m.state == state)
}

fn all_up(views: &[std::sync::Arc<MembersView>]) -> bool {
    views.iter().all(|v| {
        v.status == LocalStatus::Active
            && v.members.len() == views.len() - 1
            && v.members.iter().all(|m| m.state == MemberState::Alive)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_over_quic_converge_detect_a_partition_heal_and_see_a_leave() {
    let ca = CaPem::generate().unwrap();
    let one = start(&ca, 1, vec![]);
    let seed = one.transport.local_addr();
    let two = start(&ca, 2, vec![seed]);
    let mut three = start(&ca, 3, vec![seed]);
    let all = [&one, &two, &three];
    wait_for("all three up", &all, all_up).await;
    // Addresses learnt through SWIM are the members' real ones.
    let view = one.handle.view();
    assert_eq!(
        view.member(NodeId(3)).unwrap().addr,
        three.transport.local_addr()
    );

    // Cut node 3 off (at node 3's transport, both directions).
    three.transport.partition(&[NodeId(1), NodeId(2)]);
    wait_for("3 down on both sides", &all, |v| {
        sees(&v[0], 3, MemberState::Down)
            && sees(&v[1], 3, MemberState::Down)
            && sees(&v[2], 1, MemberState::Down)
            && sees(&v[2], 2, MemberState::Down)
            && sees(&v[0], 2, MemberState::Alive)
    })
    .await;
    assert_eq!(three.handle.view().status, LocalStatus::Isolated);

    three.transport.heal();
    wait_for("all up after heal", &all, all_up).await;

    // No packet was ever attributed to the wrong sender.
    for m in all {
        assert_eq!(m.handle.view().counters.rejected_impersonation, 0);
    }
    let mut saw_down_then_up = (false, false);
    while let Ok(event) = three.events.try_recv() {
        match event {
            MemberEvent::Down {
                node_id: NodeId(1), ..
            } => saw_down_then_up.0 = true,
            MemberEvent::Up {
                node_id: NodeId(1), ..
            } if saw_down_then_up.0 => saw_down_then_up.1 = true,
            _ => {}
        }
    }
    assert_eq!(
        saw_down_then_up,
        (true, true),
        "node 3's events tell the story"
    );

    // A graceful leave is seen as left, not down.
    three.handle.leave().await;
    three.transport.close().await;
    wait_for("3 left", &[&one, &two], |v| {
        sees(&v[0], 3, MemberState::Left) && sees(&v[1], 3, MemberState::Left)
    })
    .await;
    assert!(one.handle.view().status == LocalStatus::Active);
}
