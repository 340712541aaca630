//! One typed CRDT inside a key's [`Value`](super::Value), with the timestamp that ranks it in
//! type conflicts.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Kind;
use super::counter::Counter;
use crate::hlc::Timestamp;
use crate::lww_register::LwwRegister;
use crate::merge::Merge;
use crate::or_set::OrSet;
use crate::rga::Rga;

/// The state of one CRDT type. Large states are boxed so a key holding a register stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// A last-writer-wins register.
    Register(LwwRegister),
    /// A positive-negative counter with observed-remove reset.
    PnCounter(Counter),
    /// A grow-only counter with observed-remove reset (never decremented).
    GCounter(Counter),
    /// An add-wins observed-remove set.
    Set(Box<OrSet>),
    /// RGA text.
    Text(Box<Rga>),
}

impl Data {
    /// See [`Value::heap_hint`](super::Value::heap_hint).
    pub(crate) fn heap_hint(&self) -> Option<*const u8> {
        match self {
            Data::Register(r) => r.heap_hint(),
            Data::PnCounter(c) | Data::GCounter(c) => c.heap_hint(),
            Data::Set(s) => Some(std::ptr::from_ref::<OrSet>(s).cast()),
            Data::Text(t) => Some(std::ptr::from_ref::<Rga>(t).cast()),
        }
    }

    /// The empty state of `kind`.
    pub fn empty(kind: Kind) -> Data {
        match kind {
            Kind::Register => Data::Register(LwwRegister::new()),
            Kind::PnCounter => Data::PnCounter(Counter::default()),
            Kind::GCounter => Data::GCounter(Counter::default()),
            Kind::Set => Data::Set(Box::default()),
            Kind::Text => Data::Text(Box::default()),
        }
    }

    /// The kind of this state.
    pub fn kind(&self) -> Kind {
        match self {
            Data::Register(_) => Kind::Register,
            Data::PnCounter(_) => Kind::PnCounter,
            Data::GCounter(_) => Kind::GCounter,
            Data::Set(_) => Kind::Set,
            Data::Text(_) => Kind::Text,
        }
    }

    /// Whether the state holds nothing visible (the key does not exist as this kind).
    pub fn is_empty(&self) -> bool {
        match self {
            Data::Register(r) => r.is_empty(),
            Data::PnCounter(c) => c.is_empty(),
            Data::GCounter(c) => c.is_empty(),
            Data::Set(s) => s.is_empty(),
            Data::Text(t) => t.is_empty(),
        }
    }

    /// Observed-remove of everything visible; returns the delta.
    pub(crate) fn clear(&mut self) -> Data {
        match self {
            Data::Register(r) => Data::Register(r.clear()),
            Data::PnCounter(c) => Data::PnCounter(c.clear()),
            Data::GCounter(c) => Data::GCounter(c.clear()),
            Data::Set(s) => Data::Set(Box::new(s.clear())),
            Data::Text(t) => Data::Text(Box::new(t.delete_all())),
        }
    }

    /// Joins a state of the same kind. Parts are matched by kind before this is called.
    pub(crate) fn merge_same_kind(&mut self, other: Data) {
        match (self, other) {
            (Data::Register(a), Data::Register(b)) => a.merge(b),
            (Data::PnCounter(a), Data::PnCounter(b)) => a.merge(b),
            (Data::GCounter(a), Data::GCounter(b)) => a.merge(b),
            (Data::Set(a), Data::Set(b)) => a.merge(*b),
            (Data::Text(a), Data::Text(b)) => a.merge(*b),
            (a, b) => unreachable!(
                "parts are merged by kind: {:?} with {:?}",
                a.kind(),
                b.kind()
            ),
        }
    }
}

/// One CRDT of a key, plus `created`: the timestamp of the latest write that made it the key's
/// type (a write to a key that did not exist, or an overwriting `SET`). Max-merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub(crate) created: Timestamp,
    pub(crate) data: Data,
}

impl Part {
    /// The kind of this part.
    pub fn kind(&self) -> Kind {
        self.data.kind()
    }

    /// When this kind last became the key's type.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// The CRDT state.
    pub fn data(&self) -> &Data {
        &self.data
    }

    pub(crate) fn merge(&mut self, other: Part) {
        self.created = self.created.max(other.created);
        self.data.merge_same_kind(other.data);
    }
}

impl Serialize for Part {
    /// `[kind tag, created, state]`: the tag first so a reader knows which state follows.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(3)?;
        t.serialize_element(&self.kind().tag())?;
        t.serialize_element(&self.created)?;
        match &self.data {
            Data::Register(r) => t.serialize_element(r)?,
            Data::PnCounter(c) => t.serialize_element(c)?,
            Data::GCounter(c) => t.serialize_element(c)?,
            Data::Set(s) => t.serialize_element(s)?,
            Data::Text(r) => t.serialize_element(r)?,
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = Part;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [kind, created, state] triple")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Part, A::Error> {
                let missing = || de::Error::custom("truncated value part");
                let tag: u8 = seq.next_element()?.ok_or_else(missing)?;
                let kind = Kind::from_tag(tag)
                    .ok_or_else(|| de::Error::custom(format!("unknown value kind tag {tag}")))?;
                let created: Timestamp = seq.next_element()?.ok_or_else(missing)?;
                let data = match kind {
                    Kind::Register => Data::Register(seq.next_element()?.ok_or_else(missing)?),
                    Kind::PnCounter => Data::PnCounter(seq.next_element()?.ok_or_else(missing)?),
                    Kind::GCounter => Data::GCounter(seq.next_element()?.ok_or_else(missing)?),
                    Kind::Set => Data::Set(seq.next_element()?.ok_or_else(missing)?),
                    Kind::Text => Data::Text(seq.next_element()?.ok_or_else(missing)?),
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("value part has extra elements"));
                }
                Ok(Part { created, data })
            }
        }
        deserializer.deserialize_tuple(3, PartVisitor)
    }
}
