//! The request parser: RESP multibulk (`*N\r\n$len\r\narg\r\n...`) and inline commands.
//!
//! The parser works on the unconsumed part of a connection's read buffer, which always starts
//! at the first byte of a request. It never copies arguments: it records their [`Span`]s (inline
//! words are decoded in place first). Which framing a request uses is decided by its first byte,
//! like Redis: `*` is multibulk, anything else is an inline line.
//!
//! **Incremental.** A large request may arrive over many reads. The parser keeps how far it got
//! (arguments found so far, where the next header starts, the length of a bulk whose payload is
//! still missing) so each read costs time proportional to the new bytes, not to the request.
//!
//! **Limits.** Every length a client sends is checked against a named limit before anything
//! depends on it, and no length is ever used to reserve memory: a `*1000000000` header costs
//! nothing until the arguments actually arrive, and each one then costs one 8-byte span. Before
//! authentication the tighter `unauth_*` limits apply, exactly where Redis applies its own.
//!
//! **Errors** are Redis' protocol errors; after one the connection must be closed, since the
//! next request's start is unknown. Framing details follow Redis' `networking.c` so that both
//! servers accept and refuse the same bytes: header lines are found by their CR and the byte
//! after it is not checked, and the two bytes after a bulk payload are skipped unchecked.

use super::args::Span;
use super::error::ProtocolError;
use super::inline::split_in_place;
use super::number::parse_i64;

/// The limits the parser enforces, in bytes and argument counts (from `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Longest bulk argument.
    pub bulk_bytes_max: usize,
    /// Most arguments in a multibulk request.
    pub array_len_max: usize,
    /// Longest inline line and longest `*N` / `$N` header line.
    pub inline_bytes_max: usize,
    /// Largest request, all its bytes counted.
    pub query_buffer_bytes_max: usize,
    /// Longest bulk argument before authentication.
    pub unauth_bulk_bytes_max: usize,
    /// Most arguments before authentication.
    pub unauth_array_len_max: usize,
}

impl ParseLimits {
    /// The limits of `[limits]`.
    pub fn from_config(l: &crate::config::LimitsSection) -> Self {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Self {
            bulk_bytes_max: size(l.bulk_bytes_max),
            array_len_max: size(l.array_len_max),
            inline_bytes_max: size(l.inline_bytes_max),
            query_buffer_bytes_max: size(l.query_buffer_bytes_max),
            unauth_bulk_bytes_max: size(l.unauth_bulk_bytes_max),
            unauth_array_len_max: size(l.unauth_array_len_max),
        }
    }
}

/// What the parser found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete command of `consumed` bytes; its arguments are [`RequestParser::spans`].
    Command {
        /// Bytes of the request, to drop once the command has executed.
        consumed: usize,
    },
    /// `consumed` bytes that hold no command (an empty line, `*0`, `*-1`): Redis ignores them.
    Nothing {
        /// Bytes to drop.
        consumed: usize,
    },
    /// The request is not complete yet; read more and call again with the same start.
    Incomplete,
}

/// Progress through a multibulk request that is not complete yet.
#[derive(Debug, Clone, Copy)]
struct Multibulk {
    /// Arguments still to read.
    remaining: usize,
    /// Where the next header (or the pending payload) starts, from the request start.
    pos: usize,
    /// Length of the bulk whose header was read but whose payload is incomplete.
    bulk_len: Option<usize>,
}

/// Parses requests one at a time; one per connection, reused for every request.
#[derive(Debug, Default)]
pub struct RequestParser {
    spans: Vec<Span>,
    pending: Option<Multibulk>,
}

/// Where the header line starting at `from` ends.
enum Line {
    /// The index of its CR; the byte after it is present.
    Found(usize),
    Incomplete,
    TooBig,
}

fn header_line(input: &[u8], from: usize, max: usize) -> Line {
    let window_end = input.len().min(from.saturating_add(max).saturating_add(1));
    match memchr::memchr(b'\r', &input[from..window_end]) {
        // Redis wants one more byte after the CR (the LF, which it skips without checking).
        Some(i) if from + i + 1 < input.len() => Line::Found(from + i),
        Some(_) => Line::Incomplete,
        None if input.len() - from > max => Line::TooBig,
        None => Line::Incomplete,
    }
}

fn span(start: usize, end: usize) -> Result<Span, ProtocolError> {
    let to_u32 = |n: usize| u32::try_from(n).map_err(|_| ProtocolError::QueryBufferLimit);
    Ok(Span {
        start: to_u32(start)?,
        end: to_u32(end)?,
    })
}

