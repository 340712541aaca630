//! One conformance suite for every `Store`: each test is a generic function over a
//! [`Harness`] that can open a store and reopen it (a restart), instantiated below for
//! `RocksStore` (in a temporary directory) and `MemStore`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use storage::{
    Batch, KeyRecord, META_NAME_BYTES_MAX, MemStore, Op, RocksStore, StorageError, Store, StoreExt,
    StoreOptions,
};

/// Opens a store and simulates restarts.
trait Harness {
    type S: Store;
    fn new() -> Self;
    fn store(&self) -> &Self::S;
    /// Replaces the store by what a restarted process would open.
    fn reopen(&mut self);
}

struct Rocks {
    store: Option<RocksStore>,
    dir: tempfile::TempDir,
}

impl Harness for Rocks {
    type S = RocksStore;
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        Self {
            store: Some(store),
            dir,
        }
    }
    fn store(&self) -> &RocksStore {
        self.store.as_ref().unwrap()
    }
    fn reopen(&mut self) {
        drop(self.store.take()); // RocksDB holds a lock on the directory
        self.store = Some(RocksStore::open(self.dir.path(), &StoreOptions::default()).unwrap());
    }
}

struct Mem(MemStore);

impl Harness for Mem {
    type S = MemStore;
    fn new() -> Self {
        Self(MemStore::new())
    }
    fn store(&self) -> &MemStore {
        &self.0
    }
    fn reopen(&mut self) {
        self.0 = self.0.reopen();
    }
}

/// The version of the scenario tests' bases: above every delta they write, so a base clears
/// them all, and equal, so the latest base wins.
const BASE: u64 = 1 << 40;

fn put(key: &[u8], state: &[u8]) -> Op {
    put_at(key, state, BASE)
}
fn put_at(key: &[u8], state: &[u8], version: u64) -> Op {
    Op::PutState {
        key: key.to_vec(),
        state: state.to_vec(),
        version,
    }
}
fn delta(key: &[u8], seq: u64, delta: &[u8]) -> Op {
    Op::AppendDelta {
        key: key.to_vec(),
        seq,
        delta: delta.to_vec(),
    }
}
fn del(key: &[u8]) -> Op {
    Op::DeleteKey { key: key.to_vec() }
}
fn write(store: &impl Store, ops: Vec<Op>) {
    store.write(&Batch::from(ops), false).unwrap();
}
fn record(key: &[u8], state: Option<&[u8]>, deltas: &[(u64, &[u8])]) -> KeyRecord {
    KeyRecord {
        key: key.to_vec(),
        state: state.map(<[u8]>::to_vec),
        state_version: if state.is_some() { BASE } else { 0 },
        deltas: deltas.iter().map(|&(s, d)| (s, d.to_vec())).collect(),
    }
}
fn scan_all(store: &impl Store) -> Vec<KeyRecord> {
    let mut out = Vec::new();
    store
        .scan(&mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

fn put_get_and_missing<H: Harness>() {
    let mut h = H::new();
    write(h.store(), vec![put(b"k", b"v1"), put(b"other", b"x")]);
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"v1"), &[]))
    );
    write(h.store(), vec![put(b"k", b"v2")]);
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"v2"), &[]))
    );
    assert_eq!(h.store().get(b"missing").unwrap(), None);
    assert_eq!(h.store().get(b"").unwrap(), None);
    h.reopen();
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"v2"), &[]))
    );
}

fn deltas_come_back_in_seq_order<H: Harness>() {
    let mut h = H::new();
    write(h.store(), vec![put(b"k", b"base"), delta(b"k", 3, b"c")]);
    write(
        h.store(),
        vec![delta(b"k", 1, b"a"), delta(b"k", u64::MAX, b"z")],
    );
    write(h.store(), vec![delta(b"k", 2, b"b"), delta(b"k", 3, b"C")]); // same seq replaces
    let want = record(
        b"k",
        Some(b"base"),
        &[(1, b"a"), (2, b"b"), (3, b"C"), (u64::MAX, b"z")],
    );
    assert_eq!(h.store().get(b"k").unwrap(), Some(want.clone()));
    h.reopen();
    assert_eq!(h.store().get(b"k").unwrap(), Some(want));
}

