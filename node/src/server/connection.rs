//! One client connection: the read → parse → execute → commit → write loop.
//!
//! Each turn of the loop is a *batch*: every complete request in the read buffer is executed
//! in order (pipelining), up to `limits.pipeline_commands_max` commands or until the replies
//! reach `limits.reply_buffer_bytes_max`; then, if the batch wrote anything, one group commit
//! is awaited; then all replies are written with one write. Requests left in the buffer by a
//! limit make the next batch without reading, so a client that pipelines more than the limits
//! gets its replies in bounded chunks, and the node reads nothing more from it until it has
//! taken them (backpressure).
//!
//! A protocol error is answered after the replies of the requests before it, and the
//! connection is closed, like Redis. Shutdown is noticed only while waiting for input, so a
//! batch that started is always finished and answered.
//!
//! Between two batches, with its replies written and nothing held or pending, a connection may
//! move to another connection thread ([`super::affinity`]): [`run`] then returns its state and
//! socket ([`Ended::Moved`]) and the new thread carries on with [`resume`].

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::affinity::{Affinity, BatchLocks};
use super::ahead::Ahead;
use super::input::{Full, InputBuffer};
use super::threads::Placement;
use crate::clients::{BufferSizes, Registration};
use crate::commands;
use crate::resp::{Args, Parsed, Protocol, ProtocolError, ReplyWriter, RequestParser};
use crate::session::Session;
use crate::state::NodeState;
use crate::write_set::{LockReport, WriteSet, commit_batch};

/// An emptied output buffer larger than this is given back to the allocator.
const REPLY_KEEP_BYTES: usize = 64 * 1024;

/// Argument positions kept allocated between requests (8 bytes each).
const SPANS_KEEP: usize = 4096;

/// Why a batch stopped executing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// No complete request is buffered: read more.
    NeedInput,
    /// A batch limit was reached with requests still buffered: answer, then continue.
    Limit,
    /// QUIT or a protocol error: answer, then close.
    Close,
}

struct Connection {
    state: Arc<NodeState>,
    placement: Arc<Placement>,
    affinity: Affinity,
    session: Session,
    input: InputBuffer,
    parser: RequestParser,
    /// The requests at the front of `input`, parsed ahead ([`Ahead`]).
    ahead: Ahead,
    reply: ReplyWriter,
    writes: WriteSet,
    pipeline_max: usize,
    reply_max: usize,
}

/// A connection between two threads: everything it is but its socket.
pub struct Paused {
    conn: Connection,
    /// Keeps the client registered while it lives, on whichever thread.
    _registration: Registration,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
}

/// How a connection's run on a thread ended.
pub enum Ended {
    /// The connection is closed.
    Closed,
    /// The connection moves to thread `to` ([`super::affinity`]): start it there with
    /// [`resume`] on this socket.
    Moved {
        /// The thread's index in the [`Placement`].
        to: usize,
        /// The socket, deregistered from this thread's runtime.
        stream: std::net::TcpStream,
        /// The rest of the connection.
        paused: Box<Paused>,
    },
}

/// Serves one accepted connection until the client leaves, a protocol error, QUIT, shutdown,
/// or a move to another of the threads of `placement`.
pub async fn run(
    state: Arc<NodeState>,
    placement: Arc<Placement>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Ended {
    let laddr = stream.local_addr().unwrap_or(peer);
    let registration = match state.clients.register(peer, laddr, stream.as_raw_fd()) {
        Ok(registration) => registration,
        Err(_) => {
            state
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "refused a connection: server.connections_max reached");
            super::refuse(stream).await;
            return Ended::Closed;
        }
    };
    // Small replies must not wait for Nagle's algorithm; failure only costs latency.
    let _ = stream.set_nodelay(true);
    let limits = &state.config.limits;
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let conn = Connection {
        session: Session::new(Arc::clone(&registration.info), state.password_required()),
        input: InputBuffer::new(to_usize(limits.query_buffer_bytes_max)),
        parser: RequestParser::new(),
        ahead: Ahead::new(),
        reply: ReplyWriter::new(Protocol::Resp2),
        writes: WriteSet::for_connection(),
        pipeline_max: to_usize(limits.pipeline_commands_max),
        reply_max: to_usize(limits.reply_buffer_bytes_max),
        affinity: Affinity::new(),
        placement,
        state,
    };
    tracing::debug!(client = conn.session.id, %peer, "client connected");
    let paused = Paused {
        conn,
        _registration: registration,
        peer,
        stop,
    };
    resume(Box::new(paused), stream).await
}

