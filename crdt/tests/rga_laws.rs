//! The [`Merge`] laws for [`Rga`], as proptest properties over states produced by random
//! replicated histories.
//!
//! A history is a few replicas (3–5) editing concurrently: inserts of random Unicode (including
//! multi-byte characters) and deletes at random positions, occasional whole-text deletes, and
//! deltas delivered between replicas in random order, duplicated, or not at all; sometimes a
//! replica merges another's full state. So the states the laws are checked on hold concurrent
//! inserts at the same place, pending inserts whose origin has not arrived, and pending
//! deletes of ids not yet inserted.

use crdt::encoding::{decode, encode};
use crdt::{Merge, NodeId, Rga};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Insert {
        replica: usize,
        pos: u16,
        text: String,
    },
    Delete {
        replica: usize,
        pos: u16,
        len: u8,
    },
    DeleteAll {
        replica: usize,
    },
    Deliver {
        to: usize,
        delta: u16,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => prop::sample::select(vec!['a', 'b', 'c', ' ', '\n']),
        2 => prop::sample::select(vec!['é', 'ß', '€', '中', '𝄞', '😀']),
        1 => any::<char>(),
    ];
    prop::collection::vec(ch, 1..5).prop_map(|cs| cs.into_iter().collect())
}

fn step(replicas: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..replicas, any::<u16>(), text())
            .prop_map(|(replica, pos, text)| Step::Insert { replica, pos, text }),
        3 => (0..replicas, any::<u16>(), 1u8..6)
            .prop_map(|(replica, pos, len)| Step::Delete { replica, pos, len }),
        1 => (0..replicas).prop_map(|replica| Step::DeleteAll { replica }),
        5 => (0..replicas, any::<u16>()).prop_map(|(to, delta)| Step::Deliver { to, delta }),
        1 => (0..replicas, 0..replicas).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// A history: how many replicas and what they do.
fn history() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (3usize..=5).prop_flat_map(|n| (Just(n), prop::collection::vec(step(n), 0..50)))
}

/// Replicas after a history, and every delta produced, in order.
struct Sim {
    replicas: Vec<Rga>,
    deltas: Vec<Rga>,
}

fn run(n: usize, steps: &[Step]) -> Sim {
    let mut sim = Sim {
        replicas: vec![Rga::new(); n],
        deltas: Vec::new(),
    };
    for s in steps {
        match s {
            Step::Insert { replica, pos, text } => {
                let r = &mut sim.replicas[*replica];
                let at = u64::from(*pos) % (r.len() + 1);
                let d = r
                    .insert(NodeId(*replica as u64 + 1), at, text)
                    .expect("position in range");
                sim.deltas.push(d);
            }
            Step::Delete { replica, pos, len } => {
                let r = &mut sim.replicas[*replica];
                if r.is_empty() {
                    continue;
                }
                let at = u64::from(*pos) % r.len();
                let d = r
                    .delete(NodeId(*replica as u64 + 1), at, u64::from(*len))
                    .expect("position in range");
                sim.deltas.push(d);
            }
            Step::DeleteAll { replica } => {
                let d = sim.replicas[*replica].delete_all();
                sim.deltas.push(d);
            }
            Step::Deliver { to, delta } => {
                if !sim.deltas.is_empty() {
                    let d = sim.deltas[usize::from(*delta) % sim.deltas.len()].clone();
                    sim.replicas[*to].merge(d);
                }
            }
            Step::Sync { from, to } => {
                let state = sim.replicas[*from].clone();
                sim.replicas[*to].merge(state);
            }
        }
    }
    sim
}

/// Three states from one history (replicas wrap around when there are fewer).
fn three_states() -> impl Strategy<Value = (Rga, Rga, Rga)> {
    history().prop_map(|(n, steps)| {
        let sim = run(n, &steps);
        let r = &sim.replicas;
        (r[0].clone(), r[1 % n].clone(), r[2 % n].clone())
    })
}

