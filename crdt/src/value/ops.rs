//! The mutators of [`Value`]: one per family of commands. Each checks the key's type first and
//! either changes nothing and returns an error, or applies the change and returns the delta.

use super::{Data, Kind, Part, Value};
use crate::error::Error;
use crate::hlc::Timestamp;
use crate::merge::Merge;

impl Value {
    /// Observed-remove delete of the whole key (`DEL`). Returns the delta, or `None` if the key
    /// did not exist.
    pub fn delete(&mut self) -> Option<Value> {
        self.exists().then(|| self.clear_parts())
    }

    /// Overwrites the key, whatever its type, with a register holding `value` (`SET`): every
    /// observed part is cleared and the register becomes the key's type as of `ts`.
    pub fn set_register(&mut self, ts: Timestamp, value: &[u8]) -> Value {
        if self.slice().iter().all(|p| p.kind() == Kind::Register) {
            return self.overwrite_register(ts, value);
        }
        self.set_register_general(ts, value)
    }

    /// [`set_register`](Self::set_register) of a key that holds at most a register (nearly
    /// every `SET`): the register's own write replaces every entry it observed, which is what
    /// clearing it first and merging the two deltas gives, without building either.
    fn overwrite_register(&mut self, ts: Timestamp, value: &[u8]) -> Value {
        let part = self.part_for_write(Kind::Register, ts);
        part.created = part.created.max(ts);
        let Data::Register(register) = &mut part.data else {
            unreachable!("kind checked")
        };
        let d = register.set(ts, value);
        Value::single(Part {
            created: part.created,
            data: Data::Register(d),
        })
    }

    /// [`set_register`](Self::set_register) of a key with parts of other kinds.
    fn set_register_general(&mut self, ts: Timestamp, value: &[u8]) -> Value {
        let mut delta = self.clear_parts();
        let part = self.part_for_write(Kind::Register, ts);
        let Data::Register(register) = &mut part.data else {
            unreachable!("kind checked")
        };
        let d = register.set(ts, value);
        let created = part.created;
        delta.merge_part(Part {
            created,
            data: Data::Register(d),
        });
        delta
    }

    /// Adds `by` to a PN counter (`INCRBY`/`DECRBY`); returns the delta and the new value.
    ///
    /// A missing key becomes a counter. A register holding a base-10 integer is converted, as
    /// Redis users expect from `SET k 10` then `INCR k`: the register is cleared (observed-remove)
    /// and this node contributes the register's value plus `by` to a new counter. If two nodes
    /// convert the same register concurrently, both contributions count (the sum includes the
    /// register's value twice) — the same rule as any other concurrent increment.
    pub fn incr_by(&mut self, ts: Timestamp, by: i64) -> Result<(Value, i64), Error> {
        match self.kind() {
            None | Some(Kind::PnCounter) => {
                let next = self.counter_value(Kind::PnCounter) + i128::from(by);
                let next = i64::try_from(next).map_err(|_| Error::Overflow)?;
                let delta = self.increment_part(Kind::PnCounter, ts, by)?;
                Ok((delta, next))
            }
            Some(Kind::Register) => {
                let current = self
                    .register()
                    .and_then(|r| r.get())
                    .and_then(parse_integer);
                let next = current
                    .ok_or(Error::NotAnInteger)?
                    .checked_add(by)
                    .ok_or(Error::Overflow)?;
                // Work on a copy so a refused increment leaves the register untouched.
                let mut converted = self.clone();
                let mut delta = converted.clear_parts();
                delta.merge(converted.increment_part(Kind::PnCounter, ts, next)?);
                *self = converted;
                Ok((delta, next))
            }
            Some(_) => Err(Error::WrongType),
        }
    }

    /// Adds `by ≥ 0` to a grow-only counter (`GCOUNTER.INCRBY`); returns the delta and the new
    /// value. Refuses negative increments.
    pub fn gcounter_incr_by(&mut self, ts: Timestamp, by: i64) -> Result<(Value, i64), Error> {
        if by < 0 {
            return Err(Error::NegativeIncrement);
        }
        self.expect_kind(Kind::GCounter)?;
        let next = self.counter_value(Kind::GCounter) + i128::from(by);
        let next = i64::try_from(next).map_err(|_| Error::Overflow)?;
        let delta = self.increment_part(Kind::GCounter, ts, by)?;
        Ok((delta, next))
    }