/// Serves a connection from where it is, on this thread: a new one from [`run`], or one that
/// moved here ([`Ended::Moved`]).
pub async fn resume(mut paused: Box<Paused>, mut stream: TcpStream) -> Ended {
    let Paused {
        conn, peer, stop, ..
    } = &mut *paused;
    match conn.serve(&mut stream, stop).await {
        Ok(to) => {
            let id = conn.session.id;
            match stream.into_std() {
                Ok(stream) => {
                    conn.state
                        .stats
                        .connection_moves
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::trace!(client = id, to, "client moves to another thread");
                    Ended::Moved { to, stream, paused }
                }
                // Deregistering fails only if the socket is already unusable.
                Err(error) => {
                    tracing::debug!(client = id, %error, "client lost while moving");
                    Ended::Closed
                }
            }
        }
        Err(reason) => {
            tracing::debug!(client = conn.session.id, %peer, reason, "client disconnected");
            // Unregister before the socket closes, so a client that saw the connection end
            // never finds itself in a later CLIENT LIST or connected_clients.
            drop(paused);
            drop(stream);
            Ended::Closed
        }
    }
}

impl Connection {
    /// The connection loop; returns why it ended, or the thread to move to.
    async fn serve(
        &mut self,
        stream: &mut TcpStream,
        stop: &watch::Receiver<bool>,
    ) -> Result<usize, &'static str> {
        let idle = match self.state.config.server.client_idle_timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        // One wait for shutdown for the whole connection: a fresh `changed()` around every
        // read registers and unregisters a waiter (a lock and a list update) per request.
        let mut signal = stop.clone();
        let shutdown = async move {
            // An error means the sender is gone, which also means stop.
            let _ = signal.wait_for(|stopping| *stopping).await;
        };
        tokio::pin!(shutdown);
        loop {
            let stop_reason = self.execute_buffered();
            let (wrote, locks) = (!self.writes.is_empty(), self.writes.take_locks());
            self.finish_batch(stream).await?;
            if stop_reason == Stop::Close {
                return Err("closed after reply");
            }
            if *stop.borrow() {
                return Err("shutdown");
            }
            if wrote && let Some(to) = self.next_thread(locks) {
                return Ok(to);
            }
            if stop_reason == Stop::Limit {
                continue;
            }
            self.input.shrink_if_empty();
            let spare = match self.input.spare() {
                Ok(spare) => spare,
                // The parser refuses a request as large as the limit before the buffer can
                // be full at that size; this is a second line of defence.
                Err(Full) => return Err("query buffer limit"),
            };
            let read = tokio::select! {
                // Input first: no random branch order needed, shutdown is noticed at the next
                // wait anyway.
                biased;
                read = stream.read(spare) => read,
                () = &mut shutdown => return Err("shutdown"),
                () = idle_timer(idle) => return Err("idle timeout"),
            };
            match read {
                Ok(0) => return Err("client closed the connection"),
                Ok(n) => {
                    self.input.filled(n);
                    self.state
                        .stats
                        .net_input_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => return Err("read error"),
            }
        }
    }

