//! [`Member`]: the bytes of one set member, inline when short, shared when long.
//!
//! A member is held by the set's hash map, by the dot index (once built) and by every delta that
//! adds it. Behind a pointer, each hash lookup of a present member costs a cache miss to compare
//! its bytes, and each delta an atomic count on that same cold line; in a large set that was a
//! fifth of `SADD`'s time. So a short member sits in the hash table's slot
//! ([`InlineBytes`]), and a long one is shared through an `Arc`, so copies stay cheap whatever
//! the size.

use std::sync::Arc;

use crate::inline_bytes::InlineBytes;

/// One member's bytes.
pub(super) type Member = InlineBytes<Arc<[u8]>>;