    /// Adds `members` to a set (`SADD`); returns the delta and how many were new.
    pub fn sadd(&mut self, ts: Timestamp, members: &[&[u8]]) -> Result<(Value, u64), Error> {
        self.expect_kind(Kind::Set)?;
        let part = self.part_for_write(Kind::Set, ts);
        let Data::Set(set) = &mut part.data else {
            unreachable!("kind checked")
        };
        let (d, added) = set.add_at(ts, members.iter().copied());
        let created = part.created;
        Ok((
            Value::single(Part {
                created,
                data: Data::Set(Box::new(d)),
            }),
            added,
        ))
    }

    /// Removes `members` from a set (`SREM`); returns the delta (`None` if nothing changed) and
    /// how many were removed.
    pub fn srem(&mut self, members: &[&[u8]]) -> Result<(Option<Value>, u64), Error> {
        if self.kind().is_none() {
            return Ok((None, 0));
        }
        self.expect_kind(Kind::Set)?;
        let part = self
            .slice_mut()
            .iter_mut()
            .find(|p| p.kind() == Kind::Set)
            .expect("visible part");
        let Data::Set(set) = &mut part.data else {
            unreachable!("kind checked")
        };
        let (d, removed) = set.remove(members.iter().copied());
        let delta = (removed > 0).then(|| {
            Value::single(Part {
                created: part.created,
                data: Data::Set(Box::new(d)),
            })
        });
        Ok((delta, removed))
    }

    /// Inserts `text` at character `index` of a text (`TEXT.INSERT`); a missing key becomes a
    /// text. Returns the delta (`None` for empty `text`).
    pub fn text_insert(
        &mut self,
        ts: Timestamp,
        index: u64,
        text: &str,
    ) -> Result<Option<Value>, Error> {
        self.expect_kind(Kind::Text)?;
        if text.is_empty() {
            let len = self.text_len();
            return if index > len {
                Err(Error::IndexOutOfRange { index, len })
            } else {
                Ok(None)
            };
        }
        // Validate against the current text before creating a part, so a refusal leaves no trace.
        let len = self.text_len();
        if index > len {
            return Err(Error::IndexOutOfRange { index, len });
        }
        let part = self.part_for_write(Kind::Text, ts);
        let Data::Text(rga) = &mut part.data else {
            unreachable!("kind checked")
        };
        let d = rga.insert_at(ts, index, text)?;
        let created = part.created;
        Ok(Some(Value::single(Part {
            created,
            data: Data::Text(Box::new(d)),
        })))
    }

    /// Deletes up to `count` characters from `index` of a text (`TEXT.DELETE`); returns the
    /// delta (`None` if nothing was deleted) and how many characters were deleted.
    pub fn text_delete(
        &mut self,
        ts: Timestamp,
        index: u64,
        count: u64,
    ) -> Result<(Option<Value>, u64), Error> {
        self.expect_kind(Kind::Text)?;
        let len = self.text_len();
        if index > len {
            return Err(Error::IndexOutOfRange { index, len });
        }
        let deleted = count.min(len - index);
        if deleted == 0 {
            return Ok((None, 0));
        }
        let part = self
            .slice_mut()
            .iter_mut()
            .find(|p| p.kind() == Kind::Text)
            .expect("non-empty text");
        let Data::Text(rga) = &mut part.data else {
            unreachable!("kind checked")
        };
        let d = rga.delete(ts.node, index, deleted)?;
        Ok((
            Some(Value::single(Part {
                created: part.created,
                data: Data::Text(Box::new(d)),
            })),
            deleted,
        ))
    }

    /// Characters of the visible text (0 if the key is not a text).
    fn text_len(&self) -> u64 {
        match self.part(Kind::Text).map(|p| &p.data) {
            Some(Data::Text(t)) => t.len(),
            _ => 0,
        }
    }

    /// Refuses unless the key is missing or of `kind`.
    pub(super) fn expect_kind(&self, kind: Kind) -> Result<(), Error> {
        match self.kind() {
            None => Ok(()),
            Some(k) if k == kind => Ok(()),
            Some(_) => Err(Error::WrongType),
        }
    }

