//! Merging: concurrent inserts, out-of-order delivery, pending operations, decoding.

use super::tests::{A, B, C, Lcg, check};
use super::*;
use crate::encoding::{decode, encode};
use crate::error::DecodeError;
use crate::merge::Merge;

fn merged(a: &Rga, b: &Rga) -> Rga {
    a.clone().merged(b.clone())
}

#[test]
fn concurrent_inserts_at_same_place_order_deterministically() {
    let mut base = Rga::new();
    base.insert(A, 0, "[]").unwrap();
    let mut a = base.clone();
    let mut b = base.clone();
    let mut c = base.clone();
    a.insert(A, 1, "alpha").unwrap();
    b.insert(B, 1, "beta").unwrap();
    c.insert(C, 1, "gamma").unwrap();
    // Same Lamport numbers: the higher node id goes first; words never interleave.
    let abc = merged(&merged(&a, &b), &c);
    let cba = merged(&merged(&c, &b), &a);
    let bca = merged(&b, &merged(&c, &a));
    assert_eq!(abc.to_string(), "[gammabetaalpha]");
    assert_eq!(abc, cba);
    assert_eq!(abc, bca);
    assert_eq!(encode(&abc), encode(&bca));
    check(&abc);

    // A later (higher Lamport) insert at the same place goes before the earlier ones.
    let mut d = abc.clone();
    d.insert(A, 1, "!").unwrap();
    assert_eq!(d.to_string(), "[!gammabetaalpha]");
}

#[test]
fn insert_concurrent_with_typing_continuation() {
    // A types "ab", B (having seen "a" only) inserts "X" after "a".
    let mut a = Rga::new();
    let d1 = a.insert(A, 0, "a").unwrap();
    let mut b = Rga::new();
    b.merge(d1);
    let d2 = a.insert(A, 1, "b").unwrap(); // lamport 2
    let d3 = b.insert(B, 1, "X").unwrap(); // lamport 2, node 2 > node 1: X first
    a.merge(d3);
    b.merge(d2);
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "aXb");
    check(&a);
}

#[test]
fn deltas_out_of_order_wait_as_pending() {
    let mut src = Rga::new();
    let d1 = src.insert(A, 0, "hello").unwrap();
    let d2 = src.insert(A, 5, " world").unwrap();
    let d3 = src.insert(B, 5, ",").unwrap();
    let d4 = src.delete(A, 0, 1).unwrap();
    let mut dst = Rga::new();
    dst.merge(d4.clone());
    dst.merge(d3.clone());
    dst.merge(d2.clone());
    assert_eq!(dst.to_string(), "");
    let s = dst.stats();
    assert_eq!((s.pending_inserts, s.pending_deletes), (7, 1));
    check(&dst);
    dst.merge(d1.clone());
    assert_eq!(dst.to_string(), "ello, world");
    assert_eq!(dst, src);
    // Duplicates change nothing.
    for d in [d1, d2, d3, d4] {
        dst.merge(d);
    }
    assert_eq!(dst, src);
    check(&dst);
}

#[test]
fn pending_chain_resolves_in_one_merge() {
    let mut src = Rga::new();
    let mut deltas = Vec::new();
    for i in 0..50 {
        deltas.push(
            src.insert(NodeId(i % 3 + 1), src.len().min(1 + i / 2), "ab")
                .unwrap(),
        );
    }
    let mut dst = Rga::new();
    for d in deltas.iter().skip(1).rev() {
        dst.merge(d.clone());
    }
    assert!(dst.stats().pending_inserts > 0);
    dst.merge(deltas[0].clone());
    assert_eq!(dst.stats().pending_inserts, 0);
    assert_eq!(dst, src);
    check(&dst);
}

#[test]
fn delete_of_pending_and_unknown_ids() {
    let mut src = Rga::new();
    let d1 = src.insert(A, 0, "abc").unwrap();
    let d2 = src.insert(A, 3, "def").unwrap();
    let del = src.delete(A, 2, 2).unwrap(); // "c" and "d"
    let mut dst = Rga::new();
    dst.merge(d2.clone()); // pending: "def"
    dst.merge(del.clone()); // marks "d" in the pending run, remembers "c"
    assert_eq!(dst.stats().pending_deletes, 1);
    check(&dst);
    dst.merge(d1.clone());
    assert_eq!(dst.to_string(), "abef");
    assert_eq!(dst, src);
    // The same in the other order, and as full states.
    let other = Rga::new().merged(del).merged(d1).merged(d2);
    assert_eq!(other, src);
    check(&other);
}

#[test]
fn full_state_merge_of_diverged_replicas() {
    let mut rng = Lcg(7);
    let mut replicas = [Rga::new(), Rga::new(), Rga::new()];
    for round in 0..30 {
        for (i, r) in replicas.iter_mut().enumerate() {
            for _ in 0..20 {
                let len = r.len();
                if rng.below(4) > 0 || len == 0 {
                    r.insert(NodeId(i as u64 + 1), rng.below(len + 1), "xy")
                        .unwrap();
                } else {
                    r.delete(NodeId(i as u64 + 1), rng.below(len), 1 + rng.below(3))
                        .unwrap();
                }
            }
        }
        let (x, y) = (round % 3, (round + 1) % 3);
        let other = replicas[y].clone();
        replicas[x].merge(other);
    }
    let all = replicas
        .iter()
        .fold(Rga::new(), |acc, r| acc.merged(r.clone()));
    let all_rev = replicas
        .iter()
        .rev()
        .fold(Rga::new(), |acc, r| acc.merged(r.clone()));
    assert_eq!(all, all_rev);
    assert_eq!(all.to_string(), all_rev.to_string());
    check(&all);
}

