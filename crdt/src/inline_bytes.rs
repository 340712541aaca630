//! [`InlineBytes`]: a byte string held inline when short, behind a pointer when long.
//!
//! Hash tables of byte strings compare the bytes of each candidate slot; behind a pointer,
//! that is a second cache miss per lookup (and an allocation per string). Most keys and set
//! members are short (`user:1042`, ids, numbers), so up to [`INLINE_MAX`] bytes are kept in the
//! 24-byte value itself, the size a fat pointer plus its tag takes anyway; a longer string is
//! held by `H`: a `Box<[u8]>` where each string has one owner (the keyspace's keys), an
//! `Arc<[u8]>` where copies are shared (set members, held by the set, its dot index and its
//! deltas). Equality, ordering and hashing are those of the bytes, so a table keyed by
//! `InlineBytes` is looked up with a plain `&[u8]`.
//!
//! Hand-written because the crates that do this (`smol_str`, `compact_str`) hold UTF-8 text,
//! and keys and members are arbitrary bytes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Strings of up to this many bytes are stored inline.
pub const INLINE_MAX: usize = 22;

/// A byte string: inline when at most [`INLINE_MAX`] bytes, in `H` otherwise.
#[derive(Clone)]
pub enum InlineBytes<H> {
    /// `bytes[..len]`; `len <= INLINE_MAX`.
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    /// A string longer than [`INLINE_MAX`].
    Heap(H),
}

impl<H: Deref<Target = [u8]>> InlineBytes<H> {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            InlineBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            InlineBytes::Heap(heap) => heap,
        }
    }

    /// Inline if short enough; `None` if not.
    fn inline(bytes: &[u8]) -> Option<Self> {
        let len = u8::try_from(bytes.len())
            .ok()
            .filter(|&l| usize::from(l) <= INLINE_MAX)?;
        let mut inline = [0; INLINE_MAX];
        inline[..bytes.len()].copy_from_slice(bytes);
        Some(InlineBytes::Inline { len, bytes: inline })
    }
}

impl<H: Deref<Target = [u8]> + for<'a> From<&'a [u8]>> From<&[u8]> for InlineBytes<H> {
    fn from(bytes: &[u8]) -> Self {
        Self::inline(bytes).unwrap_or_else(|| InlineBytes::Heap(H::from(bytes)))
    }
}

impl<H: Deref<Target = [u8]> + From<Vec<u8>>> From<Vec<u8>> for InlineBytes<H> {
    /// A long string keeps the vector's allocation where `H` can (`Box<[u8]>`).
    fn from(bytes: Vec<u8>) -> Self {
        Self::inline(&bytes).unwrap_or_else(|| InlineBytes::Heap(H::from(bytes)))
    }
}

impl<H: Deref<Target = [u8]>> Deref for InlineBytes<H> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<H: Deref<Target = [u8]>> Borrow<[u8]> for InlineBytes<H> {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<H: Deref<Target = [u8]>> PartialEq for InlineBytes<H> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<H: Deref<Target = [u8]>> Eq for InlineBytes<H> {}

impl<H: Deref<Target = [u8]>> PartialOrd for InlineBytes<H> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<H: Deref<Target = [u8]>> Ord for InlineBytes<H> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl<H: Deref<Target = [u8]>> Hash for InlineBytes<H> {
    /// Hashes like the `[u8]` it holds, as `Borrow<[u8]>` requires.
    fn hash<S: Hasher>(&self, state: &mut S) {
        self.as_bytes().hash(state);
    }
}

impl<H: Deref<Target = [u8]>> fmt::Debug for InlineBytes<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;
    use std::sync::Arc;

    use super::*;

    type Shared = InlineBytes<Arc<[u8]>>;

    #[test]
    fn short_strings_are_inline_and_long_ones_on_the_heap() {
        assert_eq!(size_of::<Shared>(), 24);
        assert_eq!(size_of::<InlineBytes<Box<[u8]>>>(), 24);
        for len in [0, 1, INLINE_MAX, INLINE_MAX + 1, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (a, b) = (Shared::from(bytes.as_slice()), Shared::from(bytes.clone()));
            assert_eq!(&*a, bytes.as_slice(), "len {len}");
            assert_eq!(a, b);
            assert_eq!(matches!(a, InlineBytes::Inline { .. }), len <= INLINE_MAX);
            assert_eq!(matches!(b, InlineBytes::Inline { .. }), len <= INLINE_MAX);
        }
    }

    #[test]
    fn order_equality_and_hash_are_those_of_the_bytes() {
        let s = std::hash::RandomState::new();
        let long = vec![b'z'; 40];
        let cases: [&[u8]; 5] = [b"", b"a", b"ab", b"b", &long];
        for x in cases {
            let m = Shared::from(x);
            assert_eq!(s.hash_one(&m), s.hash_one(x));
            for y in cases {
                assert_eq!(m.cmp(&Shared::from(y)), x.cmp(y));
                assert_eq!(m == Shared::from(y), x == y);
            }
        }
    }
}
