//! Connection threads: client connections run on a fixed set of OS threads, each with its own
//! single-threaded tokio runtime, and a connection stays on the thread it was given.
//!
//! Why not tokio's work-stealing runtime for connections: a RESP connection's work is small and
//! strictly sequential (read, execute, commit, write), and there are many of them. On the
//! multi-threaded runtime every readiness event the IO driver delivers also wakes an idle
//! worker to steal the new task, and tasks move between cores with their buffers. With 50
//! clients at pipeline depth 1 that cost a third of the write throughput on two cores
//! (`redis-benchmark -c 50 -P 1 -t set`: 70k requests/s with two work-stealing workers,
//! 115k with one thread). A runtime per thread is Redis' event loop, once per thread: each
//! thread polls its own sockets, and a connection's wake-ups, buffers and group-commit
//! hand-offs stay on one core. Several threads still serve many busy clients in parallel.
//!
//! The accept loop (on the node's main runtime, which also runs the cluster) hands each
//! accepted socket to the thread with the fewest connections. Commands are executed
//! synchronously and the storage committer is runtime-agnostic, so nothing a connection does
//! needs the main runtime.
//!
//! Shutdown: [`ConnectionThreads::shutdown`] stops the threads; connections still running on
//! them are dropped (the server first gives them `server.shutdown_timeout_ms` to finish).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// A connection to start on a thread: given the socket registered with that thread's runtime,
/// it returns the connection's future.
pub type Start =
    Box<dyn FnOnce(tokio::net::TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Handoff {
    stream: std::net::TcpStream,
    start: Start,
}

struct Thread {
    tx: mpsc::UnboundedSender<Handoff>,
    /// Connections running on the thread.
    load: Arc<AtomicUsize>,
    handle: JoinHandle<()>,
}

/// The connection threads of a server.
pub struct ConnectionThreads {
    threads: Vec<Thread>,
}

/// The number of threads `configured` asks for: itself, or for 0 one per CPU core.
///
/// Why not one core fewer, left to RocksDB's flushes (Redis' advice for its I/O threads): on
/// the 2-core test machine, with `redis-benchmark` beside the server, one thread served reads
/// and `-P 1` faster (GET `-P 16` 1.68M against 1.04M requests/s) but pipelined writes slower
/// (INCR `-P 16` 546k against 620k), because a lone thread also does every log write.
pub fn thread_count(configured: u64) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

impl ConnectionThreads {
    /// Starts `count` threads (at least one), named `crdtkv-conn-N`.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, mut rx) = mpsc::unbounded_channel::<Handoff>();
            let load = Arc::new(AtomicUsize::new(0));
            let thread_load = Arc::clone(&load);
            let handle = std::thread::Builder::new()
                .name(format!("crdtkv-conn-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(Handoff { stream, start }) = rx.recv().await {
                            let load = Arc::clone(&thread_load);
                            match tokio::net::TcpStream::from_std(stream) {
                                Ok(stream) => {
                                    let connection = start(stream);
                                    tokio::spawn(async move {
                                        connection.await;
                                        load.fetch_sub(1, Ordering::Relaxed);
                                    });
                                }
                                Err(error) => {
                                    load.fetch_sub(1, Ordering::Relaxed);
                                    tracing::warn!(%error, "cannot register an accepted socket");
                                }
                            }
                        }
                    });
                    // Dropping the runtime here drops the connections still running.
                })?;
            threads.push(Thread { tx, load, handle });
        }
        Ok(ConnectionThreads { threads })
    }

    /// Number of threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Runs the connection `start` makes of `stream` on the least loaded thread.
    pub fn spawn(&self, stream: tokio::net::TcpStream, start: Start) -> std::io::Result<()> {
        let stream = stream.into_std()?;
        let thread = self
            .threads
            .iter()
            .min_by_key(|t| t.load.load(Ordering::Relaxed))
            .expect("at least one connection thread");
        thread.load.fetch_add(1, Ordering::Relaxed);
        if thread.tx.send(Handoff { stream, start }).is_err() {
            // Only after the thread ended, which happens only at shutdown.
            thread.load.fetch_sub(1, Ordering::Relaxed);
            return Err(std::io::Error::other("the connection thread has stopped"));
        }
        Ok(())
    }

    /// Stops every thread and waits for them; connections still running are dropped.
    pub fn shutdown(self) {
        for thread in self.threads {
            drop(thread.tx);
            if thread.handle.join().is_err() {
                tracing::error!("a connection thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Connections go to the least loaded thread, run there, and are dropped at shutdown.
    #[tokio::test]
    async fn connections_run_on_the_least_loaded_thread() {
        let threads = ConnectionThreads::start(2).unwrap();
        assert_eq!(threads.len(), 2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let (names_tx, mut names_rx) = mpsc::unbounded_channel();
        for _ in 0..4 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
            let (server_side, _) = listener.accept().await.unwrap();
            let names = names_tx.clone();
            threads
                .spawn(
                    server_side,
                    Box::new(move |mut stream| {
                        Box::pin(async move {
                            let name = std::thread::current().name().unwrap().to_owned();
                            names.send(name.clone()).unwrap();
                            let mut byte = [0u8; 1];
                            // Echo one byte, then hold the connection until the client leaves.
                            stream.read_exact(&mut byte).await.unwrap();
                            stream.write_all(&byte).await.unwrap();
                            let _ = stream.read(&mut byte).await;
                        })
                    }),
                )
                .unwrap();
        }
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(names_rx.recv().await.unwrap());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "crdtkv-conn-0",
                "crdtkv-conn-0",
                "crdtkv-conn-1",
                "crdtkv-conn-1"
            ]
        );
        for client in &mut clients {
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"x");
        }
        // Shutdown drops the connections still open: the clients see them close.
        tokio::task::spawn_blocking(move || threads.shutdown())
            .await
            .unwrap();
        for client in &mut clients {
            let mut byte = [0u8; 1];
            assert_eq!(client.read(&mut byte).await.unwrap(), 0);
        }
    }

    #[test]
    fn zero_means_one_per_core() {
        assert!(thread_count(0) >= 1);
        assert_eq!(thread_count(3), 3);
    }
}
