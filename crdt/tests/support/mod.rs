//! A generic harness that checks the [`Merge`] laws of a CRDT on states reached by real
//! operations: several replicas mutate, ship deltas that are delayed, reordered, duplicated or
//! lost, and sometimes merge full state. Laws are only promised for reachable states, so states
//! are never invented field by field.

#![allow(dead_code)]

use std::fmt::Debug;

use crdt::encoding::{decode, encode};
use crdt::{Hlc, Merge, NodeId, Timestamp};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A CRDT under test and the operations its replicas perform.
pub trait Subject {
    type State: Merge + Clone + PartialEq + Debug + Default + Serialize + DeserializeOwned;
    type Op: Clone + Debug;
    /// Operations to draw from.
    fn op() -> BoxedStrategy<Self::Op>;
    /// Applies `op` as `node` at `ts`; returns the delta, or `None` when the op changed nothing.
    fn apply(state: &mut Self::State, ts: Timestamp, op: &Self::Op) -> Option<Self::State>;
}

/// One step of a replicated history.
#[derive(Clone, Debug)]
pub enum Step<Op> {
    /// Replica `at` performs `op`; its delta goes in flight.
    Mutate { at: usize, op: Op },
    /// In-flight delta `pick` (modulo the count) reaches replica `to`; it stays in flight for a
    /// later duplicate when `again`.
    Deliver { pick: usize, to: usize, again: bool },
    /// Replica `to` merges the full state of replica `from` (anti-entropy).
    Sync { from: usize, to: usize },
}

pub fn steps<S: Subject>(replicas: usize, len: usize) -> impl Strategy<Value = Vec<Step<S::Op>>> {
    let step = prop_oneof![
        4 => (0..replicas, S::op()).prop_map(|(at, op)| Step::Mutate { at, op }),
        3 => (any::<usize>(), 0..replicas, any::<bool>())
            .prop_map(|(pick, to, again)| Step::Deliver { pick, to, again }),
        1 => (0..replicas, 0..replicas).prop_map(|(from, to)| Step::Sync { from, to }),
    ];
    proptest::collection::vec(step, 0..len)
}

/// Replicas after running a history, with every delta ever produced.
pub struct Run<S: Subject> {
    pub replicas: Vec<S::State>,
    pub in_flight: Vec<S::State>,
    pub all_deltas: Vec<S::State>,
    clocks: Vec<Hlc>,
    wall_ms: u64,
}

impl<S: Subject> Run<S> {
    pub fn new(replicas: usize) -> Self {
        Run {
            replicas: vec![S::State::default(); replicas],
            in_flight: Vec::new(),
            all_deltas: Vec::new(),
            clocks: (0..replicas)
                .map(|i| Hlc::new(NodeId(i as u64 + 1), u64::MAX))
                .collect(),
            wall_ms: 1_000,
        }
    }

    /// Runs `steps`, checking on every mutation that the mutated state equals the old state
    /// joined with the delta (the delta law).
    pub fn play(&mut self, steps: &[Step<S::Op>]) -> Result<(), TestCaseError> {
        for step in steps {
            match step {
                Step::Mutate { at, op } => {
                    // Wall clocks drift apart on purpose; the HLC keeps causal order regardless.
                    self.wall_ms += 1 + (*at as u64 * 7) % 3;
                    let wall = self.wall_ms.saturating_sub(*at as u64 * 5);
                    let ts = self.clocks[*at].now(wall);
                    let before = self.replicas[*at].clone();
                    if let Some(delta) = S::apply(&mut self.replicas[*at], ts, op) {
                        prop_assert_eq!(
                            &self.replicas[*at],
                            &before.merged(delta.clone()),
                            "mutation != state ⊔ delta for {:?}",
                            op
                        );
                        self.in_flight.push(delta.clone());
                        self.all_deltas.push(delta);
                    }
                }
                Step::Deliver { pick, to, again } => {
                    if self.in_flight.is_empty() {
                        continue;
                    }
                    let i = pick % self.in_flight.len();
                    let delta = if *again {
                        self.in_flight[i].clone()
                    } else {
                        self.in_flight.swap_remove(i)
                    };
                    self.replicas[*to].merge(delta);
                    self.observe_all(*to);
                }
                Step::Sync { from, to } => {
                    let state = self.replicas[*from].clone();
                    self.replicas[*to].merge(state);
                    self.observe_all(*to);
                }
            }
        }
        Ok(())
    }

