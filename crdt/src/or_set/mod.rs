//! Add-wins observed-remove set without tombstones (the optimised OR-set, "ORSWOT").
//!
//! Every add of an element creates a fresh dot and records it against the element; a remove
//! deletes the element's dots it has *observed*. The set carries a causal context of every dot it
//! has seen, so on merge a dot that one side has in its context but not in its payload is known to
//! have been removed, while a dot the other side has never seen is a concurrent add and survives.
//! That gives add-wins semantics (an add concurrent with a remove of the same element wins) and
//! needs no tombstone per removed element: a removed element leaves only dots in the context,
//! which compact into one counter per node.
//!
//! Merging must stay proportional to what the other side can affect, not to the size of this set:
//! a small delta merged into a set of a million members touches only the members whose dots the
//! delta's context covers, found through an index from dot to member ([`dot_index`], kept
//! lazily: only merges into large sets build it).

mod dot_index;
mod member;
mod members;

use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::causal::{CausalContext, Dot, fresh_floor};
use crate::hlc::Timestamp;
use crate::merge::Merge;
use crate::node_id::NodeId;
use dot_index::{DotIndex, SCAN_MEMBERS_MAX};
use member::Member;
use members::Members;

/// The live dots of one member: usually one, more after concurrent adds.
type DotSet = SmallVec<[Dot; 1]>;

/// An add-wins observed-remove set of byte strings.
#[derive(Clone, Debug, Default)]
pub struct OrSet {
    entries: Members,
    /// The member of each live dot, for merges; derived from `entries`, not encoded.
    by_dot: DotIndex,
    ctx: CausalContext,
    /// Total bytes of the members; derived from `entries`, not encoded (size limits in O(1)).
    member_bytes: u64,
}

impl OrSet {
    /// The empty set.
    pub fn new() -> Self {
        OrSet::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total length in bytes of the members.
    pub fn member_bytes(&self) -> u64 {
        self.member_bytes
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.entries.contains(member)
    }

    /// Members in byte order (sorted by this call: O(n log n)).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.entries.keys().map(|k| &**k)
    }

    /// The dots currently supporting `member` (empty if absent).
    pub fn dots_of(&self, member: &[u8]) -> &[Dot] {
        self.entries.get(member).map_or(&[], |d| d.as_slice())
    }

    /// Every dot this set has seen.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Calls `fetch` with the address and size of the memory that looking `member` up reads
    /// first, for a caller that prefetches it; addresses only, never read through here.
    pub fn member_hints(&self, member: &[u8], fetch: impl FnMut(*const u8, usize)) {
        self.entries.slot_hints(member, fetch);
    }

    /// The members and their dots (for the hand-written encodings in `value::wire`).
    pub(crate) fn members(&self) -> &Members {
        &self.entries
    }