    /// Clears every non-empty part; returns the delta.
    pub(super) fn clear_parts(&mut self) -> Value {
        Value::from_parts(
            self.slice_mut()
                .iter_mut()
                .filter(|p| !p.data.is_empty())
                .map(|part| Part {
                    created: part.created,
                    data: part.data.clear(),
                }),
        )
    }

    /// The part of `kind` ready for a write at `ts`, created if missing; a write to an empty part
    /// makes `kind` the key's type as of `ts`.
    pub(super) fn part_for_write(&mut self, kind: Kind, ts: Timestamp) -> &mut Part {
        let i = match self.slice().binary_search_by_key(&kind, Part::kind) {
            Ok(i) => i,
            Err(i) => {
                self.insert_part(
                    i,
                    Part {
                        created: ts,
                        data: Data::empty(kind),
                    },
                );
                i
            }
        };
        let part = &mut self.slice_mut()[i];
        if part.data.is_empty() {
            part.created = part.created.max(ts);
        }
        part
    }

    fn counter_value(&self, kind: Kind) -> i128 {
        match self.part(kind).map(|p| &p.data) {
            Some(Data::PnCounter(c)) => c.value(),
            Some(Data::GCounter(c)) => c.value(),
            _ => 0,
        }
    }

    fn increment_part(&mut self, kind: Kind, ts: Timestamp, by: i64) -> Result<Value, Error> {
        // Check the per-node entry before touching `created`, so a refusal changes nothing.
        let mut part = match self.part(kind) {
            Some(p) => p.clone(),
            None => Part {
                created: ts,
                data: Data::empty(kind),
            },
        };
        if part.data.is_empty() {
            part.created = part.created.max(ts);
        }
        let data = match &mut part.data {
            Data::PnCounter(c) => Data::PnCounter(c.increment(ts, by)?),
            Data::GCounter(c) => Data::GCounter(c.increment(ts, by)?),
            _ => unreachable!("only counters are incremented"),
        };
        let delta = Value::single(Part {
            created: part.created,
            data,
        });
        self.merge_part(part);
        Ok(delta)
    }
}

