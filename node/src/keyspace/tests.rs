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

/// Consecutive writes to one key in a batch cost storage one record: bases replace the base
/// before them, deltas join into one run, and the reloaded value is the same.
#[test]
fn consecutive_writes_to_one_key_fold_into_one_record() {
    let store = Arc::new(MemStore::new());
    let ks = keyspace();
    let mut ws = WriteSet::new();
    for i in 0..50 {
        incr(&ks, b"hot", i, &mut ws);
    }
    let states = |ws: &WriteSet| {
        ws.ops()
            .iter()
            .filter(|op| matches!(op, Op::PutState { .. }))
            .count()
    };
    assert_eq!(states(&ws), 1, "{:?}", ws.ops());
    // A set large enough to be logged as deltas, then many single adds in a row.
    let big: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i:05}").into_bytes()).collect();
    let refs: Vec<&[u8]> = big.iter().map(Vec::as_slice).collect();
    ks.write(b"set", &mut ws, |v, ts| {
        v.sadd(ts, &refs).map(|(d, n)| (n, Some(d)))
    })
    .unwrap();
    for i in 0..100 {
        let m = format!("x{i}");
        ks.write(b"set", &mut ws, |v, ts| {
            v.sadd(ts, &[m.as_bytes()]).map(|(d, n)| (n, Some(d)))
        })
        .unwrap();
    }
    let deltas = ws
        .ops()
        .iter()
        .filter(|op| matches!(op, Op::AppendDelta { .. }))
        .count();
    assert_eq!(deltas, 1, "one run of 100 deltas");
    store.write(&Batch::from(ws.ops().to_vec()), false).unwrap();
    let again = keyspace();
    let stats = again.load(store.as_ref()).unwrap();
    assert_eq!(stats.deltas, 1);
    for key in [&b"hot"[..], b"set"] {
        assert_eq!(
            ks.read(key, |v| v.cloned()),
            again.read(key, |v| v.cloned())
        );
    }
    again.read(b"set", |v| match v.unwrap().view() {
        Some(View::Set(s)) => assert_eq!(s.len(), 300),
        other => panic!("{other:?}"),
    });
}

/// A connection's writes keep their shard locked for the next command on the thread: reads
/// and writes of that shard use the lock, touching another shard releases it first, and
/// `release_held` gives it back to other threads.
#[test]
fn connection_writes_hold_their_shard_until_released() {
    let ks = Arc::new(keyspace());
    let mut ws = WriteSet::for_connection();
    incr(&ks, b"a", 1, &mut ws);
    assert!(held::holding());
    // The same key (and shard) again, read and written, from the holding thread.
    assert_eq!(incr(&ks, b"a", 1, &mut ws), 2);
    ks.read(b"a", |v| assert!(v.is_some()));
    assert!(held::holding());
    // Another thread waits for the lock until it is released.
    let other = Arc::clone(&ks);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut plain = WriteSet::new();
        let n = incr(&other, b"a", 10, &mut plain);
        assert!(!held::holding(), "a plain write set holds nothing");
        tx.send(n).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(100))
            .is_err(),
        "the shard is still held"
    );
    release_held();
    assert_eq!(rx.recv().unwrap(), 12);
    waiter.join().unwrap();
    // A write to a key of another shard releases the first shard's lock before taking its own.
    let far = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| ks.shard_index(k.as_bytes()) != ks.shard_index(b"a"))
        .unwrap();
    incr(&ks, b"a", 1, &mut ws);
    incr(&ks, far.as_bytes(), 1, &mut ws);
    let probe = Arc::clone(&ks);
    std::thread::spawn(move || probe.read(b"a", |v| assert!(v.is_some())))
        .join()
        .unwrap();
    // A scan (all shards) releases too.
    ks.scan(0, 1000, |_, _| true);
    assert!(!held::holding());
}

