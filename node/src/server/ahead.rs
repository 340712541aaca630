//! Requests parsed ahead of their execution: to prefetch their keys, and to run them without
//! parsing them a second time.
//!
//! Whenever the requests it looked at have all run, [`Ahead::look`] parses the complete
//! multibulk requests at the front of the read buffer (up to [`LOOK_AHEAD_REQUESTS_MAX`])
//! without consuming them, and starts fetching the entries of their keys into the CPU's caches
//! (`keyspace::prefetch`): the loads then overlap instead of stalling one command after the
//! other. It keeps where each request's arguments lie, and its command, so the connection
//! executes them from here ([`Ahead::next`]) instead of parsing and looking them up again;
//! parsing was the larger part of what a look-ahead cost.
//!
//! What is kept stays right while the buffer holds the same bytes: positions are relative to
//! each request's start, and the connection only consumes requests from the front, in order,
//! between two looks. The limits a request was parsed under depend on whether the client is
//! authenticated, so the connection drops what is kept when that changes ([`Ahead::clear`])
//! and the requests are parsed again under the new limits. Inline requests are not looked at:
//! the parser decodes them in place, and they are typed by hand, one at a time, anyway. An
//! incomplete or bad request ends the look; the connection's own parser reports it.

use crate::commands::{self, Found};
use crate::resp::{Args, ParseLimits, Parsed, RequestParser, Span};
use crate::state::NodeState;

/// Requests a look parses at most, and keys it prefetches at most: about what one read of a
/// deeply pipelined client holds, and few enough that the first entries fetched are still
/// cached when their commands run.
pub const LOOK_AHEAD_REQUESTS_MAX: usize = 16;
const LOOK_AHEAD_KEYS_MAX: usize = 32;
/// Set members a look prefetches at most (`SADD`, `SISMEMBER`...: see
/// `Keyspace::prefetch_members`).
const LOOK_AHEAD_MEMBERS_MAX: usize = 32;

/// Argument positions kept for execution, at most: a request with many arguments is still
/// looked at for its keys, but it and the requests after it are parsed again when they run,
/// so the positions kept stay small whatever the client sends.
const KEPT_SPANS_MAX: usize = 1024;

/// One request kept for execution.
#[derive(Debug, Clone, Copy, Default)]
struct Kept {
    /// Its length in bytes.
    consumed: usize,
    /// Its command, looked up already.
    command: Found,
    /// Its arguments: `Ahead::spans[start..end]`.
    spans: (usize, usize),
}

/// The requests at the front of a connection's buffer, parsed ahead.
#[derive(Debug, Default)]
pub struct Ahead {
    parser: RequestParser,
    kept: [Kept; LOOK_AHEAD_REQUESTS_MAX],
    /// `kept[next..len]` are still to execute.
    next: usize,
    len: usize,
    spans: Vec<Span>,
    /// Requests looked at but not kept, still ahead: their keys were prefetched already.
    prefetched_only: usize,
}

impl Ahead {
    /// Nothing looked at yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when every request looked at has been handed out again, so a new look is due.
    pub fn is_exhausted(&self) -> bool {
        self.next == self.len && self.prefetched_only == 0
    }