fn put_state_clears_deltas<H: Harness>() {
    let mut h = H::new();
    write(
        h.store(),
        vec![
            delta(b"k", 1, b"a"),
            delta(b"k", 2, b"b"),
            delta(b"k\0", 1, b"n"),
        ],
    );
    write(h.store(), vec![put(b"k", b"compacted")]);
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"compacted"), &[]))
    );
    // A neighbouring key's deltas are untouched.
    assert_eq!(
        h.store().get(b"k\0").unwrap(),
        Some(record(b"k\0", None, &[(1, b"n")]))
    );

    // In one batch, order decides: append then put drops the delta, put then append keeps it.
    write(h.store(), vec![delta(b"k", 3, b"c"), put(b"k", b"s2")]);
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"s2"), &[]))
    );
    write(h.store(), vec![put(b"k", b"s3"), delta(b"k", 4, b"d")]);
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"s3"), &[(4, b"d")]))
    );

    // Deltas written before a restart are still cleared by a PutState after it.
    h.reopen();
    write(h.store(), vec![put(b"k", b"s4"), put(b"k\0", b"s")]);
    assert_eq!(
        h.store().get(b"k").unwrap(),
        Some(record(b"k", Some(b"s4"), &[]))
    );
    assert_eq!(
        h.store().get(b"k\0").unwrap(),
        Some(record(b"k\0", Some(b"s"), &[]))
    );
    h.reopen();
    assert_eq!(
        scan_all(h.store()),
        vec![
            record(b"k", Some(b"s4"), &[]),
            record(b"k\0", Some(b"s"), &[])
        ]
    );
}

/// A base committed late (lower version) never replaces a newer one, keeps the newer base's
/// deltas, and removes only deltas it includes; the outcome survives a reopen.
fn older_base_never_replaces_newer<H: Harness>() {
    let mut h = H::new();
    write(
        h.store(),
        vec![
            delta(b"k", 4, b"d4"),
            put_at(b"k", b"new", 6),
            delta(b"k", 7, b"d7"),
        ],
    );
    write(
        h.store(),
        vec![put_at(b"k", b"old", 5), delta(b"k", 3, b"d3")],
    );
    let expected = KeyRecord {
        key: b"k".to_vec(),
        state: Some(b"new".to_vec()),
        state_version: 6,
        deltas: vec![(3, b"d3".to_vec()), (7, b"d7".to_vec())],
    };
    assert_eq!(h.store().get(b"k").unwrap(), Some(expected.clone()));
    h.reopen();
    assert_eq!(scan_all(h.store()), vec![expected]);
    write(h.store(), vec![put_at(b"k", b"newer", 8)]);
    assert_eq!(
        h.store()
            .get(b"k")
            .unwrap()
            .map(|r| (r.state, r.state_version, r.deltas.len())),
        Some((Some(b"newer".to_vec()), 8, 0))
    );
}

fn delete_key_removes_base_and_deltas<H: Harness>() {
    let mut h = H::new();
    write(
        h.store(),
        vec![
            put(b"a", b"1"),
            delta(b"a", 1, b"d"),
            delta(b"only-deltas", 5, b"x"),
        ],
    );
    write(
        h.store(),
        vec![del(b"a"), del(b"only-deltas"), del(b"never-existed")],
    );
    assert_eq!(h.store().get(b"a").unwrap(), None);
    assert_eq!(h.store().get(b"only-deltas").unwrap(), None);
    // A key can be recreated after deletion, without its old deltas.
    write(h.store(), vec![delta(b"a", 9, b"new")]);
    h.reopen();
    assert_eq!(
        scan_all(h.store()),
        vec![record(b"a", None, &[(9, b"new")])]
    );
}

fn meta_records<H: Harness>() {
    let mut h = H::new();
    let s = h.store();
    assert_eq!(s.get_meta("node_id").unwrap(), None);
    write(
        s,
        vec![
            Op::PutMeta {
                name: "node_id".into(),
                value: b"n1".to_vec(),
            },
            Op::PutMeta {
                name: "ünïcode".into(),
                value: vec![],
            },
            Op::put_meta_as("hlc", &(123_u64, 7_u32)),
        ],
    );
    write(
        s,
        vec![Op::PutMeta {
            name: "node_id".into(),
            value: b"n2".to_vec(),
        }],
    );
    assert_eq!(s.get_meta("node_id").unwrap(), Some(b"n2".to_vec()));
    assert_eq!(s.get_meta("ünïcode").unwrap(), Some(vec![]));
    assert_eq!(s.get_meta_as::<(u64, u32)>("hlc").unwrap(), Some((123, 7)));
    assert!(matches!(
        s.get_meta_as::<(u64, u32)>("node_id"),
        Err(StorageError::Corrupt { cf: "meta", .. })
    ));
    assert_eq!(scan_all(s), vec![], "metadata is not part of the keyspace");
    write(
        s,
        vec![Op::DeleteMeta {
            name: "ünïcode".into(),
        }],
    );
    h.reopen();
    let s = h.store();
    assert_eq!(s.get_meta("ünïcode").unwrap(), None);
    assert_eq!(s.get_meta("node_id").unwrap(), Some(b"n2".to_vec()));
    assert_eq!(
        s.get_meta("schema_version").unwrap(),
        None,
        "internal records stay hidden"
    );
}

