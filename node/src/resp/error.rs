//! Protocol errors: a request that cannot be parsed. Redis answers each with one error reply and
//! closes the connection, because after a framing error it cannot know where the next request
//! starts; crdtkv does the same, with Redis' exact texts (from `networking.c`) so that clients
//! and tests written against Redis recognise them.

use thiserror::Error;

/// A request that cannot be parsed. After it is answered the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// `*N` with N not an integer, or above `limits.array_len_max`.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$N` with N not an integer, negative, or above `limits.bulk_bytes_max`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// Inside a multibulk request, an argument that does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0).escape_default())]
    ExpectedDollar(u8),
    /// An inline command line longer than `limits.inline_bytes_max`.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// A `*N` line longer than `limits.inline_bytes_max`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCountString,
    /// A `$N` line longer than `limits.inline_bytes_max`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCountString,
    /// An inline command with an unterminated quote, or a closing quote not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// `*N` above `limits.unauth_array_len_max` before the client authenticated.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// `$N` above `limits.unauth_bulk_bytes_max` before the client authenticated.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// One request does not fit in `limits.query_buffer_bytes_max`. (Redis closes such a client
    /// without a reply; crdtkv says why first.)
    #[error("Protocol error: request exceeds the query buffer limit")]
    QueryBufferLimit,
}

impl ProtocolError {
    /// The error reply's text without the leading `-`, byte-exact with Redis: the offending
    /// byte of [`ProtocolError::ExpectedDollar`] is sent as is, except CR and LF, which would
    /// break the reply's framing and become spaces as in Redis' `addReplyErrorFormat`.
    pub fn reply_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"ERR ");
        match *self {
            Self::ExpectedDollar(byte) => {
                out.extend_from_slice(b"Protocol error: expected '$', got '");
                out.push(if byte == b'\r' || byte == b'\n' {
                    b' '
                } else {
                    byte
                });
                out.push(b'\'');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: ProtocolError) -> Vec<u8> {
        let mut out = Vec::new();
        e.reply_text(&mut out);
        out
    }

    #[test]
    fn texts_match_redis() {
        assert_eq!(
            text(ProtocolError::InvalidMultibulkLength),
            b"ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            text(ProtocolError::ExpectedDollar(b'f')),
            b"ERR Protocol error: expected '$', got 'f'"
        );
        assert_eq!(
            text(ProtocolError::ExpectedDollar(0xff)),
            b"ERR Protocol error: expected '$', got '\xff'"
        );
        assert_eq!(
            text(ProtocolError::ExpectedDollar(b'\n')),
            b"ERR Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            text(ProtocolError::UnbalancedQuotes),
            b"ERR Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(0).to_string(),
            "Protocol error: expected '$', got '\\u{0}'"
        );
    }
}
