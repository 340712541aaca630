//! Local editing: positions, runs, splits, the tree under many edits.

use super::*;
use crate::encoding::{decode, encode};
use crate::merge::Merge;

pub(super) const A: NodeId = NodeId(1);
pub(super) const B: NodeId = NodeId(2);
pub(super) const C: NodeId = NodeId(3);

/// A deterministic pseudo-random sequence (the crate takes no randomness; tests print none
/// because the seed is fixed).
pub(super) struct Lcg(pub u64);

impl Lcg {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Checks the tree, the canonical form and the encoding round trip.
pub(super) fn check(rga: &Rga) {
    if let Some(t) = rga.as_state().tree() {
        t.check();
    }
    let bytes = encode(rga);
    let back: Rga = decode(&bytes).expect("round trip");
    assert_eq!(&back, rga);
    assert_eq!(encode(&back), bytes);
    if let Some(t) = back.as_state().tree() {
        t.check();
    }
    assert_eq!(back.to_string(), rga.to_string());
}

fn ins(rga: &mut Rga, node: NodeId, i: u64, s: &str) -> Rga {
    rga.insert(node, i, s).unwrap()
}

#[test]
fn insert_delete_slice_display() {
    let mut t = Rga::new();
    assert!(t.is_empty());
    ins(&mut t, A, 0, "hello");
    ins(&mut t, A, 5, " world");
    ins(&mut t, A, 0, ">");
    assert_eq!(t.to_string(), ">hello world");
    assert_eq!(t.len(), 12);
    assert_eq!(t.slice(1, 6), "hello");
    assert_eq!(t.slice(7, 100), "world");
    assert_eq!(t.slice(9, 3), "");
    t.delete(A, 0, 1).unwrap();
    t.delete(A, 5, 100).unwrap();
    assert_eq!(t.to_string(), "hello");
    assert_eq!(t.stats().total_chars, 12);
    check(&t);
}

#[test]
fn errors_leave_state_unchanged() {
    let mut t = Rga::new();
    ins(&mut t, A, 0, "ab");
    let before = t.clone();
    assert_eq!(
        t.insert(A, 3, "x"),
        Err(Error::IndexOutOfRange { index: 3, len: 2 })
    );
    assert_eq!(
        t.delete(A, 3, 1),
        Err(Error::IndexOutOfRange { index: 3, len: 2 })
    );
    assert_eq!(t, before);
    assert_eq!(t.insert(A, 1, "").unwrap(), Rga::new());
    assert_eq!(t.delete(A, 2, 5).unwrap(), Rga::new());
    assert_eq!(t, before);
}

#[test]
fn unicode_positions_are_code_points() {
    let mut t = Rga::new();
    ins(&mut t, A, 0, "héllo wörld");
    ins(&mut t, A, 1, "€𝄞");
    assert_eq!(t.to_string(), "h€𝄞éllo wörld");
    assert_eq!(t.len(), 13);
    t.delete(A, 2, 2).unwrap();
    assert_eq!(t.to_string(), "h€llo wörld");
    assert_eq!(t.slice(7, 9), "ör");
    check(&t);
}

#[test]
fn typing_extends_one_run() {
    let mut t = Rga::new();
    for (i, c) in "the quick brown fox".chars().enumerate() {
        ins(&mut t, A, i as u64, &c.to_string());
    }
    assert_eq!(t.stats().runs, 1);
    // Backspacing the tail leaves one tombstone run next to the live one.
    for i in (10..19).rev() {
        t.delete(A, i, 1).unwrap();
    }
    assert_eq!(t.to_string(), "the quick ");
    assert_eq!(t.stats().runs, 2);
    check(&t);
}

#[test]
fn insert_into_middle_of_run_splits_it() {
    let mut t = Rga::new();
    ins(&mut t, A, 0, "abcdef");
    ins(&mut t, B, 3, "XY");
    assert_eq!(t.to_string(), "abcXYdef");
    let runs: Vec<_> = canonical::runs(&t.as_state())
        .map(|r| (r.node, r.seq, r.len, r.origin, r.text.into_owned()))
        .collect();
    assert_eq!(
        runs,
        vec![
            (A, 1, 3, None, "abc".to_owned()),
            (B, 1, 2, Some((A, 3)), "XY".to_owned()),
            (A, 4, 3, Some((A, 3)), "def".to_owned()),
        ]
    );
    check(&t);
}

#[test]
fn delete_across_runs_and_in_middle() {
    let mut t = Rga::new();
    ins(&mut t, A, 0, "aaaa");
    ins(&mut t, B, 4, "bbbb");
    ins(&mut t, C, 8, "cccc");
    let d = t.delete(A, 2, 8).unwrap();
    assert_eq!(t.to_string(), "aacc");
    assert_eq!(
        d.as_state().deletes.iter().collect::<Vec<_>>(),
        vec![(A, 3, 5), (B, 1, 5), (C, 1, 3)]
    );
    t.delete(A, 1, 2).unwrap();
    assert_eq!(t.to_string(), "ac");
    check(&t);
}

#[test]
fn delete_all_keeps_tombstones_and_reports_ids() {
    let mut t = Rga::new();
    ins(&mut t, A, 0, "abc");
    ins(&mut t, B, 1, "xy");
    let d = t.delete_all();
    assert!(t.is_empty());
    assert_eq!(t.stats().total_chars, 5);
    assert_eq!(
        d.as_state().deletes.iter().collect::<Vec<_>>(),
        vec![(A, 1, 4), (B, 1, 3)]
    );
    ins(&mut t, A, 0, "z");
    assert_eq!(t.to_string(), "z");
    check(&t);
}

#[test]
fn stats_count_per_node() {
    let mut t = Rga::new();
    ins(&mut t, A, 0, "abc");
    ins(&mut t, B, 3, "de");
    t.delete(A, 0, 1).unwrap();
    let s = t.stats();
    assert_eq!(
        (
            s.visible_chars,
            s.total_chars,
            s.pending_inserts,
            s.pending_deletes
        ),
        (4, 5, 0, 0)
    );
    assert_eq!(s.chars_by_node, vec![(A, 3), (B, 2)]);
}

/// Random edits against a `String` model: exercises leaf and inner-node splits, the id
/// index under re-pointing, and byte/char conversions with multi-byte text.
#[test]
fn random_edits_match_a_string_model() {
    let alphabet: Vec<char> = "abcdefgh é€𝄞\n".chars().collect();
    for seed in 0..4 {
        let mut rng = Lcg(seed);
        let mut t = Rga::new();
        let mut model: Vec<char> = Vec::new();
        for step in 0..4000 {
            let node = NodeId(rng.below(3) + 1);
            let len = model.len() as u64;
            if rng.below(3) > 0 || len == 0 {
                let at = rng.below(len + 1);
                let big = rng.below(10) == 0;
                let n = 1 + rng.below(if big { 40 } else { 3 });
                let s: String = (0..n)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect();
                let d = t.insert(node, at, &s).unwrap();
                assert_eq!(d.stats().pending_inserts + d.stats().total_chars, n);
                model.splice(at as usize..at as usize, s.chars());
            } else {
                let at = rng.below(len);
                let big = rng.below(10) == 0;
                let n = 1 + rng.below(if big { 50 } else { 4 });
                t.delete(node, at, n).unwrap();
                let end = (at + n).min(len) as usize;
                model.drain(at as usize..end);
            }
            if step % 500 == 0 {
                t.as_state().tree().expect("text").check();
            }
            assert_eq!(t.len(), model.len() as u64);
        }
        assert_eq!(t.to_string(), model.iter().collect::<String>());
        let (a, b) = (rng.below(t.len()), rng.below(t.len()));
        let (a, b) = (a.min(b), a.max(b));
        assert_eq!(
            t.slice(a, b),
            model[a as usize..b as usize].iter().collect::<String>()
        );
        assert!(
            t.as_state().tree().expect("text").height >= 2,
            "the test should grow inner nodes"
        );
        check(&t);
    }
}

/// Replaying a history's deltas into an empty replica reproduces it exactly.
#[test]
fn deltas_rebuild_the_state() {
    let mut rng = Lcg(99);
    let mut t = Rga::new();
    let mut rebuilt = Rga::new();
    for _ in 0..2000 {
        let len = t.len();
        let d = if rng.below(3) > 0 || len == 0 {
            t.insert(NodeId(rng.below(2) + 1), rng.below(len + 1), "xyz")
                .unwrap()
        } else {
            t.delete(A, rng.below(len), 1 + rng.below(5)).unwrap()
        };
        rebuilt.merge(d);
    }
    assert_eq!(rebuilt, t);
    assert_eq!(rebuilt.to_string(), t.to_string());
    check(&rebuilt);
}

/// Local edits return small inline deltas that behave exactly like full states.
#[test]
fn deltas_are_small_values_equal_to_their_full_form() {
    assert!(
        size_of::<Rga>() <= 128,
        "an Rga is moved around a lot; keep it small"
    );
    let mut t = Rga::new();
    ins(&mut t, A, 0, "hello");
    let d_ins = ins(&mut t, A, 5, "!");
    assert!(d_ins.state.is_none() && matches!(d_ins.small, Small::Insert(..)));
    let d_del = t.delete(A, 1, 1).unwrap();
    assert!(d_del.state.is_none() && matches!(d_del.small, Small::Delete(..)));
    for d in [d_ins, d_del] {
        let back: Rga = decode(&encode(&d)).unwrap();
        assert_eq!(back, d);
        assert_eq!(encode(&back), encode(&d));
        // The same value built by merging into an empty full state.
        let mut full = Rga::from_state(State {
            max_lamport: 0,
            ..State::default()
        });
        full.merge(d.clone());
        assert_eq!(full, d);
        // Merging a delta into another delta.
        let mut both = d.clone();
        both.merge(Rga::new());
        assert_eq!(both, d);
    }
    // A delete spanning runs of several nodes is a full state.
    ins(&mut t, B, 2, "xy");
    let d = t.delete(A, 0, 5).unwrap();
    assert_eq!(d.stats().pending_deletes, 5);
    assert!(d.state.is_some());
}

#[test]
fn pasted_text_is_stored_in_bounded_pieces() {
    let mut t = Rga::new();
    let big: String = "abcdéfgh€".repeat(2000);
    ins(&mut t, A, 0, &big);
    ins(&mut t, B, 9000, &big);
    t.delete(A, 100, 7000).unwrap();
    let mut expect: Vec<char> = big.chars().collect();
    expect.splice(9000..9000, big.chars());
    expect.drain(100..7100);
    assert_eq!(t.to_string(), expect.iter().collect::<String>());
    let tree = t.as_state().tree().expect("text").clone();
    assert!(
        tree.leaves
            .iter()
            .all(|l| l.text.len() <= 2 * tree::LEAF_TEXT_MAX)
    );
    // The encoding joins the pieces back into maximal runs.
    assert!(canonical::runs(&t.as_state()).count() <= 5);
    check(&t);
}
