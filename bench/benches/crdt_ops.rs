//! Criterion micro-benchmarks of the CRDT operations a node runs per command: counters, OR set,
//! LWW register and the typed `Value` of a key (the mutators `SET`, `INCR`, `SADD`, `DEL` call,
//! merging deltas, and the canonical encoding every write persists).
//!
//! `cargo bench -p bench --bench crdt_ops` (add `-- --quick` for a short run, or a filter such
//! as `-- or_set`).

use std::hint::black_box;

use crdt::encoding::{decode, encode};
use crdt::value::encode_value;
use crdt::{GCounter, LwwRegister, Merge, NodeId, OrSet, PnCounter, Timestamp, Value};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Members per set in the set benchmarks.
const SET_MEMBERS: u64 = 1000;
/// Members of the large set that `SADD` of a present member is measured on.
const LARGE_SET_MEMBERS: u64 = 100_000;
/// Nodes contributing to the counters that are merged.
const COUNTER_NODES: u64 = 8;

fn ts(ms: u64, node: u64) -> Timestamp {
    Timestamp {
        physical_ms: ms,
        logical: 0,
        node: NodeId(node),
    }
}

fn member(i: u64) -> Vec<u8> {
    format!("element:{i:012}").into_bytes()
}

/// A set of `SET_MEMBERS` members added by `node`, starting at member `from`.
fn set_of(node: u64, from: u64) -> OrSet {
    let members: Vec<Vec<u8>> = (from..from + SET_MEMBERS).map(member).collect();
    let mut set = OrSet::new();
    set.add(NodeId(node), members.iter().map(Vec::as_slice));
    set
}