/// A write that found its shard kept by another thread's batch reports that thread's tag and
/// the shard; one that took a free lock, or one this thread wrote last, reports nothing. Writes
/// of the watched shard are reported either way.
#[test]
fn a_write_that_waited_reports_whose_batch_it_waited_behind() {
    use crate::write_set::LockReport;
    let ks = Arc::new(keyspace());
    let shard = ks.shard_index(b"a");
    let (tag_tx, tag_rx) = std::sync::mpsc::channel();
    let mut waiter = None;
    while_another_thread_writes(
        &ks,
        move |ks, ws| {
            incr(ks, b"a", 1, ws);
            tag_tx.send(thread_tag()).unwrap();
        },
        || {
            let ks = Arc::clone(&ks);
            waiter = Some(std::thread::spawn(move || {
                let mut ws = WriteSet::for_connection();
                ws.watch(Some(shard));
                assert_eq!(incr(&ks, b"a", 1, &mut ws), 2);
                release_held();
                (thread_tag(), ws.take_locks())
            }));
            // Give the waiter time to find the lock taken before it is released (a
            // synchronisation gap, not a timing assertion: the waiter only has to reach its
            // first attempt).
            std::thread::sleep(std::time::Duration::from_millis(100));
        },
    );
    let holder_tag = tag_rx.recv().unwrap();
    let (waiter_tag, report) = waiter.unwrap().join().unwrap();
    assert_ne!(holder_tag, waiter_tag);
    let waited = LockReport {
        waited: Some((holder_tag, shard)),
        wrote_watched: true,
    };
    assert_eq!(report, waited);
    // The waiter wrote last and let go: the lock is free for this thread.
    let mut ws = WriteSet::for_connection();
    ws.watch(Some(shard));
    incr(&ks, b"a", 1, &mut ws);
    let free = LockReport {
        waited: None,
        wrote_watched: true,
    };
    assert_eq!(ws.take_locks(), free);
    // Kept by this thread: no new lock, nothing to report.
    incr(&ks, b"a", 1, &mut ws);
    assert_eq!(ws.take_locks(), LockReport::default());
    // Locked again after a release: free, and this thread wrote it last.
    release_held();
    incr(&ks, b"a", 1, &mut ws);
    assert_eq!(ws.take_locks(), free);
    release_held();
    ws.watch(None);
    incr(&ks, b"a", 1, &mut ws);
    assert_eq!(ws.take_locks(), LockReport::default());
    release_held();
}

/// Runs `during` while another thread keeps the shard that `write` wrote locked (a plain
/// write set releases after each write, so the write goes through a connection's write set on
/// that thread).
fn while_another_thread_writes(
    ks: &Arc<Keyspace>,
    write: impl FnOnce(&Keyspace, &mut WriteSet) + Send + 'static,
    during: impl FnOnce(),
) {
    let other = Arc::clone(ks);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut ws = WriteSet::for_connection();
        write(&other, &mut ws);
        locked_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        release_held();
    });
    locked_rx.recv().unwrap();
    during();
    done_tx.send(()).unwrap();
    holder.join().unwrap();
}

/// Prefetching is a hint: it changes no value, and never waits for a shard lock, neither one
/// this thread keeps for its batch nor one another thread holds.
#[test]
fn prefetch_changes_nothing_and_never_waits() {
    let ks = Arc::new(keyspace());
    let mut ws = WriteSet::for_connection();
    incr(&ks, b"a", 5, &mut ws);
    // This thread keeps the shard of `a` locked for writing: a blocking read lock would
    // deadlock here.
    assert!(held::holding());
    ks.prefetch(&[b"a", b"a", b"absent", b""]);
    release_held();
    // Another thread holds the shard's write lock.
    while_another_thread_writes(
        &ks,
        |ks, ws| {
            incr(ks, b"a", 1, ws);
        },
        || ks.prefetch(&[b"a"]),
    );
    let mut plain = WriteSet::new();
    assert_eq!(incr(&ks, b"a", 0, &mut plain), 6);
    assert_eq!(ks.key_count(), 1);
}

fn sadd(ks: &Keyspace, key: &[u8], member: &[u8], ws: &mut WriteSet) -> u64 {
    ks.write(key, ws, |v, ts| {
        v.sadd(ts, &[member]).map(|(d, n)| (n, Some(d)))
    })
    .unwrap()
}

/// Prefetching set members is a hint too: it changes no value, skips keys that are not sets,
/// and never waits for a shard lock, neither one this thread keeps nor one another thread holds.
#[test]
fn member_prefetch_changes_nothing_and_never_waits() {
    let ks = Arc::new(keyspace());
    let mut ws = WriteSet::for_connection();
    for i in 0..100 {
        sadd(&ks, b"s", format!("m{i}").as_bytes(), &mut ws);
    }
    incr(&ks, b"n", 1, &mut ws);
    release_held();
    let pairs: [(&[u8], &[u8]); 5] = [
        (b"s", b"m1"),
        (b"s", b"absent"),
        (b"n", b"m1"),
        (b"nothing", b"m1"),
        (b"s", b"m2"),
    ];
    // Kept by this thread for its batch: a blocking read lock would deadlock here.
    sadd(&ks, b"s", b"m0", &mut ws);
    assert!(held::holding());
    ks.prefetch_members(&pairs);
    assert!(held::holding(), "the lock kept is still kept");
    release_held();
    // Held by another thread.
    while_another_thread_writes(
        &ks,
        |ks, ws| {
            sadd(ks, b"s", b"m3", ws);
        },
        || ks.prefetch_members(&pairs),
    );
    ks.read(b"s", |v| {
        let set = v.unwrap().set().unwrap();
        assert_eq!(set.len(), 100);
        assert!(set.contains(b"m1") && !set.contains(b"absent"));
    });
    ks.read(b"n", |v| assert!(v.unwrap().set().is_none()));
    assert_eq!(ks.key_count(), 2);
}