#[test]
fn invalid_lamport_never_integrates() {
    // An insert whose Lamport number is not above its origin's cannot come from a correct node.
    let mut t = Rga::new();
    t.insert(A, 0, "abc").unwrap(); // lamports 1..=3
    let bad = Rga::one_insert(
        B,
        1,
        PendingRun {
            lamport: 2,
            origin: (A, 2),
            len: 1,
            text: "!".into(),
        },
    );
    let m1 = t.clone().merged(bad.clone());
    let m2 = bad.clone().merged(t.clone());
    assert_eq!(m1.to_string(), "abc");
    assert_eq!(m1.stats().pending_inserts, 1);
    assert_eq!(m1, m2);
    check(&m1);
}

#[test]
fn decode_rejects_invalid_input() {
    let mut t = Rga::new();
    t.insert(A, 0, "héllo").unwrap();
    t.insert(B, 2, "xy").unwrap();
    t.delete(A, 0, 1).unwrap();
    let good = encode(&t);
    assert_eq!(decode::<Rga>(&good).unwrap(), t);

    let body = |nodes: Vec<u64>,
                runs: Vec<(u32, i64, i64, i64, i64, u64, &str)>,
                dels: Vec<(u32, u64, u64)>| {
        let pending: Vec<(u32, i64, i64, i64, i64, u64, &str)> = Vec::new();
        encode(&(nodes, runs, pending, dels))
    };
    let bad = |bytes: Vec<u8>| matches!(decode::<Rga>(&bytes), Err(DecodeError::Malformed(_)));
    // Well-formed baseline.
    assert_eq!(
        decode::<Rga>(&body(vec![1], vec![(0, 1, 1, -1, 0, 2, "ab")], vec![]))
            .unwrap()
            .to_string(),
        "ab"
    );
    assert!(
        bad(body(vec![1], vec![(1, 1, 1, -1, 0, 2, "ab")], vec![])),
        "node index"
    );
    assert!(
        bad(body(vec![2, 1], vec![(0, 1, 1, -1, 0, 2, "ab")], vec![])),
        "unsorted nodes"
    );
    assert!(
        bad(body(vec![1], vec![(0, 1, 1, -1, 0, 3, "ab")], vec![])),
        "text length"
    );
    assert!(
        bad(body(vec![1], vec![(0, 1, 1, -1, 0, 0, "")], vec![])),
        "empty run"
    );
    assert!(
        bad(body(vec![1], vec![(0, -5, 1, -1, 0, 2, "ab")], vec![])),
        "negative seq"
    );
    assert!(
        bad(body(vec![1], vec![(0, 1, 1, -3, 0, 2, "ab")], vec![])),
        "origin marker"
    );
    assert!(
        bad(body(vec![1], vec![(0, 1, 1, -2, 0, 2, "ab")], vec![])),
        "no previous run"
    );
    assert!(
        bad(body(
            vec![1],
            vec![(0, 1, 1, -1, 0, 2, "ab"), (0, -1, 5, -2, 0, 1, "c")],
            vec![]
        )),
        "id twice"
    );
    assert!(
        bad(body(vec![1], vec![(0, 1, 1, -1, 0, 1 << 62, "")], vec![])),
        "seq range"
    );
    assert!(
        bad(body(
            vec![1],
            vec![
                (0, 1, 1, -1, 0, u32::MAX as u64, ""),
                (0, 0, 0, -1, 0, 2, "")
            ],
            vec![]
        )),
        "chars cap"
    );
    assert!(bad(body(vec![1], vec![], vec![(0, 5, 0)])), "empty delete");
    assert!(
        bad(body(vec![1], vec![], vec![(0, u64::MAX, 2)])),
        "delete range"
    );
    // A run whose origin is missing is kept pending, not rejected.
    let p: Rga = decode(&body(vec![1, 2], vec![(0, 1, 5, 1, 6, 2, "ab")], vec![])).unwrap();
    assert_eq!((p.len(), p.stats().pending_inserts), (0, 2));
    // A cyclic origin (a run typed after itself) never loops: it stays pending.
    let cyc: Rga = decode(&body(vec![1], vec![(0, 1, 5, 0, 1, 3, "abc")], vec![])).unwrap();
    assert_eq!(cyc.stats().pending_inserts, 3);
    check(&cyc);
    // Truncations of a valid encoding all fail cleanly.
    for n in 0..good.len() {
        assert!(decode::<Rga>(&good[..n]).is_err());
    }
}

#[test]
fn canonical_regardless_of_history() {
    // Same operations, one replica typed them, the other received them in reverse order.
    let mut a = Rga::new();
    let mut deltas = Vec::new();
    for i in 0..200u64 {
        let node = NodeId(i % 2 + 1);
        let d = if i % 7 == 6 {
            a.delete(node, i % a.len(), 3).unwrap()
        } else {
            a.insert(node, i % (a.len() + 1), "ab").unwrap()
        };
        deltas.push(d);
    }
    let mut b = Rga::new();
    for d in deltas.into_iter().rev() {
        b.merge(d);
    }
    assert_eq!(a, b);
    assert_eq!(encode(&a), encode(&b));
    assert_eq!(
        crate::encoding::fingerprint(&a),
        crate::encoding::fingerprint(&b)
    );
    check(&b);
}