fn same(a: &Rga, b: &Rga) -> Result<(), TestCaseError> {
    prop_assert_eq!(a, b);
    prop_assert_eq!(a.to_string(), b.to_string());
    prop_assert_eq!(encode(a), encode(b));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn merge_is_commutative((a, b, _) in three_states()) {
        same(&a.clone().merged(b.clone()), &b.merged(a))?;
    }

    #[test]
    fn merge_is_associative((a, b, c) in three_states()) {
        let left = a.clone().merged(b.clone()).merged(c.clone());
        let right = a.merged(b.merged(c));
        same(&left, &right)?;
    }

    #[test]
    fn merge_is_idempotent((a, b, _) in three_states()) {
        same(&a.clone().merged(a.clone()), &a)?;
        let ab = a.merged(b.clone());
        same(&ab.clone().merged(b), &ab)?;
    }

    #[test]
    fn bottom_is_the_identity((a, _, _) in three_states()) {
        same(&a.clone().merged(Rga::new()), &a)?;
        same(&Rga::new().merged(a.clone()), &a)?;
    }

    /// A mutation's delta has exactly the mutation's effect, and merging it commutes with
    /// merging any other state.
    #[test]
    fn delta_then_merge_equals_merge_then_delta(
        (s, t, _) in three_states(),
        pos in any::<u16>(),
        text in text(),
        del in 1u8..6,
        kind in 0u8..3,
    ) {
        let before = s.clone();
        let mut after = s;
        let node = NodeId(9);
        let d = match kind {
            0 => {
                let at = u64::from(pos) % (after.len() + 1);
                after.insert(node, at, &text).expect("in range")
            }
            1 if !after.is_empty() => {
                let at = u64::from(pos) % after.len();
                after.delete(node, at, u64::from(del)).expect("in range")
            }
            _ => after.delete_all(),
        };
        same(&before.clone().merged(d.clone()), &after)?;
        let left = after.merged(t.clone());
        let right = before.merged(t).merged(d);
        same(&left, &right)?;
    }

    #[test]
    fn encode_decode_round_trips((a, b, _) in three_states()) {
        for s in [a.clone(), a.merged(b)] {
            let bytes = encode(&s);
            let back: Rga = decode(&bytes).expect("decode own encoding");
            same(&back, &s)?;
            prop_assert_eq!(encode(&back), bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Replicas that exchange deltas in random orders, with duplicates and drops, and then
    /// repair by full-state merges, all end equal; and the set of all deltas alone rebuilds
    /// the same state.
    #[test]
    fn replicas_converge(
        (n, steps) in history(),
        order in prop::collection::vec(any::<u32>(), 0..200),
        drop_every in 2usize..7,
    ) {
        let mut sim = run(n, &steps);
        let k = sim.deltas.len();
        // Every replica gets the deltas in its own shuffled order, some twice, some dropped.
        for (i, replica) in sim.replicas.iter_mut().enumerate() {
            let mut idx: Vec<usize> = (0..k).chain((0..k).step_by(3)).collect();
            idx.sort_by_key(|&j| {
                let key = order.get((i * 31 + j) % order.len().max(1)).copied().unwrap_or(0);
                key ^ (j as u32).wrapping_mul(2654435761)
            });
            for (c, j) in idx.into_iter().enumerate() {
                if (c + i) % drop_every != 0 {
                    replica.merge(sim.deltas[j].clone());
                }
            }
        }
        // Repair: everyone merges everyone's full state.
        let states = sim.replicas.clone();
        for replica in &mut sim.replicas {
            for s in &states {
                replica.merge(s.clone());
            }
        }
        for r in &sim.replicas[1..] {
            same(r, &sim.replicas[0])?;
        }
        // The deltas alone, merged in reverse (inserts before their origins), are the state.
        let mut rebuilt = Rga::new();
        for d in sim.deltas.iter().rev() {
            rebuilt.merge(d.clone());
        }
        same(&rebuilt, &sim.replicas[0])?;
        let st = rebuilt.stats();
        prop_assert_eq!((st.pending_inserts, st.pending_deletes), (0, 0));
    }

    /// Arbitrary bytes never make decoding panic.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode::<Rga>(&bytes);
        let mut versioned = vec![crdt::encoding::FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        if let Ok(s) = decode::<Rga>(&versioned) {
            let again: Rga = decode(&encode(&s)).expect("re-decode");
            same(&again, &s)?;
        }
    }

    /// Truncated or corrupted encodings of real states never make decoding panic; whatever
    /// decodes is a valid state that round-trips.
    #[test]
    fn corrupted_encodings_never_panic(
        (a, _, _) in three_states(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let bytes = encode(&a);
        let n = cut.index(bytes.len() + 1);
        prop_assert!(n == bytes.len() || decode::<Rga>(&bytes[..n]).is_err());
        let mut bad = bytes.clone();
        for (i, v) in flips {
            let i = i.index(bad.len());
            bad[i] = v;
        }
        if let Ok(s) = decode::<Rga>(&bad) {
            let again: Rga = decode(&encode(&s)).expect("re-decode");
            same(&again, &s)?;
        }
    }
}
