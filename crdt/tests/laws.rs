//! The `Merge` laws of every CRDT type and of `Value`, as proptest properties over histories of
//! real operations on 3–5 replicas (see `support`). `PROPTEST_CASES` raises the case count for
//! a longer run; failures print the minimal history and the seed that replays it.

mod support;

use crdt::value::{Kind, View};
use crdt::{GCounter, LwwRegister, Merge, OrSet, PnCounter, Timestamp, Value};
use proptest::prelude::*;
use support::{Subject, check_all, steps};

const CASES: u32 = 2000;

struct GCounterSubject;
impl Subject for GCounterSubject {
    type State = GCounter;
    type Op = u64;
    fn op() -> BoxedStrategy<u64> {
        (0u64..1000).boxed()
    }
    fn apply(state: &mut GCounter, ts: Timestamp, op: &u64) -> Option<GCounter> {
        state.increment(ts.node, *op).ok()
    }
}

struct PnCounterSubject;
impl Subject for PnCounterSubject {
    type State = PnCounter;
    type Op = i64;
    fn op() -> BoxedStrategy<i64> {
        prop_oneof![-1000i64..1000, Just(i64::MIN), Just(i64::MAX)].boxed()
    }
    fn apply(state: &mut PnCounter, ts: Timestamp, op: &i64) -> Option<PnCounter> {
        state.increment(ts.node, *op).ok()
    }
}

#[derive(Clone, Debug)]
enum SetOp {
    Add(Vec<u8>),
    Remove(Vec<u8>),
    Clear,
    /// Adds enough members that merges into the set go through its dot index instead of
    /// walking its members (more than `SCAN_MEMBERS_MAX` of `or_set::dot_index`).
    Fill,
}

/// Members of [`SetOp::Fill`].
const FILL: usize = 80;

fn member() -> impl Strategy<Value = Vec<u8>> {
    // A small alphabet so adds and removes of the same member collide often.
    (0u8..6).prop_map(|b| vec![b'a' + b])
}

struct OrSetSubject;
impl Subject for OrSetSubject {
    type State = OrSet;
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        prop_oneof![
            4 => member().prop_map(SetOp::Add),
            3 => member().prop_map(SetOp::Remove),
            1 => Just(SetOp::Clear),
            1 => Just(SetOp::Fill),
        ]
        .boxed()
    }
    fn apply(state: &mut OrSet, ts: Timestamp, op: &SetOp) -> Option<OrSet> {
        Some(match op {
            SetOp::Add(m) => state.add(ts.node, [m.as_slice()]).0,
            SetOp::Remove(m) => state.remove([m.as_slice()]).0,
            SetOp::Clear => state.clear(),
            SetOp::Fill => {
                let fill: Vec<Vec<u8>> = (0..FILL)
                    .map(|i| format!("fill-{i}").into_bytes())
                    .collect();
                state.add(ts.node, fill.iter().map(Vec::as_slice)).0
            }
        })
    }
}

#[derive(Clone, Debug)]
enum RegOp {
    Set(u8),
    Clear,
}

struct RegisterSubject;
impl Subject for RegisterSubject {
    type State = LwwRegister;
    type Op = RegOp;
    fn op() -> BoxedStrategy<RegOp> {
        prop_oneof![4 => any::<u8>().prop_map(RegOp::Set), 1 => Just(RegOp::Clear)].boxed()
    }
    fn apply(state: &mut LwwRegister, ts: Timestamp, op: &RegOp) -> Option<LwwRegister> {
        Some(match op {
            RegOp::Set(v) => state.set(ts, &[*v]),
            RegOp::Clear => state.clear(),
        })
    }
}

/// Every command family that mutates a key, mixed on the same key so type conflicts, conversions
/// and key-level deletes all happen.
#[derive(Clone, Debug)]
pub enum ValueOp {
    Set(u8),
    Incr(i64),
    GIncr(i64),
    Sadd(Vec<u8>),
    Srem(Vec<u8>),
    TextInsert(u64, String),
    TextDelete(u64, u64),
    Delete,
}

fn value_op() -> BoxedStrategy<ValueOp> {
    prop_oneof![
        3 => prop_oneof![any::<u8>(), Just(b'7')].prop_map(ValueOp::Set),
        3 => (-50i64..50).prop_map(ValueOp::Incr),
        1 => (0i64..50).prop_map(ValueOp::GIncr),
        3 => member().prop_map(ValueOp::Sadd),
        2 => member().prop_map(ValueOp::Srem),
        2 => (0u64..6, "[a-cé€😀]{1,3}").prop_map(|(i, s)| ValueOp::TextInsert(i, s)),
        1 => (0u64..6, 0u64..4).prop_map(|(i, n)| ValueOp::TextDelete(i, n)),
        2 => Just(ValueOp::Delete),
    ]
    .boxed()
}

