//! Connection threads: client connections run on a fixed set of OS threads, each with its own
//! single-threaded tokio runtime, and a connection stays on the thread it was given unless the
//! writers of a hot key gather on one thread ([`super::affinity`]).
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
//! accepted socket to the thread with the fewest connections. A connection that moves hands
//! itself over the same way, between two batches ([`Placement::hand_to`]): its socket is
//! deregistered from one runtime and registered with the other, and its state goes along.
//! Commands are executed synchronously and the storage committer is runtime-agnostic, so
//! nothing a connection does needs the main runtime.
//!
//! Shutdown: [`ConnectionThreads::shutdown`] stops the threads; connections still running on
//! them are dropped (the server first gives them `server.shutdown_timeout_ms` to finish).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

/// A connection to start on a thread: given the socket registered with that thread's runtime,
/// it returns the connection's future.
pub type Start =
    Box<dyn FnOnce(tokio::net::TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Handoff {
    stream: std::net::TcpStream,
    start: Start,
}

/// What a connection can see of the threads: their loads, and how to hand a connection to one.
struct Slot {
    tx: mpsc::UnboundedSender<Handoff>,
    /// Connections running on the thread, or handed to it.
    load: AtomicUsize,
    /// The thread's [`crate::keyspace::thread_tag`] (0 until it has started).
    tag: AtomicU32,
}

/// The connection threads as the connections see them: shared, so that a connection can move
/// itself to another thread ([`super::affinity`]).
pub struct Placement {
    slots: Box<[Slot]>,
}

thread_local! {
    /// The index of the connection thread this is, if it is one.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The connection threads of a server.
pub struct ConnectionThreads {
    placement: Arc<Placement>,
    threads: Vec<(JoinHandle<()>, oneshot::Sender<()>)>,
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
        let count = count.max(1);
        let mut receivers = Vec::with_capacity(count);
        let mut slots = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::unbounded_channel::<Handoff>();
            receivers.push(rx);
            slots.push(Slot {
                tx,
                load: AtomicUsize::new(0),
                tag: AtomicU32::new(0),
            });
        }
        let placement = Arc::new(Placement {
            slots: slots.into(),
        });
        let mut threads = Vec::with_capacity(count);
        for (i, mut rx) in receivers.into_iter().enumerate() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
            let placement = Arc::clone(&placement);
            let handle = std::thread::Builder::new()
                .name(format!("crdtkv-conn-{i}"))
                .spawn(move || {
                    CURRENT.with(|c| c.set(Some(i)));
                    placement.slots[i]
                        .tag
                        .store(crate::keyspace::thread_tag(), Ordering::Relaxed);
                    runtime.block_on(async move {
                        loop {
                            // The channel never closes while connections can still move (they
                            // hold `placement`, and so its senders): a stop of its own ends it.
                            let handoff = tokio::select! {
                                handoff = rx.recv() => handoff,
                                _ = &mut stop_rx => None,
                            };
                            let Some(Handoff { stream, start }) = handoff else {
                                break;
                            };
                            let placement = Arc::clone(&placement);
                            match tokio::net::TcpStream::from_std(stream) {
                                Ok(stream) => {
                                    let connection = start(stream);
                                    tokio::spawn(async move {
                                        connection.await;
                                        placement.slots[i].load.fetch_sub(1, Ordering::Relaxed);
                                    });
                                }
                                Err(error) => {
                                    placement.slots[i].load.fetch_sub(1, Ordering::Relaxed);
                                    tracing::warn!(%error, "cannot register a connection's socket");
                                }
                            }
                        }
                    });
                    // Dropping the runtime here drops the connections still running.
                })?;
            threads.push((handle, stop_tx));
        }
        Ok(ConnectionThreads { placement, threads })
    }

    /// Number of threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// The threads as connections see them.
    pub fn placement(&self) -> Arc<Placement> {
        Arc::clone(&self.placement)
    }

    /// Runs the connection `start` makes of `stream` on the least loaded thread.
    pub fn spawn(&self, stream: tokio::net::TcpStream, start: Start) -> std::io::Result<()> {
        let p = &self.placement;
        let least = (0..p.len())
            .min_by_key(|&i| p.load(i))
            .expect("at least one connection thread");
        p.hand_to(least, stream.into_std()?, start)
    }

    /// Stops every thread and waits for them; connections still running are dropped.
    pub fn shutdown(self) {
        for (handle, stop) in self.threads {
            // An error means the thread has already ended.
            let _ = stop.send(());
            if handle.join().is_err() {
                tracing::error!("a connection thread panicked");
            }
        }
    }
}

impl Placement {
    /// Number of threads.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Connections on thread `index`.
    pub fn load(&self, index: usize) -> usize {
        self.slots[index].load.load(Ordering::Relaxed)
    }

    /// The index of the connection thread calling, if it is one of these.
    pub fn current(&self) -> Option<usize> {
        CURRENT.with(Cell::get).filter(|&i| {
            self.slots
                .get(i)
                .is_some_and(|s| s.tag.load(Ordering::Relaxed) == crate::keyspace::thread_tag())
        })
    }

    /// The index of the thread whose [`crate::keyspace::thread_tag`] is `tag`.
    pub fn index_of(&self, tag: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.tag.load(Ordering::Relaxed) == tag)
    }

    /// Runs the connection `start` makes of `stream` on thread `index`, which counts it from
    /// now on. Fails only once the thread has stopped (at shutdown).
    pub fn hand_to(
        &self,
        index: usize,
        stream: std::net::TcpStream,
        start: Start,
    ) -> std::io::Result<()> {
        let slot = &self.slots[index];
        slot.load.fetch_add(1, Ordering::Relaxed);
        if slot.tx.send(Handoff { stream, start }).is_err() {
            slot.load.fetch_sub(1, Ordering::Relaxed);
            return Err(std::io::Error::other("the connection thread has stopped"));
        }
        Ok(())
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

    /// A connection handed to a given thread runs there, knows it, and counts there until it
    /// ends.
    #[tokio::test]
    async fn a_connection_handed_to_a_thread_runs_and_counts_there() {
        let threads = ConnectionThreads::start(2).unwrap();
        let placement = threads.placement();
        assert_eq!(
            placement.current(),
            None,
            "the test's thread is none of them"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let there = Arc::clone(&placement);
        let start: Start = Box::new(move |mut stream| {
            Box::pin(async move {
                let me = there.current();
                let by_tag = there.index_of(crate::keyspace::thread_tag());
                let name = std::thread::current().name().unwrap().to_owned();
                seen_tx.send((name, me, by_tag)).unwrap();
                let mut byte = [0u8; 1];
                let _ = stream.read(&mut byte).await;
            })
        });
        placement
            .hand_to(1, server_side.into_std().unwrap(), start)
            .unwrap();
        let seen = seen_rx.recv().await.unwrap();
        assert_eq!(seen, ("crdtkv-conn-1".to_owned(), Some(1), Some(1)));
        assert_eq!((placement.load(0), placement.load(1)), (0, 1));
        // The connection ends when the client leaves; its thread stops counting it.
        client.shutdown().await.unwrap();
        drop(client);
        while placement.load(1) != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::task::spawn_blocking(move || threads.shutdown())
            .await
            .unwrap();
        // A stopped thread takes no connection.
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let refused = placement.hand_to(0, client, Box::new(|_| Box::pin(async {})));
        assert!(refused.is_err());
        assert_eq!(placement.load(0), 0);
    }

    #[test]
    fn zero_means_one_per_core() {
        assert!(thread_count(0) >= 1);
        assert_eq!(thread_count(3), 3);
    }
}
