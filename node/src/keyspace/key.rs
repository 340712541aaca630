//! [`Key`]: a key as the keyspace's hash tables hold it.
//!
//! Most keys are short (`user:1042`, `session:9f3c…`), and a `Box<[u8]>` would give each its
//! own heap allocation and a pointer chase on every lookup, since the table compares the key
//! bytes of each candidate slot. So a key is a [`crdt::InlineBytes`], the type set members
//! use too: short keys live in the slot itself, longer ones are boxed, and a table keyed by
//! `Key` is looked up with a plain `&[u8]`.

/// A key's bytes: inline when short, boxed otherwise (each key has one owner, its entry).
pub type Key = crdt::InlineBytes<Box<[u8]>>;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crdt::inline_bytes::INLINE_MAX;

    #[test]
    fn short_keys_are_inline_and_a_key_is_its_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let cases: [&[u8]; 4] = [b"", b"k", &[7; INLINE_MAX], &[9; INLINE_MAX + 1]];
        let mut map = HashMap::new();
        for (i, bytes) in cases.iter().enumerate() {
            let key = Key::from(*bytes);
            assert_eq!(matches!(key, Key::Inline { .. }), bytes.len() <= INLINE_MAX);
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