fn counters(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter");
    g.bench_function("gcounter_increment", |b| {
        let mut counter = GCounter::new();
        b.iter(|| black_box(counter.increment(NodeId(1), black_box(1)).unwrap()));
    });
    g.bench_function("pncounter_increment", |b| {
        let mut counter = PnCounter::new();
        let mut by = 1;
        b.iter(|| {
            by = -by;
            black_box(counter.increment(NodeId(1), black_box(by)).unwrap())
        });
    });
    let spread = |offset: u64| {
        let (mut g, mut pn) = (GCounter::new(), PnCounter::new());
        for node in 1..=COUNTER_NODES {
            g.increment(NodeId(node), node * 10 + offset).unwrap();
            pn.increment(NodeId(node), (node * 10 + offset) as i64)
                .unwrap();
            pn.increment(NodeId(node), -3).unwrap();
        }
        (g, pn)
    };
    let (ga, pa) = spread(0);
    let (gb, pb) = spread(5);
    g.bench_function("gcounter_merge_8_nodes", |b| {
        b.iter_batched(
            || (ga.clone(), gb.clone()),
            |(mut a, other)| {
                a.merge(other);
                a
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("pncounter_merge_8_nodes", |b| {
        b.iter_batched(
            || (pa.clone(), pb.clone()),
            |(mut a, other)| {
                a.merge(other);
                a
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn or_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("or_set");
    let base = set_of(1, 0);
    g.bench_function("add_to_1000", |b| {
        let mut set = base.clone();
        let mut i = SET_MEMBERS;
        b.iter(|| {
            i += 1;
            let m = member(i % (2 * SET_MEMBERS));
            black_box(set.add_at(ts(i, 1), [m.as_slice()]))
        });
    });
    g.bench_function("remove_from_1000", |b| {
        let mut i = 0;
        b.iter_batched(
            || {
                i = (i + 1) % SET_MEMBERS;
                (base.clone(), member(i))
            },
            |(mut set, m)| {
                black_box(set.remove([m.as_slice()]));
                set
            },
            BatchSize::LargeInput,
        );
    });
    // Two replicas of 1000 members each, half of them shared, written by different nodes.
    let a = set_of(1, 0);
    let other = set_of(2, SET_MEMBERS / 2);
    g.bench_function("merge_1000_with_1000", |b| {
        b.iter_batched(
            || (a.clone(), other.clone()),
            |(mut a, other)| {
                a.merge(other);
                a
            },
            BatchSize::LargeInput,
        );
    });
    // The common replication case: one small delta into a large set.
    let mut source = base.clone();
    let (delta, _) = source.add_at(ts(1, 2), [b"new-member".as_slice()]);
    g.bench_function("merge_delta_into_1000", |b| {
        b.iter_batched(
            || (base.clone(), delta.clone()),
            |(mut set, delta)| {
                set.merge(delta);
                set
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn lww_register(c: &mut Criterion) {
    let mut g = c.benchmark_group("lww_register");
    let value = [b'x'; 100];
    g.bench_function("set_100_bytes", |b| {
        let mut register = LwwRegister::new();
        let mut ms = 0;
        b.iter(|| {
            ms += 1;
            black_box(register.set(ts(ms, 1), black_box(&value)))
        });
    });
    // Two nodes that wrote concurrently: the merge keeps both entries.
    let mut a = LwwRegister::new();
    let mut other = LwwRegister::new();
    a.set(ts(10, 1), &value);
    other.set(ts(11, 2), b"concurrent");
    g.bench_function("merge_concurrent", |b| {
        b.iter_batched(
            || (a.clone(), other.clone()),
            |(mut a, other)| {
                a.merge(other);
                a
            },
            BatchSize::SmallInput,
        );
    });
    // A delta that replaces the entry the receiver holds (the steady state of replication).
    let mut writer = a.clone();
    let delta = writer.set(ts(12, 1), b"newer");
    g.bench_function("merge_delta", |b| {
        b.iter_batched(
            || (a.clone(), delta.clone()),
            |(mut a, delta)| {
                a.merge(delta);
                a
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn value(c: &mut Criterion) {
    let mut g = c.benchmark_group("value");
    let bytes = [b'v'; 100];
    g.bench_function("set_register_100_bytes", |b| {
        let mut v = Value::new();
        let mut ms = 0;
        b.iter(|| {
            ms += 1;
            black_box(v.set_register(ts(ms, 1), black_box(&bytes)))
        });
    });
    g.bench_function("incr_by", |b| {
        let mut v = Value::new();
        let mut ms = 0;
        b.iter(|| {
            ms += 1;
            black_box(v.incr_by(ts(ms, 1), black_box(1)).unwrap())
        });
    });
    let members: Vec<Vec<u8>> = (0..SET_MEMBERS).map(member).collect();
    let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
    let mut set = Value::new();
    set.sadd(ts(1, 1), &refs).unwrap();
    g.bench_function("sadd_to_1000", |b| {
        let mut v = set.clone();
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let m = member(SET_MEMBERS + i % SET_MEMBERS);
            black_box(v.sadd(ts(1 + i, 1), &[m.as_slice()]).unwrap())
        });
    });
    // What `SADD` of a present member to a large set costs before storage: the re-add, and the
    // encoding of its delta that the write persists.
    let big: Vec<Vec<u8>> = (0..LARGE_SET_MEMBERS).map(member).collect();
    let mut large = Value::new();
    large
        .sadd(ts(1, 1), &big.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    g.bench_function("sadd_present_to_100k_and_encode", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let m = big[(i * 7919 % LARGE_SET_MEMBERS) as usize].as_slice();
            let (delta, added) = large.sadd(ts(1 + i, 1), &[m]).unwrap();
            black_box((encode_value(&delta), added))
        });
    });
    let mut register = Value::new();
    register.set_register(ts(1, 1), &bytes);
    g.bench_function("delete_register", |b| {
        b.iter_batched(
            || register.clone(),
            |mut v| {
                black_box(v.delete());
                v
            },
            BatchSize::SmallInput,
        );
    });
    // Replication applies deltas to values: a SET from another node, then an INCR.
    let mut remote = register.clone();
    let set_delta = remote.set_register(ts(2, 2), b"from node 2");
    g.bench_function("merge_register_delta", |b| {
        b.iter_batched(
            || (register.clone(), set_delta.clone()),
            |(mut v, delta)| {
                v.merge(delta);
                v
            },
            BatchSize::SmallInput,
        );
    });
    let mut counter = Value::new();
    counter.incr_by(ts(1, 1), 5).unwrap();
    let (incr_delta, _) = counter.clone().incr_by(ts(2, 2), 1).unwrap();
    g.bench_function("merge_counter_delta", |b| {
        b.iter_batched(
            || (counter.clone(), incr_delta.clone()),
            |(mut v, delta)| {
                v.merge(delta);
                v
            },
            BatchSize::SmallInput,
        );
    });
    // Every write persists an encoding; loading decodes it.
    g.bench_function("encode_register", |b| {
        b.iter(|| black_box(encode(black_box(&register))));
    });
    let encoded_register = encode(&register);
    g.bench_function("decode_register", |b| {
        b.iter(|| black_box(decode::<Value>(black_box(&encoded_register)).unwrap()));
    });
    g.bench_function("encode_set_1000", |b| {
        b.iter(|| black_box(encode(black_box(&set))));
    });
    let encoded_set = encode(&set);
    g.bench_function("decode_set_1000", |b| {
        b.iter(|| black_box(decode::<Value>(black_box(&encoded_set)).unwrap()));
    });
    g.bench_function("fingerprint_register", |b| {
        b.iter(|| black_box(black_box(&register).fingerprint()));
    });
    g.finish();
}

criterion_group!(benches, counters, or_set, lww_register, value);
criterion_main!(benches);
