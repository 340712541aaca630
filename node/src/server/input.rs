//! The read buffer of a connection.
//!
//! `buf[start..end]` holds received bytes not yet consumed by a complete request; the parser
//! always sees a slice starting at a request's first byte. The buffer starts small and doubles
//! only when a request in progress fills it, up to `limits.query_buffer_bytes_max` — so its
//! size follows bytes that actually arrived, never a length a client announced. After an
//! unusually large request it shrinks back once empty.

/// Initial size, Redis' `PROTO_IOBUF_LEN`: one read of a typical pipeline.
pub const INITIAL_BYTES: usize = 16 * 1024;

/// An emptied buffer larger than this is given back to the allocator.
const KEEP_BYTES: usize = 4 * INITIAL_BYTES;

/// The buffer is at its size limit and full: the request in it cannot complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A connection's read buffer.
#[derive(Debug)]
pub struct InputBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
}

impl InputBuffer {
    /// An empty buffer that never grows past `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: vec![0; INITIAL_BYTES.min(max.max(1))],
            start: 0,
            end: 0,
            max: max.max(1),
        }
    }

    /// Unconsumed bytes.
    pub fn pending_len(&self) -> usize {
        self.end - self.start
    }

    /// The unconsumed bytes, mutable (inline parsing decodes in place).
    pub fn pending_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// The first `len` unconsumed bytes.
    pub fn pending(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }

    /// Drops `n` bytes of the front (an executed request).
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into: moves the pending bytes to the front, and grows the buffer when the
    /// pending request already fills it.
    pub fn spare(&mut self) -> Result<&mut [u8], Full> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= self.max {
                return Err(Full);
            }
            let grown = self.buf.len().saturating_mul(2).min(self.max);
            self.buf.resize(grown, 0);
        }
        Ok(&mut self.buf[self.end..])
    }

    /// Records `n` bytes read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
    }

    /// Gives memory back after a large request, once nothing is pending.
    pub fn shrink_if_empty(&mut self) {
        if self.start == self.end && self.buf.len() > KEEP_BYTES {
            self.buf = vec![0; INITIAL_BYTES.min(self.max)];
            self.start = 0;
            self.end = 0;
        }
    }

    /// Size of the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(b: &mut InputBuffer, data: &[u8]) {
        let spare = b.spare().unwrap();
        spare[..data.len()].copy_from_slice(data);
        b.filled(data.len());
    }

    #[test]
    fn compacts_grows_to_the_limit_and_shrinks() {
        let mut b = InputBuffer::new(INITIAL_BYTES * 8);
        feed(&mut b, b"PING\r\nPI");
        assert_eq!(b.pending(6), b"PING\r\n");
        b.consume(6);
        feed(&mut b, b"NG\r\n");
        assert_eq!(b.pending_mut(), b"PING\r\n");
        b.consume(6);
        assert_eq!(b.pending_len(), 0);
        // A large request grows the buffer by doubling, up to the limit.
        let chunk = vec![b'x'; INITIAL_BYTES];
        for _ in 0..8 {
            feed(&mut b, &chunk);
        }
        assert_eq!(b.capacity(), INITIAL_BYTES * 8);
        assert_eq!(b.spare().unwrap_err(), Full);
        b.consume(INITIAL_BYTES * 8);
        b.shrink_if_empty();
        assert_eq!(b.capacity(), INITIAL_BYTES);
    }
}
