//! [`Member`]: the bytes of one set member, inline when short, shared when long.
//!
//! A member is held by the set's hash map, by the dot index (once built) and by every delta that
//! adds it. Behind a pointer, each hash lookup of a present member costs a cache miss to compare
//! its bytes, and each delta an atomic count on that same cold line; in a large set that was a
//! fifth of `SADD`'s time. Most members are short (ids, names, numbers), so up to
//! [`INLINE_MAX`] bytes are kept in the 24-byte value itself, which sits in the hash table's
//! slot; longer ones are shared through an `Arc`, so copies stay cheap whatever the size.
//!
//! Hand-written because the crates that do this (`smol_str`, `compact_str`) hold UTF-8 text,
//! and members are arbitrary bytes. Equality, ordering and hashing are those of the bytes, so a
//! `&[u8]` finds a `Member` in a map.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Members of up to this many bytes are stored inline.
pub(super) const INLINE_MAX: usize = 22;

/// One member's bytes.
#[derive(Clone)]
pub(super) enum Member {
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    Shared(Arc<[u8]>),
}

impl Member {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Member::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Member::Shared(shared) => shared,
        }
    }

    /// Inline if short enough; `None` if not.
    fn inline(member: &[u8]) -> Option<Member> {
        let len = u8::try_from(member.len())
            .ok()
            .filter(|&l| usize::from(l) <= INLINE_MAX)?;
        let mut bytes = [0; INLINE_MAX];
        bytes[..member.len()].copy_from_slice(member);
        Some(Member::Inline { len, bytes })
    }
}

impl From<&[u8]> for Member {
    fn from(member: &[u8]) -> Self {
        Member::inline(member).unwrap_or_else(|| Member::Shared(Arc::from(member)))
    }
}

impl From<Vec<u8>> for Member {
    fn from(member: Vec<u8>) -> Self {
        Member::inline(&member).unwrap_or_else(|| Member::Shared(Arc::from(member)))
    }
}

impl Deref for Member {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Member {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Member {}

impl PartialOrd for Member {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Member {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Member {
    /// As the bytes hash, which `Borrow<[u8]>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_bytes(), f)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn short_members_are_inline_and_long_ones_shared() {
        assert_eq!(size_of::<Member>(), 24);
        for len in [0, 1, INLINE_MAX, INLINE_MAX + 1, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (a, b) = (Member::from(bytes.as_slice()), Member::from(bytes.clone()));
            assert_eq!(&*a, bytes.as_slice(), "len {len}");
            assert_eq!(a, b);
            assert_eq!(matches!(a, Member::Inline { .. }), len <= INLINE_MAX);
            assert_eq!(matches!(b, Member::Inline { .. }), len <= INLINE_MAX);
        }
    }

    #[test]
    fn order_equality_and_hash_are_those_of_the_bytes() {
        let s = std::hash::RandomState::new();
        let long = vec![b'z'; 40];
        let cases: [&[u8]; 5] = [b"", b"a", b"ab", b"b", &long];
        for x in cases {
            let m = Member::from(x);
            assert_eq!(s.hash_one(&m), s.hash_one(x));
            for y in cases {
                assert_eq!(m.cmp(&Member::from(y)), x.cmp(y));
                assert_eq!(m == Member::from(y), x == y);
            }
        }
    }
}
