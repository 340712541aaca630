//! Transport counters: what was sent, received and dropped, and why. Lock-free atomics updated
//! by the IO tasks; [`TransportCounters`] is a consistent-enough snapshot for metrics and tests.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A snapshot of the transport counters (monotonic since the endpoint was bound).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct TransportCounters {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> TransportCounters {
                TransportCounters {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Datagrams handed to QUIC.
    datagrams_sent,
    /// Valid datagrams received from peers not cut (those then refused by a full datagram
    /// channel are also counted in `dropped_queue_full`).
    datagrams_received,
    /// Messages fully written to a stream.
    messages_sent,
    /// Messages fully and validly read from peers not cut, before delivery to the channel.
    messages_received,
    /// Payload bytes of datagrams and messages sent.
    bytes_sent,
    /// Payload bytes of the datagrams and messages counted as received.
    bytes_received,
    /// Incoming messages with a truncated prefix or body, trailing bytes, or too slow to arrive.
    dropped_malformed,
    /// Datagrams or messages, in either direction, above their configured limit.
    dropped_oversized,
    /// Traffic to or from a peer in the cut set, in either direction.
    dropped_partitioned,
    /// Items dropped because a bounded send or receive queue was full.
    dropped_queue_full,
    /// Connection events dropped because nobody reads the peer-event channel.
    peer_events_dropped,
    /// Items dropped because their peer could not be reached, its connection was lost, or it
    /// did not take a message within `message_timeout_ms`.
    dropped_unreachable,
    /// Handshakes, in either direction, refused by TLS or QUIC (bad or missing certificate,
    /// wrong node, not allowed, wrong protocol).
    handshake_failures,
    /// Dials that timed out or could not be sent.
    dial_failures,
    /// Authenticated connections established, in either direction.
    connections_established,
    /// Authenticated connections closed at once: peer cut, connection limit, or this node itself.
    connections_refused,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        Self::add(counter, 1);
    }
}
