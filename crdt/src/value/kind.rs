//! The kinds of value a key can hold.

use std::fmt;

/// The CRDT type of a key. The declaration order is the tie-break rank of type conflicts (see
/// [`Value`](super::Value)); it is also the tag of each part in the encoding, so never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// [`LwwRegister`](crate::LwwRegister), created by `SET` and friends.
    Register = 0,
    /// [`PnCounter`](crate::PnCounter), created by `INCR`, `INCRBY`, `DECR`, `DECRBY`.
    PnCounter = 1,
    /// [`GCounter`](crate::GCounter), created by `GCOUNTER.INCRBY`.
    GCounter = 2,
    /// [`OrSet`](crate::OrSet), created by `SADD`.
    Set = 3,
    /// [`Rga`](crate::Rga) text, created by `TEXT.INSERT`.
    Text = 4,
}

impl Kind {
    /// Every kind, in rank order.
    pub const ALL: [Kind; 5] = [
        Kind::Register,
        Kind::PnCounter,
        Kind::GCounter,
        Kind::Set,
        Kind::Text,
    ];

    /// The CRDT's name, as `CRDT.INFO` reports it.
    pub const fn crdt_name(self) -> &'static str {
        match self {
            Kind::Register => "lww-register",
            Kind::PnCounter => "pn-counter",
            Kind::GCounter => "g-counter",
            Kind::Set => "or-set",
            Kind::Text => "rga-text",
        }
    }

    /// What Redis's `TYPE` answers: counters and registers read as strings, as in Redis.
    pub const fn redis_type(self) -> &'static str {
        match self {
            Kind::Register | Kind::PnCounter | Kind::GCounter => "string",
            Kind::Set => "set",
            Kind::Text => "text",
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(tag)).copied()
    }

    pub(crate) const fn tag(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.crdt_name())
    }
}