    /// After a merge a node's clock has seen the timestamps it merged; a coarse stand-in is to
    /// let it observe every other clock (timestamps only move forward, so this is safe).
    fn observe_all(&mut self, to: usize) {
        let highest = self
            .clocks
            .iter()
            .map(Hlc::high_water)
            .max()
            .expect("replicas");
        let _ = self.clocks[to].observe(highest, u64::MAX / 2);
    }
}

/// Commutative, associative, idempotent on three reachable states.
pub fn check_semilattice<S: Subject>(
    a: &S::State,
    b: &S::State,
    c: &S::State,
) -> Result<(), TestCaseError> {
    let ab = a.clone().merged(b.clone());
    prop_assert_eq!(
        &ab,
        &b.clone().merged(a.clone()),
        "merge is not commutative"
    );
    prop_assert_eq!(
        &ab.clone().merged(c.clone()),
        &a.clone().merged(b.clone().merged(c.clone())),
        "merge is not associative"
    );
    prop_assert_eq!(&a.clone().merged(a.clone()), a, "merge is not idempotent");
    prop_assert_eq!(
        &ab.clone().merged(b.clone()),
        &ab,
        "merging a part of a state changes it"
    );
    Ok(())
}

/// A delta shipped late still lands in the same place: `(s ⊔ t) ⊔ d == (s ⊔ d) ⊔ t`.
pub fn check_delta_commutes<S: Subject>(
    s: &S::State,
    t: &S::State,
    d: &S::State,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        s.clone().merged(t.clone()).merged(d.clone()),
        s.clone().merged(d.clone()).merged(t.clone())
    );
    Ok(())
}

/// Encoding round-trips and is canonical.
pub fn check_encoding<S: Subject>(s: &S::State) -> Result<(), TestCaseError> {
    let bytes = encode(s);
    let back: S::State = decode(&bytes).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(&back, s);
    prop_assert_eq!(encode(&back), bytes);
    Ok(())
}

/// Delivers what is left in flight in a shuffled order with some losses, then repairs by
/// full-state merges; every replica must end equal, with equal encodings.
pub fn check_convergence<S: Subject>(run: &mut Run<S>, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let n = run.replicas.len();
    while !run.in_flight.is_empty() {
        let i = (next() % run.in_flight.len() as u64) as usize;
        let delta = run.in_flight.swap_remove(i);
        for to in 0..n {
            match next() % 4 {
                0 => {} // lost on the way to this replica
                1 => {
                    run.replicas[to].merge(delta.clone());
                    run.replicas[to].merge(delta.clone()); // duplicated
                }
                _ => run.replicas[to].merge(delta.clone()),
            }
        }
    }
    // Anti-entropy: a ring of full-state merges; each round carries state one hop, so `n` rounds
    // reach every replica.
    for _ in 0..n {
        for i in 0..n {
            let from = run.replicas[(i + 1) % n].clone();
            run.replicas[i].merge(from);
        }
    }
    let first = encode(&run.replicas[0]);
    for r in &run.replicas[1..] {
        prop_assert_eq!(r, &run.replicas[0]);
        prop_assert_eq!(encode(r), first.clone());
    }
    Ok(())
}

/// Replicas that receive every delta, in different orders and with duplicates but no loss,
/// end equal without any full-state merge.
pub fn check_order_independence<S: Subject>(
    deltas: &[S::State],
    seed: u64,
) -> Result<(), TestCaseError> {
    let in_order = deltas
        .iter()
        .cloned()
        .fold(S::State::default(), Merge::merged);
    let mut shuffled: Vec<S::State> = deltas
        .iter()
        .cloned()
        .chain(deltas.iter().step_by(3).cloned())
        .collect();
    let mut rng = seed | 1;
    for i in (1..shuffled.len()).rev() {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        shuffled.swap(i, (rng >> 33) as usize % (i + 1));
    }
    let other = shuffled
        .into_iter()
        .fold(S::State::default(), Merge::merged);
    prop_assert_eq!(&other, &in_order);
    Ok(())
}

/// The laws every CRDT must satisfy, run on one generated history.
pub fn check_all<S: Subject>(
    replicas: usize,
    steps: &[Step<S::Op>],
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut run = Run::<S>::new(replicas);
    run.play(steps)?;
    let (a, b, c) = (
        &run.replicas[0],
        &run.replicas[1 % replicas],
        &run.replicas[2 % replicas],
    );
    check_semilattice::<S>(a, b, c)?;
    for d in run.all_deltas.iter().take(4) {
        check_delta_commutes::<S>(a, b, d)?;
        check_encoding::<S>(d)?;
    }
    for r in &run.replicas {
        check_encoding::<S>(r)?;
    }
    check_order_independence::<S>(&run.all_deltas, seed)?;
    check_convergence(&mut run, seed)
}
