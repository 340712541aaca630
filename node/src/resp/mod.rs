//! The Redis protocol: requests in, replies out.
//!
//! * [`request`]: the zero-copy request parser (multibulk and inline), with named limits and
//!   Redis' protocol errors ([`error`]).
//! * [`args`]: the parsed arguments, as slices of the read buffer.
//! * [`reply`]: RESP2/RESP3 reply encoding into the connection's output buffer.
//! * [`number`]: integers parsed with Redis' rules, for headers and integer arguments.

pub mod args;
pub mod error;
mod inline;
pub mod number;
pub mod reply;
pub mod request;

pub use args::{ArgVec, Args, Span};
pub use error::ProtocolError;
pub use number::{parse_i64, parse_u64};
pub use reply::{Protocol, ReplyWriter};
pub use request::{ParseLimits, Parsed, RequestParser};
