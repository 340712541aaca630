//! The batch plumbing against the storage crate's in-memory store: writes reach the store
//! before replies are settled, and a failed commit turns exactly the write replies into errors.

use std::sync::Arc;

use storage::{MemStore, Op, Store};

use super::*;
use crate::config::Config;
use crate::resp::Protocol;
use crate::state::NodeState;

/// A write the store can read back; metadata keeps the test independent of how key state is
/// laid out.
fn put(name: &str) -> Op {
    Op::PutMeta {
        name: name.to_owned(),
        value: b"v".to_vec(),
    }
}

fn stored(store: &MemStore, name: &str) -> bool {
    store.get_meta(name).unwrap().is_some()
}

/// Two "write" replies between three plain ones, as the dispatcher would record them.
fn batch_with_two_writes(writes: &mut WriteSet, reply: &mut ReplyWriter) {
    reply.simple("PONG");
    let start = reply.len();
    writes.push_op(put("a"));
    reply.ok();
    writes.mark_durable(start..reply.len());
    reply.bulk(b"read");
    let start = reply.len();
    writes.push_op(put("b"));
    writes.push_delta(
        b"b".to_vec(),
        crdt::Value::new(),
        crdt::Timestamp::zero(crdt::NodeId(1)),
    );
    reply.integer(1);
    writes.mark_durable(start..reply.len());
    reply.simple("PONG");
}

#[tokio::test]
async fn committed_writes_are_in_the_store_and_replies_stand() {
    let store = Arc::new(MemStore::new());
    let state = NodeState::in_memory(Config::default(), Arc::clone(&store));
    let (mut writes, mut reply) = (WriteSet::new(), ReplyWriter::new(Protocol::Resp2));
    batch_with_two_writes(&mut writes, &mut reply);
    let before = reply.as_bytes().to_vec();
    commit_batch(&state, &mut writes, &mut reply).await.unwrap();
    assert_eq!(reply.as_bytes(), &before[..]);
    assert!(stored(&store, "a") && stored(&store, "b"));
    assert!(writes.is_empty());
    assert_eq!(
        state.committer.stats().commits,
        1,
        "one commit for the whole batch"
    );
}

#[tokio::test]
async fn failed_commit_turns_only_write_replies_into_errors() {
    let store = Arc::new(MemStore::new());
    let state = NodeState::in_memory(Config::default(), Arc::clone(&store));
    let (mut writes, mut reply) = (WriteSet::new(), ReplyWriter::new(Protocol::Resp2));
    batch_with_two_writes(&mut writes, &mut reply);
    store.fail_next_writes(1);
    let err = commit_batch(&state, &mut writes, &mut reply)
        .await
        .unwrap_err();
    let text = String::from_utf8(reply.as_bytes().to_vec()).unwrap();
    let error_line = format!("-ERR write not persisted: {err}\r\n");
    assert_eq!(
        text,
        format!("+PONG\r\n{error_line}$4\r\nread\r\n{error_line}+PONG\r\n")
    );
    assert!(!stored(&store, "a"));
    assert!(writes.is_empty());
    assert_eq!(
        state
            .stats
            .failed_commits
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The next batch commits normally.
    writes.push_op(put("c"));
    commit_batch(&state, &mut writes, &mut reply).await.unwrap();
    assert!(stored(&store, "c"));
}

#[tokio::test]
async fn a_batch_without_writes_does_not_commit() {
    let store = Arc::new(MemStore::new());
    let state = NodeState::in_memory(Config::default(), Arc::clone(&store));
    let (mut writes, mut reply) = (WriteSet::new(), ReplyWriter::new(Protocol::Resp2));
    reply.simple("PONG");
    commit_batch(&state, &mut writes, &mut reply).await.unwrap();
    assert_eq!(state.committer.stats().commits, 0);
    assert_eq!(reply.as_bytes(), b"+PONG\r\n");
}

/// Deltas reach the replication hook only after their batch is committed.
#[tokio::test]
async fn deltas_are_published_after_a_successful_commit_only() {
    #[derive(Default)]
    struct Collect(parking_lot::Mutex<Vec<Vec<u8>>>);
    impl crate::state::DeltaSink for Collect {
        fn publish(&self, deltas: Vec<KeyDelta>) {
            self.0.lock().extend(deltas.into_iter().map(|d| d.key));
        }
    }
    let store = Arc::new(MemStore::new());
    let sink = Arc::new(Collect::default());
    let hooks = crate::state::Hooks {
        deltas: Some(Arc::clone(&sink) as Arc<dyn crate::state::DeltaSink>),
        ..Default::default()
    };
    let state = NodeState::new(crate::state::NodeParts {
        config: Config::default(),
        config_file: None,
        node_id: crdt::NodeId(1),
        store: Arc::clone(&store) as Arc<dyn storage::Store>,
        rocks: None,
        keyspace: Arc::new(crate::keyspace::Keyspace::for_tests(crdt::NodeId(1))),
        hooks,
        cluster: None,
        gate: Arc::new(crate::cluster::WriteGate::open()),
    });
    let (mut writes, mut reply) = (WriteSet::new(), ReplyWriter::new(Protocol::Resp2));
    batch_with_two_writes(&mut writes, &mut reply);
    store.fail_next_writes(1);
    commit_batch(&state, &mut writes, &mut reply)
        .await
        .unwrap_err();
    assert!(sink.0.lock().is_empty());
    batch_with_two_writes(&mut writes, &mut reply);
    commit_batch(&state, &mut writes, &mut reply).await.unwrap();
    assert_eq!(*sink.0.lock(), vec![b"b".to_vec()]);
}

/// The writes of one batch are stamped from the clock reading of its first write, and each
/// committed batch reads the clock afresh.
#[tokio::test]
async fn a_batch_reads_the_wall_clock_once() {
    let state = NodeState::in_memory(Config::default(), Arc::new(MemStore::new()));
    let ks = &state.keyspace;
    let mut writes = WriteSet::new();
    let mut reply = ReplyWriter::new(Protocol::Resp2);
    let incr = |writes: &mut WriteSet| {
        ks.write(b"c", writes, |v, ts| Ok((ts, Some(v.incr_by(ts, 1)?.0))))
            .unwrap()
    };
    let before = crate::keyspace::wall_ms();
    let first = incr(&mut writes);
    let read = writes.wall_ms();
    assert!(first.physical_ms >= before && read >= before);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = incr(&mut writes);
    assert_eq!(writes.wall_ms(), read, "one reading for the whole batch");
    assert!(second > first, "stamps still increase");
    assert_eq!(second.physical_ms, first.physical_ms);
    commit_batch(&state, &mut writes, &mut reply).await.unwrap();
    let third = incr(&mut writes);
    assert!(
        third.physical_ms >= read + 20,
        "the next batch reads the clock again ({} after {read})",
        third.physical_ms
    );
}
