//! [`Key`]: a key as the keyspace's hash tables hold it.
//!
//! Most keys are short (`user:1042`, `session:9f3c…`), and a `Box<[u8]>` would give each its
//! own heap allocation: 16 bytes of allocator size class plus a pointer chase on every lookup,
//! since the table compares the key bytes of each candidate slot. A `Key` of up to
//! [`INLINE_BYTES`] bytes lives inside the slot itself, in the 24 bytes a boxed key plus its
//! tag would take anyway; a longer key is boxed. Equality, ordering and hashing are those of
//! the bytes, so tables keyed by `Key` are looked up with a plain `&[u8]`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest key held inline.
pub const INLINE_BYTES: usize = 22;

/// A key's bytes: inline when short, boxed otherwise.
#[derive(Clone)]
pub enum Key {
    /// `bytes[..len]`; `len <= INLINE_BYTES`.
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    /// A key longer than [`INLINE_BYTES`].
    Heap(Box<[u8]>),
}

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE_BYTES {
            let mut bytes = [0; INLINE_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                // At most INLINE_BYTES, checked above.
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(key.into())
        }
    }
}

impl From<Vec<u8>> for Key {
    fn from(key: Vec<u8>) -> Self {
        if key.len() <= INLINE_BYTES {
            Key::from(key.as_slice())
        } else {
            Key::Heap(key.into_boxed_slice())
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    /// Hashes like the `[u8]` it holds, as `Borrow` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn short_keys_are_inline_and_a_key_is_its_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let cases: [&[u8]; 4] = [b"", b"k", &[7; INLINE_BYTES], &[9; INLINE_BYTES + 1]];
        let mut map = HashMap::new();
        for (i, bytes) in cases.iter().enumerate() {
            let key = Key::from(*bytes);
            assert_eq!(
                matches!(key, Key::Inline { .. }),
                bytes.len() <= INLINE_BYTES
            );
            assert_eq!(key.as_bytes(), *bytes);
            assert_eq!(Key::from(bytes.to_vec()), key);
            map.insert(key, i);
        }
        for (i, bytes) in cases.iter().enumerate() {
            assert_eq!(map.get(*bytes), Some(&i), "looked up by &[u8]");
        }
        assert_ne!(Key::from(&b"ab"[..]), Key::from(&b"abc"[..]));
    }
}