impl RequestParser {
    /// A parser with no request in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// The arguments of the command last returned as [`Parsed::Command`], relative to the
    /// start of the input it was parsed from.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Forgets a request in progress: for a parser that only looks ahead and never resumes one.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// True while a multibulk request is partly parsed.
    pub fn in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// Memory held for argument positions, for CLIENT LIST.
    pub fn memory_bytes(&self) -> usize {
        self.spans.capacity() * std::mem::size_of::<Span>()
    }

    /// Gives back memory after an unusually large request.
    pub fn shrink(&mut self, spans_max: usize) {
        if self.spans.capacity() > spans_max && self.pending.is_none() {
            self.spans = Vec::new();
        }
    }

    /// Parses the request at the start of `input`. `authenticated` selects the limits. Inline
    /// words are decoded in place, which is why `input` is mutable.
    pub fn parse(
        &mut self,
        input: &mut [u8],
        limits: &ParseLimits,
        authenticated: bool,
    ) -> Result<Parsed, ProtocolError> {
        let result = if self.pending.is_some() || input.first() == Some(&b'*') {
            self.multibulk(input, limits, authenticated)
        } else if input.is_empty() {
            Ok(Parsed::Incomplete)
        } else {
            self.inline(input, limits)
        };
        match result {
            Ok(Parsed::Incomplete) if input.len() >= limits.query_buffer_bytes_max => {
                Err(ProtocolError::QueryBufferLimit)
            }
            other => other,
        }
    }

    fn inline(&mut self, input: &mut [u8], limits: &ParseLimits) -> Result<Parsed, ProtocolError> {
        let window_end = input.len().min(limits.inline_bytes_max.saturating_add(1));
        let Some(newline) = memchr::memchr(b'\n', &input[..window_end]) else {
            if input.len() > limits.inline_bytes_max {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            return Ok(Parsed::Incomplete);
        };
        let line_end = if newline > 0 && input[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        self.spans.clear();
        split_in_place(&mut input[..line_end], 0, &mut self.spans)
            .map_err(|_| ProtocolError::UnbalancedQuotes)?;
        let consumed = newline + 1;
        Ok(if self.spans.is_empty() {
            Parsed::Nothing { consumed }
        } else {
            Parsed::Command { consumed }
        })
    }

    fn multibulk(
        &mut self,
        input: &[u8],
        limits: &ParseLimits,
        authenticated: bool,
    ) -> Result<Parsed, ProtocolError> {
        let mut state = match self.pending.take() {
            Some(state) => state,
            None => {
                let cr = match header_line(input, 0, limits.inline_bytes_max) {
                    Line::Found(cr) => cr,
                    Line::Incomplete => return Ok(Parsed::Incomplete),
                    Line::TooBig => return Err(ProtocolError::TooBigMbulkCountString),
                };
                let count = parse_i64(&input[1..cr])
                    .filter(|&n| n <= i64::from(i32::MAX))
                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                // A non-positive count is an empty request that Redis skips.
                if count <= 0 {
                    return Ok(Parsed::Nothing { consumed: cr + 2 });
                }
                let count = count as usize;
                if !authenticated && count > limits.unauth_array_len_max {
                    return Err(ProtocolError::UnauthenticatedMultibulkLength);
                }
                if count > limits.array_len_max {
                    return Err(ProtocolError::InvalidMultibulkLength);
                }
                self.spans.clear();
                Multibulk {
                    remaining: count,
                    pos: cr + 2,
                    bulk_len: None,
                }
            }
        };
        while state.remaining > 0 {
            let len = match state.bulk_len {
                Some(len) => len,
                None => {
                    if state.pos >= input.len() {
                        self.pending = Some(state);
                        return Ok(Parsed::Incomplete);
                    }
                    let cr = match header_line(input, state.pos, limits.inline_bytes_max) {
                        Line::Found(cr) => cr,
                        Line::Incomplete => {
                            self.pending = Some(state);
                            return Ok(Parsed::Incomplete);
                        }
                        Line::TooBig => return Err(ProtocolError::TooBigBulkCountString),
                    };
                    if input[state.pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(input[state.pos]));
                    }
                    let len = parse_i64(&input[state.pos + 1..cr])
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= limits.bulk_bytes_max)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    if !authenticated && len > limits.unauth_bulk_bytes_max {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    state.pos = cr + 2;
                    state.bulk_len = Some(len);
                    len
                }
            };
            // The payload and the two bytes after it must be there.
            if input.len() - state.pos < len + 2 {
                self.pending = Some(state);
                return Ok(Parsed::Incomplete);
            }
            self.spans.push(span(state.pos, state.pos + len)?);
            state.pos += len + 2;
            state.bulk_len = None;
            state.remaining -= 1;
        }
        Ok(Parsed::Command {
            consumed: state.pos,
        })
    }
}

#[cfg(test)]
mod tests;
