//! The RESP server: a TCP listener and one task per connection.
//!
//! * [`serve`] accepts connections until shutdown is requested, then stops accepting, tells
//!   every connection to finish, and waits (at most `server.shutdown_timeout_ms`) for them to
//!   write the replies of the batch they are executing.
//! * [`connection`] is the per-connection loop: read, parse every complete request, execute
//!   in order, commit the batch's writes once, write all replies in one write; [`ahead`]
//!   parses the requests of a batch ahead, to prefetch their keys and run them from there.
//! * [`threads`] runs the connections: a fixed set of threads, each with its own event loop,
//!   a connection staying on the thread it was given unless [`affinity`] moves it (the
//!   writers of a hot key gather on one thread).
//! * [`input`] is the connection's read buffer; [`signals`] turns SIGINT/SIGTERM into the
//!   shutdown request.

pub mod affinity;
pub mod ahead;
pub mod connection;
pub mod input;
pub mod signals;
pub mod threads;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::state::NodeState;
use connection::Ended;
use threads::{ConnectionThreads, Placement};

/// How long the accept loop pauses after an accept error (out of file descriptors, for
/// example) before trying again, instead of spinning on the error.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// Binds the RESP listener on `server.bind:server.port`.
pub async fn bind(state: &NodeState) -> std::io::Result<TcpListener> {
    let server = &state.config.server;
    let addr: SocketAddr = listen_addr(&server.bind, server.port)
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    TcpListener::bind(addr).await
}

/// The address a `bind` value and port form (IPv6 addresses are bracketed).
pub fn listen_addr(bind: &str, port: u32) -> String {
    if bind.contains(':') {
        format!("[{bind}]:{port}")
    } else {
        format!("{bind}:{port}")
    }
}

/// Serves clients on `listener` until `shutdown` completes, then drains the connections.
/// Connections run on `server.connection_threads` threads of their own ([`threads`]).
pub async fn serve(
    state: Arc<NodeState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let threads = ConnectionThreads::start(threads::thread_count(
        state.config.server.connection_threads,
    ))?;
    tracing::info!(threads = threads.len(), "connection threads started");
    let placement = threads.placement();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `done_tx`; when the last one is dropped,
    // `done_rx` yields `None`: all connections have finished.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    state.stats.connections_received.fetch_add(1, Ordering::Relaxed);
                    let (state, stop, done) = (Arc::clone(&state), stop_rx.clone(), done_tx.clone());
                    let to_run = Arc::clone(&placement);
                    let start: threads::Start = Box::new(move |stream| {
                        Box::pin(async move {
                            let placement = Arc::clone(&to_run);
                            let ended = connection::run(state, to_run, stream, peer, stop).await;
                            carry_on(ended, placement, done);
                        })
                    });
                    if let Err(error) = threads.spawn(stream, start) {
                        tracing::warn!(%error, %peer, "cannot hand a connection to a thread");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                }
            }
        }
    }
    drop(listener);
    let open = state.clients.len();
    tracing::info!(
        connections = open,
        "shutting down: no longer accepting connections"
    );
    // Fails only if no connection holds a receiver, which is fine: none to tell.
    let _ = stop_tx.send(true);
    drop(done_tx);
    let timeout = Duration::from_millis(state.config.server.shutdown_timeout_ms);
    if tokio::time::timeout(timeout, done_rx.recv()).await.is_err() {
        tracing::warn!(
            connections = state.clients.len(),
            timeout_ms = state.config.server.shutdown_timeout_ms,
            "connections still busy at the shutdown timeout; closing them"
        );
    }
    // Joining blocks until each thread has dropped what it still runs: moments, since every
    // connection has finished or is past its timeout.
    if tokio::task::spawn_blocking(move || threads.shutdown())
        .await
        .is_err()
    {
        tracing::error!("stopping the connection threads panicked");
    }
    Ok(())
}

/// Hands a connection that moves to its new thread, which resumes it ([`Ended::Moved`]).
/// `done` goes along: the connection counts as running until it has ended on its last thread.
fn carry_on(ended: Ended, placement: Arc<Placement>, done: mpsc::Sender<()>) {
    let Ended::Moved { to, stream, paused } = ended else {
        // Ended for good: shutdown no longer waits for it.
        drop(done);
        return;
    };
    let to_run = Arc::clone(&placement);
    let start: threads::Start = Box::new(move |stream| {
        Box::pin(async move {
            let ended = connection::resume(paused, stream).await;
            carry_on(ended, to_run, done);
        })
    });
    if let Err(error) = placement.hand_to(to, stream, start) {
        // Only at shutdown: the connection is dropped, as it would be on its own thread.
        tracing::debug!(%error, "cannot move a connection to another thread");
    }
}

/// Refuses a connection beyond `server.connections_max` the way Redis does.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    // The client may already be gone; there is nothing else to do for it either way.
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}
