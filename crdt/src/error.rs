//! The error type of the `crdt` crate. Every variant says what happened to state: in all cases
//! the state the operation was called on is unchanged.

use thiserror::Error;

/// Everything a `crdt` operation can refuse. The value or clock the call was made on is left
/// exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A remote HLC timestamp is too far in the future; the clock was not moved.
    #[error(
        "remote timestamp {remote_ms} ms is more than {max_offset_ms} ms ahead of the local clock \
         ({local_ms} ms); clock unchanged"
    )]
    ClockSkew {
        /// Physical time of the remote timestamp.
        remote_ms: u64,
        /// Local wall time passed in.
        local_ms: u64,
        /// The configured bound.
        max_offset_ms: u64,
    },

    /// The operation needs a key of another type; nothing was written.
    #[error("operation against a key holding the wrong kind of value")]
    WrongType,

    /// A counter operation or conversion does not fit in a signed 64-bit integer; nothing was
    /// written.
    #[error("increment or decrement would overflow")]
    Overflow,

    /// A register's value is not a base-10 signed 64-bit integer; nothing was written.
    #[error("value is not an integer or out of range")]
    NotAnInteger,

    /// A grow-only counter was asked to go down; nothing was written.
    #[error("grow-only counter increments must be non-negative")]
    NegativeIncrement,

    /// A text position lies past the end of the text; nothing was written.
    #[error("index {index} is out of range for text of length {len}")]
    IndexOutOfRange {
        /// The position asked for.
        index: u64,
        /// The text length in characters.
        len: u64,
    },

    /// Bytes could not be decoded into state; nothing was produced.
    #[error("cannot decode state: {0}")]
    Decode(#[from] DecodeError),
}

/// Why bytes could not be decoded. Decoding never panics and never allocates from a length read
/// out of the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// The version marker names a format this build does not know.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The marker found.
        found: u8,
        /// The version this build writes and reads.
        supported: u8,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A valid encoding was followed by extra bytes.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
}