    /// Forgets the requests kept (the limits they were parsed under no longer apply).
    pub fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.prefetched_only = 0;
        self.spans.clear();
    }

    /// The next request kept, as its length, its command and its arguments inside `pending`
    /// (the front of the read buffer, which must start with it); `None` when the next request
    /// must be parsed by the connection.
    pub fn next<'a>(&'a mut self, pending: &'a [u8]) -> Option<(usize, Found, Args<'a>)> {
        if self.next == self.len {
            self.prefetched_only = self.prefetched_only.saturating_sub(1);
            return None;
        }
        let kept = self.kept[self.next];
        debug_assert!(
            pending.len() >= kept.consumed && pending.first() == Some(&b'*'),
            "the buffer no longer starts with the request kept"
        );
        self.next += 1;
        let (start, end) = kept.spans;
        Some((
            kept.consumed,
            kept.command,
            Args::new(&pending[..kept.consumed], &self.spans[start..end]),
        ))
    }

    /// Parses the complete requests at the start of `pending` without consuming them, keeps
    /// them for execution, and prefetches their keys.
    pub fn look(
        &mut self,
        state: &NodeState,
        pending: &mut [u8],
        limits: &ParseLimits,
        authenticated: bool,
    ) {
        self.clear();
        // Where the keys are in `pending`, and the set members with their keys.
        let mut keys = [(0, 0); LOOK_AHEAD_KEYS_MAX];
        let mut members = [((0, 0), (0, 0)); LOOK_AHEAD_MEMBERS_MAX];
        let (mut offset, mut requests, mut found, mut member_count) = (0, 0, 0, 0);
        let mut keeping = true;
        while requests < LOOK_AHEAD_REQUESTS_MAX && found < LOOK_AHEAD_KEYS_MAX {
            let rest = &mut pending[offset..];
            if rest.first() != Some(&b'*') {
                break;
            }
            self.parser.reset();
            let Ok(Parsed::Command { consumed }) = self.parser.parse(rest, limits, authenticated)
            else {
                break;
            };
            let spans = self.parser.spans();
            let args = Args::new(&rest[..consumed], spans);
            let command = state.commands.lookup(args.arg(0));
            // Where argument `position` is in `pending`.
            let at = |position: usize| {
                let span = spans[position].range();
                (offset + span.start, offset + span.end)
            };
            for position in commands::key_positions(command, args.len()) {
                let Some(slot) = keys.get_mut(found) else {
                    break;
                };
                *slot = at(position);
                found += 1;
            }
            if command.is_some_and(|(_, spec)| spec.member_args) {
                for position in 2..spans.len() {
                    let Some(slot) = members.get_mut(member_count) else {
                        break;
                    };
                    *slot = (at(1), at(position));
                    member_count += 1;
                }
            }
            keeping = keeping && self.spans.len() + spans.len() <= KEPT_SPANS_MAX;
            if keeping {
                let range = (self.spans.len(), self.spans.len() + spans.len());
                self.spans.extend_from_slice(spans);
                self.kept[self.len] = Kept {
                    consumed,
                    command,
                    spans: range,
                };
                self.len += 1;
            } else {
                self.prefetched_only += 1;
            }
            offset += consumed;
            requests += 1;
        }
        self.parser.reset();
        let pending = &*pending;
        let mut slices: [&[u8]; LOOK_AHEAD_KEYS_MAX] = [&[]; LOOK_AHEAD_KEYS_MAX];
        for (slice, &(start, end)) in slices.iter_mut().zip(&keys[..found]) {
            *slice = &pending[start..end];
        }
        state.keyspace.prefetch(&slices[..found]);
        let mut pairs: [(&[u8], &[u8]); LOOK_AHEAD_MEMBERS_MAX] =
            [(&[], &[]); LOOK_AHEAD_MEMBERS_MAX];
        for (pair, &((ks, ke), (ms, me))) in pairs.iter_mut().zip(&members[..member_count]) {
            *pair = (&pending[ks..ke], &pending[ms..me]);
        }
        state.keyspace.prefetch_members(&pairs[..member_count]);
    }

    /// Memory held for argument positions, for CLIENT LIST.
    pub fn memory_bytes(&self) -> usize {
        self.parser.memory_bytes() + self.spans.capacity() * std::mem::size_of::<Span>()
    }

    /// Gives back memory after an unusually large request.
    pub fn shrink(&mut self, spans_max: usize) {
        self.parser.shrink(spans_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::sync::Arc;

    /// `args` as a multibulk request: what a RESP2 array of bulks is on the wire.
    fn multibulk(args: &[&[u8]]) -> Vec<u8> {
        let mut w = crate::resp::ReplyWriter::new(crate::resp::Protocol::Resp2);
        w.array(args.len());
        for a in args {
            w.bulk(a);
        }
        w.as_bytes().to_vec()
    }

    /// Hands out everything kept, consuming the buffer like the connection does; returns
    /// each request's arguments and how many bytes were left unconsumed.
    fn drain(ahead: &mut Ahead, mut buf: &[u8]) -> (Vec<Vec<Vec<u8>>>, usize) {
        let mut out = Vec::new();
        while let Some((consumed, _, args)) = ahead.next(buf) {
            out.push(args.iter().map(<[u8]>::to_vec).collect());
            buf = &buf[consumed..];
        }
        (out, buf.len())
    }

    #[test]
    fn kept_requests_are_handed_out_in_order_as_parsed() {
        let state = NodeState::in_memory(Config::default(), Arc::new(storage::MemStore::new()));
        let limits = state.parse_limits;
        let mut buf = multibulk(&[b"SET", b"k", b"v"]);
        buf.extend(multibulk(&[b"GET", b"k"]));
        buf.extend(b"PING\r\n");
        buf.extend(multibulk(&[b"GET", b"after-inline"]));
        let mut ahead = Ahead::new();
        assert!(ahead.is_exhausted());
        ahead.look(&state, &mut buf, &limits, true);
        assert!(!ahead.is_exhausted());
        let (got, left) = drain(&mut ahead, &buf);
        // The inline request ends the look: it and what follows are the parser's.
        assert_eq!(
            got,
            vec![
                vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()],
                vec![b"GET".to_vec(), b"k".to_vec()]
            ]
        );
        assert_eq!(
            left,
            b"PING\r\n".len() + multibulk(&[b"GET", b"after-inline"]).len()
        );
        assert!(ahead.is_exhausted());
        // An incomplete request is not kept either.
        let mut cut = multibulk(&[b"GET", b"k"]);
        cut.truncate(cut.len() - 1);
        ahead.look(&state, &mut cut, &limits, true);
        assert!(ahead.is_exhausted() && ahead.next(&cut).is_none());
    }

    #[test]
    fn kept_positions_are_bounded_and_the_rest_is_only_prefetched() {
        let state = NodeState::in_memory(Config::default(), Arc::new(storage::MemStore::new()));
        let limits = state.parse_limits;
        let wide: Vec<&[u8]> = std::iter::once(&b"SADD"[..])
            .chain(std::iter::repeat_n(&b"m"[..], KEPT_SPANS_MAX))
            .collect();
        let mut buf = multibulk(&[b"GET", b"a"]);
        buf.extend(multibulk(&wide));
        buf.extend(multibulk(&[b"GET", b"b"]));
        let mut ahead = Ahead::new();
        ahead.look(&state, &mut buf, &limits, true);
        assert!(ahead.spans.len() <= KEPT_SPANS_MAX);
        let first = multibulk(&[b"GET", b"a"]).len();
        let (got, left) = drain(&mut ahead, &buf);
        assert_eq!(got, vec![vec![b"GET".to_vec(), b"a".to_vec()]]);
        assert_eq!(left, buf.len() - first);
        // The two requests not kept were looked at: no new look until they are handed over
        // to the parser.
        assert!(!ahead.is_exhausted());
        assert!(ahead.next(&buf[first..]).is_none());
        assert!(ahead.next(&buf[first..]).is_none());
        assert!(ahead.is_exhausted());
        ahead.clear();
        assert!(ahead.is_exhausted() && ahead.spans.is_empty());
    }
}