/// Parses a Redis integer argument or value: optional `-`, base-10 digits, no sign `+`, no spaces,
/// no leading zeros (except `0` itself), within `i64`. The same rules as Redis's `string2ll`.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = !digits.is_empty()
        && digits.len() <= 19
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && bytes != b"-0";
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id::NodeId;
    use crate::value::View;

    fn ts(ms: u64, node: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(node),
        }
    }

    /// The heap hint names the memory a read of the value goes to: a single register's bytes,
    /// a counter's tallies; nothing for an empty value or a register of concurrent writes.
    #[test]
    fn heap_hint_points_at_the_data_a_read_touches() {
        assert_eq!(Value::new().heap_hint(), None);
        let mut reg = Value::new();
        reg.set_register(ts(5, 1), b"abc");
        let Some(View::Register(bytes)) = reg.view() else {
            panic!("a register")
        };
        assert_eq!(reg.heap_hint(), Some(bytes.as_ptr()));
        let mut concurrent = reg.clone();
        let mut other = Value::new();
        concurrent.merge(other.set_register(ts(5, 2), b"xyz"));
        assert_eq!(concurrent.heap_hint(), None);
        let mut counter = Value::new();
        counter.incr_by(ts(5, 1), 3).unwrap();
        let Data::PnCounter(c) = &counter.slice()[0].data else {
            panic!("a counter")
        };
        assert_eq!(counter.heap_hint(), Some(c.tallies().as_ptr().cast()));
    }

    /// The shortcut for a key holding only a register gives the state and delta of the general
    /// rule (clear every part, then write).
    #[test]
    fn overwriting_a_register_equals_the_general_set() {
        let mut histories: Vec<Value> = vec![Value::new()];
        let mut one = Value::new();
        one.set_register(ts(5, 1), b"a");
        histories.push(one.clone());
        // Concurrent writes by two nodes, then a delete that leaves a tombstone.
        let mut other = Value::new();
        let d = other.set_register(ts(6, 2), b"b");
        let mut both = one.clone();
        both.merge(d);
        histories.push(both.clone());
        let mut deleted = both.clone();
        deleted.delete();
        histories.push(deleted);
        for (i, start) in histories.into_iter().enumerate() {
            for writer in [1, 2, 3] {
                let (mut fast, mut general) = (start.clone(), start.clone());
                let df = fast.overwrite_register(ts(10 + i as u64, writer), b"new");
                let dg = general.set_register_general(ts(10 + i as u64, writer), b"new");
                assert_eq!(fast, general, "state of history {i} written by {writer}");
                assert_eq!(df, dg, "delta of history {i} written by {writer}");
            }
        }
    }

    fn counter(v: &Value) -> i128 {
        match v.view() {
            Some(View::Counter(c)) => c,
            other => panic!("not a counter: {other:?}"),
        }
    }

    #[test]
    fn parse_integer_follows_redis() {
        assert_eq!(parse_integer(b"10"), Some(10));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"01",
            b"-0",
            b"1.0",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn set_then_incr_converts_register_to_counter() {
        let mut v = Value::new();
        v.set_register(ts(1, 1), b"10");
        let (_, n) = v.incr_by(ts(2, 1), 5).unwrap();
        assert_eq!(n, 15);
        assert_eq!(v.kind(), Some(Kind::PnCounter));
        let mut w = Value::new();
        w.set_register(ts(1, 1), b"ten");
        let before = w.clone();
        assert_eq!(w.incr_by(ts(2, 1), 1), Err(Error::NotAnInteger));
        assert_eq!(w, before);
    }

    #[test]
    fn incr_overflow_is_refused_and_changes_nothing() {
        let mut v = Value::new();
        v.incr_by(ts(1, 1), i64::MAX).unwrap();
        let before = v.clone();
        assert_eq!(v.incr_by(ts(2, 1), 1), Err(Error::Overflow));
        assert_eq!(v, before);
    }

    #[test]
    fn wrong_type_changes_nothing() {
        let mut v = Value::new();
        v.sadd(ts(1, 1), &[b"m"]).unwrap();
        let before = v.clone();
        assert_eq!(v.incr_by(ts(2, 1), 1), Err(Error::WrongType));
        assert_eq!(v.gcounter_incr_by(ts(2, 1), 1), Err(Error::WrongType));
        assert_eq!(v, before);
        assert_eq!(
            v.gcounter_incr_by(ts(2, 1), -1),
            Err(Error::NegativeIncrement)
        );
    }

    #[test]
    fn delete_keeps_concurrent_increments() {
        let mut a = Value::new();
        let (d1, _) = a.incr_by(ts(1, 1), 10).unwrap();
        let mut b = Value::new();
        b.merge(d1);
        let d_del = a.delete().unwrap();
        assert!(a.is_tombstone());
        let (d_inc, _) = b.incr_by(ts(2, 2), 3).unwrap();
        a.merge(d_inc);
        b.merge(d_del);
        assert_eq!(a, b);
        assert_eq!(
            counter(&a),
            3,
            "only the increment the delete did not see survives"
        );
    }

    #[test]
    fn type_conflict_latest_creation_wins_everywhere() {
        let mut a = Value::new();
        let mut b = Value::new();
        let da = a.set_register(ts(10, 1), b"v");
        let (db, _) = b.sadd(ts(11, 2), &[b"m"]).unwrap();
        a.merge(db);
        b.merge(da);
        assert_eq!(a, b);
        assert_eq!(a.kind(), Some(Kind::Set));
        // The hidden register is not lost: deleting the set on a node that never saw it...
        let mut c = Value::new();
        let (dc, _) = c.sadd(ts(11, 2), &[b"m"]).unwrap();
        let _ = dc;
        let del = b.delete().unwrap();
        a.merge(del);
        assert!(!a.exists(), "a delete that saw both parts clears both");
    }

    #[test]
    fn set_overwrites_any_type() {
        let mut v = Value::new();
        v.sadd(ts(1, 1), &[b"m"]).unwrap();
        let delta = v.set_register(ts(2, 1), b"x");
        assert_eq!(v.kind(), Some(Kind::Register));
        let mut replica = Value::new();
        replica.sadd(ts(1, 1), &[b"m"]).unwrap();
        replica.merge(delta);
        assert_eq!(replica, v);
    }

    #[test]
    fn srem_on_missing_key_is_a_no_op() {
        let mut v = Value::new();
        assert_eq!(v.srem(&[b"m"]), Ok((None, 0)));
        assert!(v.parts().len() == 0);
    }
}
