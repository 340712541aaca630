use std::sync::Arc;

use crdt::View;
use storage::{Batch, MemStore, Op, Store};

use super::*;
use crate::write_set::WriteSet;

fn keyspace() -> Keyspace {
    Keyspace::new(NodeId(1), NodeClock::resume(NodeId(1), 1000, 0), 4).with_digests()
}

fn incr(ks: &Keyspace, key: &[u8], by: i64, ws: &mut WriteSet) -> i64 {
    ks.write(key, ws, |v, ts| {
        v.incr_by(ts, by).map(|(d, n)| (n, Some(d)))
    })
    .unwrap()
}

/// A standalone keyspace persists its writes but builds no delta for replication.
#[test]
fn standalone_writes_push_no_delta() {
    let ks = Keyspace::new(NodeId(1), NodeClock::resume(NodeId(1), 1000, 0), 4);
    let mut ws = WriteSet::new();
    assert_eq!(incr(&ks, b"c", 2, &mut ws), 2);
    assert!(ws.deltas().is_empty());
    assert!(!ws.ops().is_empty());
}

#[test]
fn writes_push_ops_and_deltas_and_count_keys() {
    let ks = keyspace();
    let mut ws = WriteSet::new();
    assert_eq!(incr(&ks, b"a", 2, &mut ws), 2);
    assert_eq!(incr(&ks, b"a", 3, &mut ws), 5);
    assert_eq!(ws.deltas().len(), 2);
    assert!(ws.ops().iter().any(|op| matches!(op, Op::PutState { .. })));
    assert_eq!(ks.key_count(), 1);
    ks.write(b"a", &mut ws, |v, _| Ok(((), v.delete())))
        .unwrap();
    assert_eq!(ks.key_count(), 0);
    ks.read(b"a", |v| assert!(v.is_some_and(Value::is_tombstone)));
}

#[test]
fn refused_and_empty_writes_leave_nothing() {
    let ks = keyspace();
    let mut ws = WriteSet::new();
    let removed = ks
        .write(b"nope", &mut ws, |v, _| {
            v.srem(&[b"m"]).map(|(d, n)| (n, d))
        })
        .unwrap();
    assert_eq!(removed, 0);
    ks.read(b"nope", |v| assert!(v.is_none()));
    assert!(ws.deltas().is_empty());
    ks.write(b"s", &mut ws, |v, ts| {
        v.sadd(ts, &[b"m"]).map(|(d, n)| (n, Some(d)))
    })
    .unwrap();
    let err = ks.write(b"s", &mut ws, |v, ts| {
        v.incr_by(ts, 1).map(|(d, n)| (n, Some(d)))
    });
    assert_eq!(err, Err(crdt::Error::WrongType));
    assert_eq!(ws.deltas().len(), 1);
}

#[test]
fn scan_visits_every_key_once_across_cursors() {
    let ks = keyspace();
    let mut ws = WriteSet::new();
    for i in 0..500 {
        incr(&ks, format!("k{i}").as_bytes(), 1, &mut ws);
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let (next, keys) = ks.scan(cursor, 10, |_, _| true);
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 500);
}

#[test]
fn reload_from_store_restores_every_type() {
    let store = Arc::new(MemStore::new());
    let ks = keyspace();
    let mut ws = WriteSet::new();
    incr(&ks, b"counter", 41, &mut ws);
    ks.write(b"reg", &mut ws, |v, ts| {
        Ok(((), Some(v.set_register(ts, b"hello"))))
    })
    .unwrap();
    let members: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("member-{i}").into_bytes())
        .collect();
    for m in &members {
        ks.write(b"set", &mut ws, |v, ts| {
            v.sadd(ts, &[m.as_slice()]).map(|(d, n)| (n, Some(d)))
        })
        .unwrap();
    }
    ks.write(b"gone", &mut ws, |v, ts| {
        Ok(((), Some(v.set_register(ts, b"x"))))
    })
    .unwrap();
    ks.write(b"gone", &mut ws, |v, _| Ok(((), v.delete())))
        .unwrap();
    let batch: Batch = ws.ops().iter().cloned().collect();
    store.write(&batch, false).unwrap();

    let again = keyspace();
    let stats = again.load(store.as_ref()).unwrap();
    assert_eq!((stats.keys, stats.tombstones), (3, 1));
    assert!(stats.deltas > 0, "the large set was logged as deltas");
    again.read(b"counter", |v| {
        assert!(matches!(v.unwrap().view(), Some(View::Counter(41))))
    });
    again.read(b"reg", |v| {
        assert!(matches!(v.unwrap().view(), Some(View::Register(b"hello"))))
    });
    again.read(b"set", |v| match v.unwrap().view() {
        Some(View::Set(s)) => assert_eq!(s.len(), 300),
        other => panic!("{other:?}"),
    });
    for key in [&b"counter"[..], b"reg", b"set", b"gone"] {
        let a = ks.read(key, |v| v.cloned());
        let b = again.read(key, |v| v.cloned());
        assert_eq!(a, b, "{key:?} differs after reload");
    }
    assert_eq!(again.key_count(), 3);
}