    /// Adds `members` as `node`; returns the delta and how many were not members before
    /// (duplicates among `members` count once, as in Redis `SADD`).
    ///
    /// A node with no dot here yet counts from 1; [`add_at`](Self::add_at) is what a key's
    /// writer uses.
    pub fn add<'a>(
        &mut self,
        node: NodeId,
        members: impl IntoIterator<Item = &'a [u8]>,
    ) -> (OrSet, u64) {
        self.add_from(node, 1, members)
    }

    /// Adds `members` as the node of `ts`, starting at [`fresh_floor`] if that node holds no
    /// dot here (see [`crate::causal`] on fresh starts).
    pub fn add_at<'a>(
        &mut self,
        ts: Timestamp,
        members: impl IntoIterator<Item = &'a [u8]>,
    ) -> (OrSet, u64) {
        self.add_from(ts.node, fresh_floor(ts), members)
    }

    fn add_from<'a>(
        &mut self,
        node: NodeId,
        floor: u64,
        members: impl IntoIterator<Item = &'a [u8]>,
    ) -> (OrSet, u64) {
        let mut delta = OrSet::new();
        let mut added = 0;
        for member in members {
            let (dot, fresh) = self.ctx.advance(node, floor);
            if fresh {
                delta.ctx.insert_with_prefix(dot);
            } else {
                delta.ctx.insert(dot);
            }
            // One search of `entries` per member: a present member's dots are replaced in
            // place, and its shared key is found with them.
            let key: Member = match self.entries.get_key_mut(member) {
                Some((key, dots)) => {
                    let old = std::mem::replace(dots, smallvec::smallvec![dot]);
                    self.by_dot.retired(old.len());
                    for d in old {
                        // The new dot replaces the observed ones: shipping them in the delta's
                        // context (but not its payload) makes every replica drop them.
                        delta.ctx.insert(d);
                    }
                    key.clone()
                }
                None => {
                    added += 1;
                    self.member_bytes += member.len() as u64;
                    let key = Member::from(member);
                    self.entries.insert(key.clone(), smallvec::smallvec![dot]);
                    key
                }
            };
            self.by_dot.added(dot, &key);
            delta.put(key, smallvec::smallvec![dot]);
        }
        (delta, added)
    }

    /// Removes `members` (those present); returns the delta and how many were removed.
    pub fn remove<'a>(&mut self, members: impl IntoIterator<Item = &'a [u8]>) -> (OrSet, u64) {
        let mut delta = OrSet::new();
        let mut removed = 0;
        for member in members {
            if let Some(dots) = self.entries.remove(member) {
                removed += 1;
                self.member_bytes -= member.len() as u64;
                self.by_dot.retired(dots.len());
                for d in dots {
                    delta.ctx.insert(d);
                }
            }
        }
        (delta, removed)
    }

    /// Removes every observed member (key-level `DEL`); returns the delta.
    pub fn clear(&mut self) -> OrSet {
        let ctx = CausalContext::from_sorted_dots(self.entries.dots_sorted());
        self.entries.clear();
        self.by_dot.forget();
        self.member_bytes = 0;
        OrSet {
            ctx,
            ..OrSet::default()
        }
    }

    fn put(&mut self, member: Member, dots: DotSet) {
        for &d in &dots {
            self.by_dot.added(d, &member);
        }
        let len = member.len() as u64;
        if self.entries.insert(member, dots).is_none() {
            self.member_bytes += len;
        }
    }

    /// Removes `dot` from `member`, and the member if it was its last dot. A dot the member
    /// no longer holds (a stale entry of the dot index) changes nothing.
    fn drop_dot(&mut self, member: &[u8], dot: Dot) {
        if let Some(dots) = self.entries.get_mut(member) {
            let before = dots.len();
            dots.retain(|d| *d != dot);
            self.by_dot.retired(before - dots.len());
            if dots.is_empty() {
                self.entries.remove(member);
                self.member_bytes -= member.len() as u64;
            }
        }
    }

    /// Our live dots (with their members) that `other` has seen but no longer holds: removed
    /// there. Only dots within `other`'s context can qualify, so a large set walks those ranges
    /// of its dot index instead of every member; a small one walks its members.
    fn removed_by(&mut self, other: &OrSet) -> Vec<(Member, Dot)> {
        let gone = |member: &[u8], dot: &Dot| !other.dots_of(member).contains(dot);
        let mut removed = Vec::new();
        if self.entries.len() <= SCAN_MEMBERS_MAX {
            for (member, dots) in self.entries.iter_unordered() {
                for dot in dots {
                    if other.ctx.contains(*dot) && gone(member, dot) {
                        removed.push((member.clone(), *dot));
                    }
                }
            }
            return removed;
        }
        // The index may hold stale dots: `drop_dot` finds them no longer held and ignores them.
        let index = self.by_dot.get(&self.entries);
        for (node, upto) in other.ctx.vv().iter() {
            for (dot, member) in index.range(Dot::new(node, 1)..=Dot::new(node, upto)) {
                if gone(member, dot) {
                    removed.push((member.clone(), *dot));
                }
            }
        }
        for dot in other.ctx.cloud() {
            if let Some(member) = index.get(dot)
                && gone(member, dot)
            {
                removed.push((member.clone(), *dot));
            }
        }
        removed
    }
}

impl Merge for OrSet {
    fn merge(&mut self, other: OrSet) {
        // 1. Our live dots that `other` has seen but no longer holds were removed there.
        for (member, dot) in self.removed_by(&other) {
            self.drop_dot(&member, dot);
        }
        // 2. Their live dots that we have never seen are adds to keep; the ones we have seen are
        //    either already live here (same member, since a dot names one add) or were removed here.
        for (member, dots) in other.entries.into_unordered() {
            let fresh: DotSet = dots
                .into_iter()
                .filter(|&d| !self.ctx.contains(d))
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let key = match self.entries.key_of(&member) {
                Some(k) => k.clone(),
                None => {
                    self.member_bytes += member.len() as u64;
                    member
                }
            };
            for &d in &fresh {
                self.by_dot.added(d, &key);
            }
            let slot = self.entries.dots_or_insert(key);
            slot.extend(fresh);
            slot.sort_unstable();
        }
        self.ctx.merge(&other.ctx);
    }
}

impl PartialEq for OrSet {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.ctx == other.ctx
    }
}

impl Eq for OrSet {}

