//! Operating a cluster: the Prometheus endpoint, `CLUSTER` commands and `INFO replication` on
//! real nodes, and what the `CLUSTER` commands answer on a standalone node or with bad input.

mod common;

use common::cluster::{Cluster, WAIT, http_get, metric, parse_info, wait_for};
use common::data::err;
use common::{Node, Reply};

fn metrics_of(cluster: &Cluster, i: usize) -> String {
    let (status, body) = cluster.scrape(i);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

fn value(body: &str, name: &str) -> f64 {
    metric(body, name).unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
}

#[test]
fn metrics_endpoint_reports_members_and_growing_replication_counters() {
    let cluster = Cluster::start(3);
    let body = metrics_of(&cluster, 0);
    for line in [
        "crdtkv_members{state=\"alive\"} 2",
        "crdtkv_members{state=\"down\"} 0",
        "crdtkv_caught_up 1",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} missing:\n{body}");
    }
    assert!(
        body.contains("# TYPE crdtkv_delta_batches_sent counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE crdtkv_replication_lag_ms histogram"),
        "{body}"
    );
    let sent = "crdtkv_delta_batches_sent_total";
    let received = "crdtkv_delta_batches_received_total";
    let submitted = "crdtkv_deltas_submitted_total";
    let before: Vec<String> = (0..3).map(|i| metrics_of(&cluster, i)).collect();

    let mut r1 = cluster.raw(0);
    for n in 0..20 {
        assert!(matches!(r1.cmd(&["INCR", "hits"]), Reply::Int(_)));
        assert!(matches!(
            r1.cmd(&["SADD", "tags", &format!("t{n}")]),
            Reply::Int(1)
        ));
    }
    cluster.wait_identical(&["hits".into(), "tags".into()], WAIT);
    let after = metrics_of(&cluster, 0);
    assert!(value(&after, submitted) >= value(&before[0], submitted) + 40.0);
    assert!(value(&after, sent) > value(&before[0], sent), "{after}");
    assert!(
        value(&after, "crdtkv_transport_messages_sent_total")
            > value(&before[0], "crdtkv_transport_messages_sent_total")
    );
    for (i, before) in before.iter().enumerate().skip(1) {
        let after = metrics_of(&cluster, i);
        // The lag histogram in Prometheus' layout: cumulative buckets in `le` order, the
        // last one (`+Inf`) equal to the count.
        let buckets: Vec<(String, f64)> = after
            .lines()
            .filter_map(|l| l.strip_prefix("crdtkv_replication_lag_ms_bucket{le=\""))
            .map(|l| {
                let (le, rest) = l.split_once('"').unwrap();
                (
                    le.to_owned(),
                    rest.rsplit_once(' ').unwrap().1.parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(buckets.len(), 13, "{after}");
        assert_eq!(buckets.last().unwrap().0, "+Inf");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        let bounds: Vec<f64> = buckets[..12].iter().map(|b| b.0.parse().unwrap()).collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        assert_eq!(
            buckets.last().unwrap().1,
            value(&after, "crdtkv_replication_lag_ms_count")
        );
        assert!(value(&after, received) > value(before, received), "{after}");
        assert!(
            value(&after, "crdtkv_replication_lag_ms_count")
                > value(before, "crdtkv_replication_lag_ms_count")
        );
    }
    // Only /metrics (and /) is served.
    let (status, _) = http_get(&format!("127.0.0.1:{}", cluster.metrics[0]), "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // A cut shows in the member gauges of both sides.
    cluster.partition(&[&[0], &[1, 2]]);
    wait_for("node 1's metrics to show both peers down", WAIT, || {
        let body = metrics_of(&cluster, 0);
        let ok = body
            .lines()
            .any(|l| l == "crdtkv_members{state=\"down\"} 2")
            && body
                .lines()
                .any(|l| l == "crdtkv_replication_mode{mode=\"degraded\"} 1")
            && value(&body, "crdtkv_transport_dropped_partitioned_total") > 0.0;
        if ok { Ok(()) } else { Err(body) }
    });
    cluster.heal();
    wait_for("node 1's metrics to show both peers alive", WAIT, || {
        let body = metrics_of(&cluster, 0);
        if body
            .lines()
            .any(|l| l == "crdtkv_members{state=\"alive\"} 2")
        {
            Ok(())
        } else {
            Err(body)
        }
    });
}

#[test]
fn cluster_commands_show_and_cut_the_cluster() {
    let cluster = Cluster::start(3);
    let mut r = cluster.raw(1);
    assert_eq!(r.cmd(&["CLUSTER", "MYID"]), Reply::bulk("2"));
    let info = parse_info(&r.cmd(&["CLUSTER", "INFO"]).text());
    assert_eq!(info["crdtkv_mode"], "cluster");
    assert_eq!(info["node_id"], "2");
    assert_eq!(info["membership"], "active");
    assert_eq!(info["members_alive"], "3");
    assert_eq!(info["quic_addr"], format!("127.0.0.1:{}", cluster.quic[1]));
    assert!(info["peer0"].starts_with("id=1,reachable=1,"), "{info:#?}");
    assert!(info["peer1"].starts_with("id=3,reachable=1,"), "{info:#?}");
    // INFO replication has the same fields.
    let replication = parse_info(&r.cmd(&["INFO", "replication"]).text());
    for key in info.keys() {
        assert!(
            replication.contains_key(key),
            "INFO replication lacks {key}"
        );
    }

    assert_eq!(
        r.cmd(&["CLUSTER", "PARTITION", "3"]),
        Reply::Simple("OK".into())
    );
    let info = parse_info(&r.cmd(&["CLUSTER", "INFO"]).text());
    assert_eq!(info["partitioned_from"], "3");
    let members = common::cluster::members(&mut r);
    let three = members.iter().find(|m| m.id == 3).unwrap();
    assert_eq!(three.fields["partitioned"], "1", "{members:#?}");
    assert_eq!(r.cmd(&["CLUSTER", "HEAL"]), Reply::Simple("OK".into()));
    let info = parse_info(&r.cmd(&["CLUSTER", "INFO"]).text());
    assert_eq!(info["partitioned_from"], "");
    cluster.wait_all_alive();

    // Bad ids.
    let bad_id = err("ERR node id must be an integer of 1 or more");
    assert_eq!(r.cmd(&["CLUSTER", "PARTITION", "x"]), bad_id);
    assert_eq!(r.cmd(&["CLUSTER", "PARTITION", "0"]), bad_id);
    assert_eq!(r.cmd(&["CLUSTER", "PARTITION", "-1"]), bad_id);
    assert_eq!(r.cmd(&["CLUSTER", "PARTITION", "3", "x"]), bad_id);
    assert_eq!(
        r.cmd(&["CLUSTER", "PARTITION", "2"]),
        err("ERR cannot partition a node from itself")
    );
    assert!(
        matches!(r.cmd(&["CLUSTER", "PARTITION"]), Reply::Error(e) if e.contains("wrong number of arguments"))
    );
    // A refused command cut nothing.
    let info = parse_info(&r.cmd(&["CLUSTER", "INFO"]).text());
    assert_eq!(info["partitioned_from"], "", "{info:#?}");
    assert!(matches!(r.cmd(&["CLUSTER", "NOPE"]), Reply::Error(_)));
}

#[test]
fn cluster_commands_on_a_standalone_node() {
    let node = Node::start();
    let mut r = node.raw();
    let disabled = err("ERR This instance has cluster support disabled");
    for args in [
        &["CLUSTER", "MYID"][..],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "MEMBERS"],
        &["CLUSTER", "PARTITION", "2"],
        &["CLUSTER", "HEAL"],
    ] {
        assert_eq!(r.cmd(args), disabled, "{args:?}");
    }
    match r.cmd(&["CLUSTER", "HELP"]) {
        Reply::Array(lines) => assert!(lines.iter().any(|l| l.text().contains("PARTITION"))),
        other => panic!("{other:?}"),
    }
    let replication = parse_info(&r.cmd(&["INFO", "replication"]).text());
    assert_eq!(replication.get("role").map(String::as_str), Some("master"));
    assert_ne!(
        replication.get("crdtkv_mode").map(String::as_str),
        Some("cluster")
    );
}