    /// Executes the buffered requests of one batch. Any shard lock the batch's writes kept is
    /// released on the way out, even by a panic, before the batch commits.
    fn execute_buffered(&mut self) -> Stop {
        struct Release;
        impl Drop for Release {
            fn drop(&mut self) {
                crate::keyspace::release_held();
            }
        }
        let _release = Release;
        let Self {
            state,
            session,
            input,
            parser,
            ahead,
            reply,
            writes,
            pipeline_max,
            reply_max,
            ..
        } = self;
        let (mut executed, mut errors) = (0u64, 0u64);
        let stop = loop {
            if input.pending_len() == 0 {
                break Stop::NeedInput;
            }
            if ahead.is_exhausted() && !parser.in_progress() {
                ahead.look(
                    state,
                    input.pending_mut(),
                    &state.parse_limits,
                    session.authenticated,
                );
            }
            let authenticated = session.authenticated;
            let consumed = if let Some((consumed, found, args)) = ahead.next(input.pending_mut()) {
                errors += u64::from(commands::execute_found(
                    state, session, found, args, reply, writes,
                ));
                consumed
            } else {
                match parser.parse(
                    input.pending_mut(),
                    &state.parse_limits,
                    session.authenticated,
                ) {
                    Ok(Parsed::Command { consumed }) => {
                        let args = Args::new(input.pending(consumed), parser.spans());
                        errors += u64::from(commands::execute(state, session, args, reply, writes));
                        consumed
                    }
                    Ok(Parsed::Nothing { consumed }) => {
                        input.consume(consumed);
                        continue;
                    }
                    Ok(Parsed::Incomplete) => break Stop::NeedInput,
                    Err(error) => {
                        protocol_error(state, session, reply, error);
                        errors += 1;
                        break Stop::Close;
                    }
                }
            };
            input.consume(consumed);
            executed += 1;
            if session.authenticated != authenticated {
                // The requests parsed ahead were checked against the other limits.
                ahead.clear();
            }
            if session.close_after_reply {
                break Stop::Close;
            }
            if executed as usize >= *pipeline_max || reply.len() >= *reply_max {
                break Stop::Limit;
            }
        };
        if executed > 0 {
            state
                .stats
                .commands_processed
                .fetch_add(executed, Ordering::Relaxed);
            session.client.touch();
        }
        if errors > 0 {
            state
                .stats
                .error_replies
                .fetch_add(errors, Ordering::Relaxed);
        }
        stop
    }

    /// Feeds what the locks of a batch that wrote showed to the placement rules; the thread to
    /// move to, if any.
    fn next_thread(&mut self, locks: LockReport) -> Option<usize> {
        let placement = &self.placement;
        let me = placement.current()?;
        let batch = BatchLocks {
            wrote: true,
            waited: locks
                .waited
                .and_then(|(tag, shard)| Some((placement.index_of(tag)?, shard))),
            wrote_watched: locks.wrote_watched,
        };
        let to = self
            .affinity
            .after_batch(me, batch, placement.len(), |i| placement.load(i));
        self.writes.watch(self.affinity.watched());
        to
    }

    /// Commits the batch's writes, then writes its replies in one write.
    async fn finish_batch(&mut self, stream: &mut TcpStream) -> Result<(), &'static str> {
        if let Err(error) = commit_batch(&self.state, &mut self.writes, &mut self.reply).await {
            tracing::error!(%error, client = self.session.id, "commit failed; write replies became errors");
        }
        if !self.reply.is_empty() {
            let bytes = self.reply.as_bytes();
            stream.write_all(bytes).await.map_err(|_| "write error")?;
            self.state
                .stats
                .net_output_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.reply.clear();
            if self.reply.capacity() > REPLY_KEEP_BYTES {
                self.reply.shrink_to(REPLY_KEEP_BYTES);
            }
        }
        self.parser.shrink(SPANS_KEEP);
        self.ahead.shrink(SPANS_KEEP);
        self.session.client.set_buffer_sizes(BufferSizes {
            query: self.input.pending_len(),
            read: self.input.capacity(),
            output: self.reply.capacity(),
            parser: self.parser.memory_bytes() + self.ahead.memory_bytes(),
        });
        Ok(())
    }
}

/// Answers a protocol error and marks the connection for closing.
fn protocol_error(
    state: &NodeState,
    session: &mut Session,
    reply: &mut ReplyWriter,
    error: ProtocolError,
) {
    let mut text = Vec::new();
    error.reply_text(&mut text);
    reply.error_bytes(&text);
    session.close_after_reply = true;
    state.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client = session.id, %error, "protocol error; closing the connection");
}

/// Completes after `idle` without input, or never.
async fn idle_timer(idle: Option<Duration>) {
    match idle {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}