/// Keys chosen to trip an encoding: empty, NUL and 0xFF bytes, and keys that are prefixes of
/// each other.
const AWKWARD_KEYS: &[&[u8]] = &[
    b"",
    b"\0",
    b"\0\0",
    b"\0\x01",
    b"\0\xff",
    b"\x01",
    b"a",
    b"a\0",
    b"a\0\0",
    b"a\0\x01",
    b"a\x01",
    b"ab",
    b"\xff",
    b"\xff\0",
    b"\xff\xff",
];

fn scan_is_ordered_and_complete<H: Harness>() {
    let mut h = H::new();
    let mut want = Vec::new();
    // Write in reverse so that order comes from the store, not from insertion.
    for (i, &key) in AWKWARD_KEYS.iter().enumerate().rev() {
        let mut ops = Vec::new();
        let state = (i % 3 != 1).then(|| vec![i as u8]);
        if let Some(state) = &state {
            ops.push(put(key, state));
        }
        let deltas: Vec<(u64, Vec<u8>)> = (0..(i % 3) as u64)
            .map(|s| (s, vec![i as u8, s as u8]))
            .collect();
        ops.extend(deltas.iter().map(|(s, d)| delta(key, *s, d)));
        write(h.store(), ops);
        want.push(KeyRecord {
            key: key.to_vec(),
            state_version: if state.is_some() { BASE } else { 0 },
            state,
            deltas,
        });
    }
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert!(
        want.iter().any(|r| r.state.is_none()),
        "some keys have only deltas"
    );
    assert_eq!(scan_all(h.store()), want);
    for r in &want {
        assert_eq!(h.store().get(&r.key).unwrap().as_ref(), Some(r));
    }
    h.reopen();
    assert_eq!(scan_all(h.store()), want);

    // A visitor error stops the scan and is returned as is.
    let mut seen = 0;
    let err = h.store().scan(&mut |_| {
        seen += 1;
        if seen == 3 {
            Err(StorageError::corrupt_value("state", b"x", "visitor"))
        } else {
            Ok(())
        }
    });
    assert!(matches!(err, Err(StorageError::Corrupt { .. })));
    assert_eq!(seen, 3);
}

fn batches_are_atomic<H: Harness>() {
    let mut h = H::new();
    write(h.store(), vec![put(b"keep", b"1")]);
    // One bad op anywhere refuses the whole batch, including the ops before it.
    let bad = Batch::from(vec![
        put(b"a", b"1"),
        del(b"keep"),
        Op::PutMeta {
            name: "n".repeat(META_NAME_BYTES_MAX + 1),
            value: vec![],
        },
        delta(b"b", 1, b"x"),
    ]);
    assert!(matches!(
        h.store().write(&bad, true),
        Err(StorageError::InvalidRecord { .. })
    ));
    assert_eq!(scan_all(h.store()), vec![record(b"keep", Some(b"1"), &[])]);

    // A large batch is entirely visible, before and after a restart.
    let big: Vec<Op> = (0..2000u32)
        .flat_map(|i| {
            [
                put(&i.to_be_bytes(), b"s"),
                delta(&i.to_be_bytes(), 1, b"d"),
            ]
        })
        .collect();
    h.store().write(&Batch::from(big), true).unwrap();
    assert_eq!(scan_all(h.store()).len(), 2001);
    h.reopen();
    assert_eq!(scan_all(h.store()).len(), 2001);
    assert!(h.store().key_count_estimate() > 0);
}

fn sync_and_empty_batches<H: Harness>() {
    let mut h = H::new();
    h.store().write(&Batch::new(), true).unwrap();
    h.store()
        .write(&Batch::from(vec![put(b"k", b"v")]), false)
        .unwrap();
    h.store().sync_wal().unwrap();
    h.reopen();
    assert_eq!(scan_all(h.store()), vec![record(b"k", Some(b"v"), &[])]);
}

/// A key in the model: its base state with its version, and its deltas by sequence number.
type ModelEntry = (Option<(u64, Vec<u8>)>, BTreeMap<u64, Vec<u8>>);