impl Serialize for OrSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Entries<'a>(&'a Members);
        impl Serialize for Entries<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                fn entry<'a>(
                    (m, d): (&'a Member, &'a DotSet),
                ) -> (&'a serde_bytes::Bytes, &'a DotSet) {
                    (serde_bytes::Bytes::new(m), d)
                }
                serializer.collect_seq(self.0.canonical().map(entry))
            }
        }
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&Entries(&self.entries))?;
        t.serialize_element(&self.ctx)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for OrSet {
    /// Accepts only consistent state: members unique, each with a sorted, non-empty set of
    /// dots that are all in the context, and no dot supporting two members. Members may come in
    /// any order: the canonical encoding sorts them, the state storage keeps lists them as its
    /// table holds them ([`crate::value::encode_state`]); both are the same set.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let (raw, ctx): (Vec<(serde_bytes::ByteBuf, DotSet)>, CausalContext) =
            Deserialize::deserialize(deserializer)?;
        let mut set = OrSet {
            ctx,
            ..OrSet::default()
        };
        for (member, dots) in raw {
            let ordered = !dots.is_empty() && dots.windows(2).all(|w| w[0] < w[1]);
            if !ordered || dots.iter().any(|&d| !set.ctx.contains(d)) {
                return Err(D::Error::custom(
                    "set member dots must be sorted, non-empty and seen",
                ));
            }
            let member = Member::from(member.into_vec());
            set.member_bytes += member.len() as u64;
            if set.entries.insert(member, dots).is_some() {
                return Err(D::Error::custom("set members must be unique"));
            }
        }
        if set.entries.dots_sorted().windows(2).any(|w| w[0] == w[1]) {
            return Err(D::Error::custom("one dot supports two set members"));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    fn members(s: &OrSet) -> Vec<&[u8]> {
        s.iter().collect()
    }

    fn summed(s: &OrSet) -> u64 {
        s.iter().map(|m| m.len() as u64).sum()
    }

    /// Members decode in any order (storage's state lists them in the order memory holds them), but a member
    /// listed twice is refused.
    #[test]
    fn decoding_takes_members_in_any_order_but_refuses_duplicates() {
        use crate::encoding::{decode, encode};
        let mut s = OrSet::new();
        s.add(A, [b"a".as_slice(), b"b", b"c"]);
        let listed = |order: &[&[u8]]| {
            let entries: Vec<(serde_bytes::ByteBuf, DotSet)> = order
                .iter()
                .map(|m| (serde_bytes::ByteBuf::from(m.to_vec()), s.dots_of(m).into()))
                .collect();
            encode(&(entries, s.context()))
        };
        assert_eq!(decode::<OrSet>(&listed(&[b"c", b"a", b"b"])), Ok(s.clone()));
        assert_eq!(decode::<OrSet>(&listed(&[b"a", b"b", b"c"])), Ok(s.clone()));
        match decode::<OrSet>(&listed(&[b"a", b"b", b"a"])) {
            Err(crate::DecodeError::Malformed(m)) => assert!(m.contains("unique"), "{m}"),
            other => panic!("a duplicate member decoded: {other:?}"),
        }
    }

    /// The derived byte count follows every way members come and go.
    #[test]
    fn member_bytes_follow_adds_removes_merges_and_decoding() {
        let mut a = OrSet::new();
        let mut b = OrSet::new();
        let mut deltas = Vec::new();
        for i in 0..200u32 {
            let m = format!("member-{}", i % 37).into_bytes();
            let (d, _) = if i % 3 == 0 {
                b.add(B, [m.as_slice()])
            } else {
                a.add(A, [m.as_slice()])
            };
            deltas.push(d);
            if i % 5 == 0 {
                let (d, _) = a.remove([m.as_slice()]);
                deltas.push(d);
            }
            assert_eq!(a.member_bytes(), summed(&a));
            assert_eq!(b.member_bytes(), summed(&b));
        }
        for d in deltas {
            a.merge(d.clone());
            b.merge(d);
            assert_eq!(a.member_bytes(), summed(&a));
            assert_eq!(b.member_bytes(), summed(&b));
        }
        assert_eq!(a, b);
        let decoded: OrSet =
            crate::encoding::decode(&crate::encoding::encode(&a)).expect("round trip");
        assert_eq!(decoded.member_bytes(), summed(&a));
        let delta = a.clear();
        assert_eq!(a.member_bytes(), 0);
        b.merge(delta);
        assert_eq!(b.member_bytes(), summed(&b));
    }

    #[test]
    fn add_wins_over_concurrent_remove() {
        let mut a = OrSet::new();
        let (d_add, _) = a.add(A, [&b"x"[..]]);
        let mut b = OrSet::new();
        b.merge(d_add);
        let (d_rem, n) = b.remove([&b"x"[..]]);
        assert_eq!(n, 1);
        let (d_readd, n) = a.add(A, [&b"x"[..]]);
        assert_eq!(n, 0, "x was already a member on a");
        a.merge(d_rem.clone());
        b.merge(d_readd);
        assert_eq!(a, b);
        assert_eq!(members(&a), vec![b"x"]);
    }

    #[test]
    fn observed_remove_removes_and_leaves_no_tombstone() {
        let mut a = OrSet::new();
        let (d1, added) = a.add(A, [&b"x"[..], b"y", b"x"]);
        assert_eq!(added, 2);
        let mut b = OrSet::new();
        b.merge(d1);
        let (d2, _) = b.remove([&b"x"[..]]);
        a.merge(d2);
        assert_eq!(members(&a), vec![b"y"]);
        assert_eq!(a.entries.len(), 1);
        assert!(
            a.context().cloud().is_empty(),
            "removed dots compact into the vector"
        );
    }

    #[test]
    fn clear_removes_only_what_was_observed() {
        let mut a = OrSet::new();
        let mut b = OrSet::new();
        let (d1, _) = a.add(A, [&b"x"[..]]);
        b.merge(d1);
        let (d_b, _) = b.add(B, [&b"y"[..]]);
        let d_clear = a.clear();
        b.merge(d_clear);
        a.merge(d_b);
        assert_eq!(a, b);
        assert_eq!(members(&a), vec![b"y"]);
    }

    #[test]
    fn delta_merge_into_large_set_only_touches_affected_members() {
        let mut big = OrSet::new();
        let names: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let (_, _) = big.add(A, names.iter().map(|n| n.as_slice()));
        let mut replica = big.clone();
        let (delta, _) = replica.remove([names[7].as_slice()]);
        big.merge(delta);
        assert_eq!(big.len(), 1999);
        assert!(!big.contains(&names[7]));
        assert_eq!(big, replica);
    }

    /// Local writes and the deltas they make never build the dot index; a merge into a large
    /// set builds it once, and re-adds and removes then leave stale entries that stay bounded
    /// and are never mistaken for live dots.
    #[test]
    fn dot_index_is_lazy_bounded_and_checked() {
        let names: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut a = OrSet::new();
        let (delta, _) = a.add(A, names.iter().map(|n| n.as_slice()));
        assert!(!a.by_dot.is_built() && !delta.by_dot.is_built());
        let mut b = OrSet::new();
        b.merge(delta);
        let (d_b, _) = b.add(B, [&b"from-b"[..]]);
        a.merge(d_b);
        assert!(
            a.by_dot.is_built(),
            "a merge into a large set builds the index"
        );
        // Re-adding members retires their dots: the index keeps them as stale entries, up to
        // about as many as it has live ones.
        for round in 0..20 {
            for n in &names {
                let (d, added) = a.add(A, [n.as_slice()]);
                assert_eq!(added, 0);
                b.merge(d);
            }
            assert!(
                a.by_dot.held() <= 2 * (names.len() + 1) + 1024 + 1,
                "round {round}: {} entries for {} live dots",
                a.by_dot.held(),
                names.len() + 1
            );
        }
        // b removes what it has seen of names[3]; stale entries of names[3]'s older dots must
        // not make a drop anything else, and a's own newer add of names[5] survives.
        let (d_rem, removed) = b.remove([names[3].as_slice()]);
        assert_eq!(removed, 1);
        let (d_readd, _) = a.add(A, [names[5].as_slice()]);
        a.merge(d_rem.clone());
        b.merge(d_readd);
        assert!(!a.contains(&names[3]));
        assert!(a.contains(&names[5]) && a.contains(b"from-b"));
        assert_eq!(a.len(), names.len());
        assert_eq!(a, b);
        let decoded: OrSet =
            crate::encoding::decode(&crate::encoding::encode(&a)).expect("round trip");
        assert_eq!(decoded, a);
        assert!(
            !decoded.by_dot.is_built(),
            "decoding does not build the index"
        );
    }

    /// A state where one dot supports two members is refused at decoding.
    #[test]
    fn decoding_refuses_a_dot_shared_by_two_members() {
        let mut a = OrSet::new();
        a.add(A, [&b"x"[..], b"y"]);
        let mut forged = a.clone();
        let dot = forged.dots_of(b"x")[0];
        if let Some(dots) = forged.entries.get_mut(b"y") {
            *dots = smallvec::smallvec![dot];
        }
        let bytes = crate::encoding::encode(&forged);
        assert!(crate::encoding::decode::<OrSet>(&bytes).is_err());
    }
}
