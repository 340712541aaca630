//! The arguments of one parsed command, as byte slices of the connection's read buffer.
//!
//! The parser records where each argument lies ([`Span`]) instead of copying it, so executing a
//! command allocates nothing for its arguments. `args[0]` is the command name as the client sent
//! it (any case).

use std::ops::Index;

/// Where one argument lies in the request: `start..end`, relative to the request's first byte.
/// 32-bit offsets halve the parser's memory per argument; a request can never be larger than
/// `limits.query_buffer_bytes_max`, which validation keeps under 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte of the argument.
    pub start: u32,
    /// One past its last byte.
    pub end: u32,
}

impl Span {
    /// The span as a range of `usize` for slicing.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A borrowed view of one command's arguments.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Args<'a> {
    /// A view of `spans` inside `buf`. Every span must lie inside `buf` (the parser guarantees
    /// it); a span that does not is a bug and panics on access.
    pub fn new(buf: &'a [u8], spans: &'a [Span]) -> Self {
        Self { buf, spans }
    }

    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there is no argument at all (never the case for a dispatched command).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.spans.get(i).map(|s| &self.buf[s.range()])
    }

    /// Argument `i`; panics past the end, so call it only for positions the command's arity
    /// guarantees.
    pub fn arg(&self, i: usize) -> &'a [u8] {
        &self.buf[self.spans[i].range()]
    }

    /// The arguments from position `from` on (empty past the end).
    pub fn skip(&self, from: usize) -> Args<'a> {
        Args {
            buf: self.buf,
            spans: self.spans.get(from..).unwrap_or(&[]),
        }
    }

    /// Every argument in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.spans.iter().map(move |s| &buf[s.range()])
    }
}

impl Index<usize> for Args<'_> {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        self.arg(i)
    }
}

/// Owned arguments, for building a command outside a connection (unit tests of handlers,
/// internal callers).
#[derive(Debug, Clone, Default)]
pub struct ArgVec {
    buf: Vec<u8>,
    spans: Vec<Span>,
}

impl ArgVec {
    /// The arguments `parts`, in order.
    pub fn new<I, T>(parts: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut out = Self::default();
        for part in parts {
            let start = out.buf.len();
            out.buf.extend_from_slice(part.as_ref());
            let to_u32 = |n: usize| u32::try_from(n).expect("ArgVec holds less than 4 GiB");
            out.spans.push(Span {
                start: to_u32(start),
                end: to_u32(out.buf.len()),
            });
        }
        out
    }

    /// The borrowed view.
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &self.spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_and_owned() {
        let v = ArgVec::new(["SET", "k", ""]);
        let a = v.args();
        assert_eq!(a.len(), 3);
        assert_eq!(&a[0], b"SET");
        assert_eq!(a.get(2), Some(&b""[..]));
        assert_eq!(a.get(3), None);
        assert_eq!(
            a.skip(1).iter().collect::<Vec<_>>(),
            vec![&b"k"[..], &b""[..]]
        );
        assert!(a.skip(5).is_empty());
    }
}
