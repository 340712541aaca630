//! An ordered map that is a sorted `Vec` while small and a `BTreeMap` once large.
//!
//! Every local edit returns a delta holding one or two entries (an insert run, a deleted id
//! range), and most replicas hold no pending operation at all. A `BTreeMap` allocates a whole
//! node (hundreds of bytes) for its first entry and walks it on drop; the small form keeps its
//! first entry inline, so creating and dropping a delta allocates nothing for it. Large maps
//! (a replica that received many deltas out of order) switch to the `BTreeMap` so every
//! operation stays O(log n).

use std::collections::BTreeMap;

use smallvec::SmallVec;

/// Entries above which the map switches to a `BTreeMap`.
const SMALL_MAX: usize = 32;

/// See the module docs.
#[derive(Clone, Debug)]
pub(crate) enum SortedMap<K, V> {
    Small(SmallVec<[(K, V); 1]>),
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap::Small(SmallVec::new())
    }
}

/// Either of two iterators with the same item.
pub(crate) enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

impl<K: Ord + Copy, V> SortedMap<K, V> {
    /// Builds from entries sorted by key, without duplicates.
    pub(crate) fn from_sorted(entries: Vec<(K, V)>) -> Self {
        if entries.len() <= SMALL_MAX {
            SortedMap::Small(entries.into_iter().collect())
        } else {
            SortedMap::Large(entries.into_iter().collect())
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            SortedMap::Small(v) => v.is_empty(),
            SortedMap::Large(m) => m.is_empty(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            SortedMap::Small(v) => v.len(),
            SortedMap::Large(m) => m.len(),
        }
    }

    pub(crate) fn is_large(&self) -> bool {
        matches!(self, SortedMap::Large(_))
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        match self {
            SortedMap::Small(v) => v.binary_search_by(|(x, _)| x.cmp(k)).ok().map(|i| &v[i].1),
            SortedMap::Large(m) => m.get(k),
        }
    }

    /// Inserts or replaces.
    pub(crate) fn insert(&mut self, k: K, val: V) {
        match self {
            SortedMap::Small(v) => match v.binary_search_by(|(x, _)| x.cmp(&k)) {
                Ok(i) => v[i].1 = val,
                Err(i) => {
                    if v.len() < SMALL_MAX {
                        v.insert(i, (k, val));
                    } else {
                        let mut m: BTreeMap<K, V> = std::mem::take(v).into_iter().collect();
                        m.insert(k, val);
                        *self = SortedMap::Large(m);
                    }
                }
            },
            SortedMap::Large(m) => {
                m.insert(k, val);
            }
        }
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        match self {
            SortedMap::Small(v) => v
                .binary_search_by(|(x, _)| x.cmp(k))
                .ok()
                .map(|i| v.remove(i).1),
            SortedMap::Large(m) => {
                let out = m.remove(k);
                if m.is_empty() {
                    *self = SortedMap::default();
                }
                out
            }
        }
    }

    /// The entry with the greatest key `<= k`.
    pub(crate) fn pred(&self, k: &K) -> Option<(&K, &V)> {
        match self {
            SortedMap::Small(v) => {
                let i = v.partition_point(|(x, _)| x <= k);
                i.checked_sub(1).map(|i| (&v[i].0, &v[i].1))
            }
            SortedMap::Large(m) => m.range(..=*k).next_back(),
        }
    }

    /// The entry with the least key `>= k`.
    pub(crate) fn succ(&self, k: &K) -> Option<(&K, &V)> {
        match self {
            SortedMap::Small(v) => {
                let i = v.partition_point(|(x, _)| x < k);
                v.get(i).map(|(x, y)| (x, y))
            }
            SortedMap::Large(m) => m.range(*k..).next(),
        }
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        match self {
            SortedMap::Small(v) => Either::A(v.iter().map(|(k, x)| (k, x))),
            SortedMap::Large(m) => Either::B(m.iter()),
        }
    }

    /// Entries with `lo <= key < hi`, in key order.
    pub(crate) fn range(&self, lo: K, hi: K) -> impl Iterator<Item = (&K, &V)> + '_ {
        match self {
            SortedMap::Small(v) => {
                let a = v.partition_point(|(x, _)| *x < lo);
                let b = v.partition_point(|(x, _)| *x < hi).max(a);
                Either::A(v[a..b].iter().map(|(k, x)| (k, x)))
            }
            SortedMap::Large(m) => Either::B(if lo < hi {
                Either::A(m.range(lo..hi))
            } else {
                Either::B(std::iter::empty())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_btreemap_across_the_switch() {
        let mut ours: SortedMap<u32, u32> = SortedMap::default();
        let mut model: BTreeMap<u32, u32> = BTreeMap::new();
        let mut x = 12345u32;
        for step in 0..2000 {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            let k = (x >> 16) % 100;
            if step % 3 == 2 {
                assert_eq!(ours.remove(&k), model.remove(&k));
            } else {
                ours.insert(k, step);
                model.insert(k, step);
            }
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.get(&k), model.get(&k));
            assert_eq!(ours.pred(&k), model.range(..=k).next_back());
            assert_eq!(ours.succ(&k), model.range(k..).next());
            let hi = k + 7;
            assert!(ours.range(k, hi).eq(model.range(k..hi)));
            assert!(ours.range(hi, k).next().is_none());
        }
        assert!(ours.iter().eq(model.iter()));
    }
}