fn apply_value(state: &mut Value, ts: Timestamp, op: &ValueOp) -> Option<Value> {
    match op {
        ValueOp::Set(v) => Some(state.set_register(ts, &[*v])),
        ValueOp::Incr(n) => state.incr_by(ts, *n).ok().map(|r| r.0),
        ValueOp::GIncr(n) => state.gcounter_incr_by(ts, *n).ok().map(|r| r.0),
        ValueOp::Sadd(m) => state.sadd(ts, &[m.as_slice()]).ok().map(|r| r.0),
        ValueOp::Srem(m) => state.srem(&[m.as_slice()]).ok().and_then(|r| r.0),
        ValueOp::TextInsert(i, s) => state.text_insert(ts, *i, s).ok().flatten(),
        ValueOp::TextDelete(i, n) => state.text_delete(ts, *i, *n).ok().and_then(|r| r.0),
        ValueOp::Delete => state.delete(),
    }
}

struct ValueSubject;
impl Subject for ValueSubject {
    type State = Value;
    type Op = ValueOp;
    fn op() -> BoxedStrategy<ValueOp> {
        value_op()
    }
    fn apply(state: &mut Value, ts: Timestamp, op: &ValueOp) -> Option<Value> {
        apply_value(state, ts, op)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn g_counter_laws(replicas in 3usize..6, steps in steps::<GCounterSubject>(5, 40), seed: u64) {
        check_all::<GCounterSubject>(replicas.min(5), &clamp(steps, replicas), seed)?;
    }

    #[test]
    fn pn_counter_laws(replicas in 3usize..6, steps in steps::<PnCounterSubject>(5, 40), seed: u64) {
        check_all::<PnCounterSubject>(replicas, &clamp(steps, replicas), seed)?;
    }

    #[test]
    fn or_set_laws(replicas in 3usize..6, steps in steps::<OrSetSubject>(5, 50), seed: u64) {
        check_all::<OrSetSubject>(replicas, &clamp(steps, replicas), seed)?;
    }

    #[test]
    fn register_laws(replicas in 3usize..6, steps in steps::<RegisterSubject>(5, 40), seed: u64) {
        check_all::<RegisterSubject>(replicas, &clamp(steps, replicas), seed)?;
    }

    #[test]
    fn value_laws(replicas in 3usize..6, steps in steps::<ValueSubject>(5, 60), seed: u64) {
        check_all::<ValueSubject>(replicas, &clamp(steps, replicas), seed)?;
    }

    /// The hand-written encoding of a `Value` is byte for byte the serde one, for every state
    /// and every delta a replicated history produces (several nodes, every type, removals), and
    /// the state encoding decodes back to the value.
    #[test]
    fn hand_written_value_encoding_is_the_serde_encoding(
        replicas in 3usize..6,
        steps in steps::<ValueSubject>(5, 60),
    ) {
        let mut run = support::Run::<ValueSubject>::new(replicas);
        run.play(&clamp(steps, replicas))?;
        for v in run.replicas.iter().chain(&run.all_deltas) {
            prop_assert_eq!(crdt::value::encode_value(v), crdt::encoding::encode(v), "{:?}", v);
            // Storage's state encoding (members in table order) decodes to the same value.
            let state = crdt::value::encode_state(v);
            prop_assert_eq!(crdt::encoding::decode::<Value>(&state), Ok(v.clone()));
        }
    }

    /// On one replica a `Value` behaves like the Redis data type its commands name.
    #[test]
    fn value_on_one_node_behaves_like_redis(ops in proptest::collection::vec(value_op(), 0..60)) {
        let mut clock = crdt::Hlc::new(crdt::NodeId(1), 0);
        let mut value = Value::new();
        let mut model = Model::Absent;
        for (i, op) in ops.iter().enumerate() {
            let ts = clock.now(i as u64);
            let accepted = apply_value(&mut value, ts, op).is_some() || model.no_op(op);
            let expected = model.apply(op);
            prop_assert_eq!(accepted, expected, "op {:?} on {:?}", op, model);
            prop_assert_eq!(observe(&value), model.clone(), "after {:?}", op);
        }
    }
}

/// Steps drawn for 5 replicas, folded onto `replicas`.
fn clamp<O>(steps: Vec<support::Step<O>>, replicas: usize) -> Vec<support::Step<O>> {
    use support::Step::*;
    steps
        .into_iter()
        .map(|s| match s {
            Mutate { at, op } => Mutate {
                at: at % replicas,
                op,
            },
            Deliver { pick, to, again } => Deliver {
                pick,
                to: to % replicas,
                again,
            },
            Sync { from, to } => Sync {
                from: from % replicas,
                to: to % replicas,
            },
        })
        .collect()
}

/// What Redis would hold.
#[derive(Clone, Debug, PartialEq)]
enum Model {
    Absent,
    Str(Vec<u8>),
    Counter(i128),
    GCounter(i128),
    Set(std::collections::BTreeSet<Vec<u8>>),
    Text(Vec<char>),
}

impl Model {
    /// Ops that are accepted but change nothing, so produce no delta.
    fn no_op(&self, op: &ValueOp) -> bool {
        match (self, op) {
            (Model::Absent, ValueOp::Srem(_) | ValueOp::Delete) => true,
            (Model::Set(s), ValueOp::Srem(m)) => !s.contains(m),
            (Model::Absent, ValueOp::TextDelete(0, _)) => true,
            (Model::Text(t), ValueOp::TextDelete(i, n)) => {
                *i as usize <= t.len() && (*n == 0 || *i as usize == t.len())
            }
            _ => false,
        }
    }