/// The reference model: what every store must agree with.
#[derive(Default)]
struct Model {
    keys: BTreeMap<Vec<u8>, ModelEntry>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op.clone() {
            Op::PutState {
                key,
                state,
                version,
            } => {
                let (base, deltas) = self.keys.entry(key).or_default();
                if base.as_ref().is_none_or(|(v, _)| version >= *v) {
                    *base = Some((version, state));
                }
                deltas.retain(|&seq, _| seq >= version);
            }
            Op::AppendDelta { key, seq, delta } => {
                self.keys.entry(key).or_default().1.insert(seq, delta);
            }
            Op::DeleteKey { key } => {
                self.keys.remove(&key);
            }
            Op::PutMeta { name, value } => {
                self.meta.insert(name, value);
            }
            Op::DeleteMeta { name } => {
                self.meta.remove(&name);
            }
        }
    }

    fn records(&self) -> Vec<KeyRecord> {
        let rec = |(k, (s, d)): (&Vec<u8>, &ModelEntry)| KeyRecord {
            key: k.clone(),
            state: s.as_ref().map(|(_, s)| s.clone()),
            state_version: s.as_ref().map_or(0, |(v, _)| *v),
            deltas: d.iter().map(|(&s, v)| (s, v.clone())).collect(),
        };
        self.keys.iter().map(rec).collect()
    }

    fn check(&self, store: &impl Store) -> Result<(), TestCaseError> {
        let want = self.records();
        prop_assert_eq!(scan_all(store), want.clone());
        for r in &want {
            prop_assert_eq!(store.get(&r.key).unwrap(), Some(r.clone()));
        }
        for name in ["m0", "m1", "m2"] {
            prop_assert_eq!(store.get_meta(name).unwrap(), self.meta.get(name).cloned());
        }
        Ok(())
    }
}

fn any_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(AWKWARD_KEYS).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..4),
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    let value = || prop::collection::vec(any::<u8>(), 0..6);
    let name = || prop::sample::select(vec!["m0", "m1", "m2"]).prop_map(String::from);
    prop_oneof![
        3 => (any_key(), value(), 0..8u64).prop_map(|(key, state, version)| Op::PutState { key, state, version }),
        5 => (any_key(), 0..6u64, value()).prop_map(|(key, seq, delta)| Op::AppendDelta { key, seq, delta }),
        1 => any_key().prop_map(|key| Op::DeleteKey { key }),
        1 => (name(), value()).prop_map(|(name, value)| Op::PutMeta { name, value }),
        1 => name().prop_map(|name| Op::DeleteMeta { name }),
    ]
}

fn any_batches() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(any_op(), 0..6), 1..12)
}

/// Random batches applied to the model and the store agree, also after restarts and after
/// writing on top of a restarted store (which must still know which keys have deltas).
fn matches_model<H: Harness>(
    before: Vec<Vec<Op>>,
    after: Vec<Vec<Op>>,
) -> Result<(), TestCaseError> {
    let mut h = H::new();
    let mut model = Model::default();
    for (i, ops) in before.into_iter().enumerate() {
        ops.iter().for_each(|op| model.apply(op));
        h.store().write(&Batch::from(ops), i % 2 == 0).unwrap();
    }
    model.check(h.store())?;
    h.reopen();
    model.check(h.store())?;
    for ops in after {
        ops.iter().for_each(|op| model.apply(op));
        h.store().write(&Batch::from(ops), false).unwrap();
    }
    model.check(h.store())?;
    h.reopen();
    model.check(h.store())
}

macro_rules! conformance {
    ($name:ident, $harness:ty, $cases:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn put_get_and_missing() {
                super::put_get_and_missing::<$harness>();
            }
            #[test]
            fn deltas_come_back_in_seq_order() {
                super::deltas_come_back_in_seq_order::<$harness>();
            }
            #[test]
            fn put_state_clears_deltas() {
                super::put_state_clears_deltas::<$harness>();
            }
            #[test]
            fn older_base_never_replaces_newer() {
                super::older_base_never_replaces_newer::<$harness>();
            }
            #[test]
            fn delete_key_removes_base_and_deltas() {
                super::delete_key_removes_base_and_deltas::<$harness>();
            }
            #[test]
            fn meta_records() {
                super::meta_records::<$harness>();
            }
            #[test]
            fn scan_is_ordered_and_complete() {
                super::scan_is_ordered_and_complete::<$harness>();
            }
            #[test]
            fn batches_are_atomic() {
                super::batches_are_atomic::<$harness>();
            }
            #[test]
            fn sync_and_empty_batches() {
                super::sync_and_empty_batches::<$harness>();
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases($cases))]
                #[test]
                fn matches_model(before in any_batches(), after in any_batches()) {
                    super::matches_model::<$harness>(before, after)?;
                }
            }
        }
    };
}

// Each RocksDB case opens a database three times; fewer cases keep the suite at seconds.
conformance!(rocks, Rocks, 32);
conformance!(mem, Mem, 256);