    /// Applies `op`; returns whether it was accepted (not an error).
    fn apply(&mut self, op: &ValueOp) -> bool {
        match (op, &mut *self) {
            (ValueOp::Set(v), _) => *self = Model::Str(vec![*v]),
            (ValueOp::Delete, _) => *self = Model::Absent,
            (ValueOp::Incr(n), Model::Absent) => *self = Model::Counter(i128::from(*n)),
            (ValueOp::Incr(n), Model::Counter(c)) => *c += i128::from(*n),
            (ValueOp::Incr(n), Model::Str(s)) => match std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(v) if crdt::value::parse_integer(s).is_some() => {
                    *self = Model::Counter(i128::from(v) + i128::from(*n))
                }
                _ => return false,
            },
            (ValueOp::GIncr(n), Model::Absent) => *self = Model::GCounter(i128::from(*n)),
            (ValueOp::GIncr(n), Model::GCounter(c)) => *c += i128::from(*n),
            (ValueOp::Sadd(m), Model::Absent) => *self = Model::Set([m.clone()].into()),
            (ValueOp::Sadd(m), Model::Set(s)) => {
                s.insert(m.clone());
            }
            (ValueOp::Srem(_), Model::Absent) => {}
            (ValueOp::Srem(m), Model::Set(s)) => {
                s.remove(m);
                if s.is_empty() {
                    *self = Model::Absent;
                }
            }
            (ValueOp::TextInsert(i, s), Model::Absent) if *i == 0 => {
                *self = Model::Text(s.chars().collect())
            }
            (ValueOp::TextInsert(i, s), Model::Text(t)) if *i as usize <= t.len() => {
                let at = *i as usize;
                t.splice(at..at, s.chars());
            }
            (ValueOp::TextDelete(0, _), Model::Absent) => {}
            (ValueOp::TextDelete(i, n), Model::Text(t)) if *i as usize <= t.len() => {
                let at = *i as usize;
                let end = (at + *n as usize).min(t.len());
                t.drain(at..end);
                if t.is_empty() {
                    *self = Model::Absent;
                }
            }
            _ => return false,
        }
        true
    }
}

fn observe(value: &Value) -> Model {
    match (value.kind(), value.view()) {
        (None, _) => Model::Absent,
        (Some(Kind::Register), Some(View::Register(b))) => Model::Str(b.to_vec()),
        (Some(Kind::PnCounter), Some(View::Counter(c))) => Model::Counter(c),
        (Some(Kind::GCounter), Some(View::Counter(c))) => Model::GCounter(c),
        (Some(Kind::Set), Some(View::Set(s))) => Model::Set(s.iter().map(<[u8]>::to_vec).collect()),
        (Some(Kind::Text), Some(View::Text(t))) => Model::Text(t.to_string().chars().collect()),
        other => panic!("inconsistent view {other:?}"),
    }
}

/// A node that forgot a key (its tombstone was garbage-collected) writes it again while another
/// replica still holds the old tombstone: the new write must survive for every kind. Without
/// fresh starts (dots, text ids and counter epochs restarting at 1) this loses the write.
#[test]
fn rewrite_after_tombstone_collection_survives_an_old_tombstone() {
    type Write = Box<dyn Fn(&mut Value, Timestamp) -> Option<Value>>;
    let ops: Vec<Write> = vec![
        Box::new(|v, ts| Some(v.set_register(ts, b"x"))),
        Box::new(|v, ts| v.incr_by(ts, 5).ok().map(|r| r.0)),
        Box::new(|v, ts| v.gcounter_incr_by(ts, 5).ok().map(|r| r.0)),
        Box::new(|v, ts| v.sadd(ts, &[b"m"]).ok().map(|r| r.0)),
        Box::new(|v, ts| v.text_insert(ts, 0, "hi").ok().flatten()),
    ];
    let node = crdt::NodeId(1);
    for (i, op) in ops.iter().enumerate() {
        let mut clock = crdt::Hlc::new(node, 0);
        let mut old = Value::new();
        for t in 1..4 {
            op(&mut old, clock.now(t));
        }
        old.delete().expect("existed");
        assert!(old.is_tombstone());
        // Node 1 dropped the key; a minute later it writes it again from nothing.
        let mut reborn = Value::new();
        let delta = op(&mut reborn, clock.now(60_000)).expect("write");
        old.merge(delta);
        assert!(
            old.exists(),
            "kind #{i}: the new write was cancelled by the old tombstone"
        );
        assert_eq!(old.kind(), reborn.kind());
        assert_eq!(observe(&old), observe(&reborn), "kind #{i}");
    }
}
