//! The tokio shell that runs a [`Replicator`] over the QUIC [`Transport`].
//!
//! One task owns the replicator and the node's [`Replica`]. It is fed by four bounded channels —
//! the transport's received messages, membership events, local deltas from the node
//! ([`ReplicationHandle::submit`]) and admin commands — and by the replicator's own timer. It
//! executes effects by sending through [`Transport::send_message`] (which never waits) and
//! publishes a [`ReplicationStatus`] through a `watch` channel, so readers never wait on the task.
//!
//! Each turn of the loop samples the node's clock, *then* drains the local delta channel, then
//! hands the sample to the replicator: that order is what makes the freshness watermark a
//! guarantee (see "Freshness" in [`super`]). A local delta that does not fit the channel is
//! dropped and counted; the next turn turns the loss into a visible gap in the stream.
//!
//! The replica's methods run on this task: they should be quick (the node's keyspace takes a
//! shard lock; merges write to RocksDB, which is as fast as an acknowledged write).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crdt::{NodeId, Timestamp, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Effect, Mode, PeerStatus, Replica, ReplicationMetrics, Replicator};
use crate::membership::MemberEvent;
use crate::transport::{Inbound, Transport};

/// The delta of one local write, as the node hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalDelta {
    /// The key written.
    pub key: Vec<u8>,
    /// The write's delta.
    pub delta: Value,
    /// The write's HLC timestamp.
    pub ts: Timestamp,
}

/// What the driver last published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// This node.
    pub node_id: NodeId,
    /// This run's delta stream id.
    pub stream: u64,
    /// The mode.
    pub mode: Mode,
    /// Every member not known to have left (lags as of publication; see
    /// [`ReplicationHandle::peers`] for current ones).
    pub peers: Vec<PeerStatus>,
    /// The counters.
    pub metrics: ReplicationMetrics,
    /// [`Replicator::caught_up`]: this run has completed anti-entropy with every member it
    /// knows (a node that may have come back without its data accepts writes only then).
    pub caught_up: bool,
}

enum Command {
    Forget(NodeId),
}

/// A handle to a running replication driver. Cheap to clone; the task stops when the last handle
/// is dropped (or the transport closes).
#[derive(Clone)]
pub struct ReplicationHandle {
    deltas: mpsc::Sender<Vec<LocalDelta>>,
    dropped: Arc<AtomicU64>,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Arc<ReplicationStatus>>,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for ReplicationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationHandle")
            .field("status", &self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl ReplicationHandle {
    /// Hands over the deltas of one committed batch of local writes. Never waits: if the queue
    /// is full they are dropped, counted, and repaired by anti-entropy (returns `false`).
    pub fn submit(&self, deltas: Vec<LocalDelta>) -> bool {
        if deltas.is_empty() {
            return true;
        }
        let n = deltas.len() as u64;
        match self.deltas.try_send(deltas) {
            Ok(()) => true,
            Err(_) => {
                // SeqCst: the driver reads this after sampling the clock; a drop that happened
                // before an acknowledgement must be seen by the next sample's turn.
                self.dropped.fetch_add(n, Ordering::SeqCst);
                false
            }
        }
    }

    /// Hands over one local write's delta (see [`Self::submit`]).
    pub fn submit_delta(&self, key: Vec<u8>, delta: Value, ts: Timestamp) -> bool {
        self.submit(vec![LocalDelta { key, delta, ts }])
    }

    /// The status as last published.
    pub fn status(&self) -> Arc<ReplicationStatus> {
        self.status.borrow().clone()
    }

    /// A receiver notified whenever the status changes.
    pub fn watch(&self) -> watch::Receiver<Arc<ReplicationStatus>> {
        self.status.clone()
    }

    /// Every member not known to have left, with lags computed against the clock now.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let now = (self.clock)().physical_ms;
        let mut peers = self.status.borrow().peers.clone();
        for p in &mut peers {
            p.lag_ms = p.synced_at.map(|s| now.saturating_sub(s.physical_ms));
        }
        peers
    }

    /// The node's mode.
    pub fn mode(&self) -> Mode {
        self.status.borrow().mode
    }

    /// Whether this run has caught up with every member it knows (see
    /// [`Replicator::caught_up`]).
    pub fn caught_up(&self) -> bool {
        self.status.borrow().caught_up
    }

    /// The counters.
    pub fn metrics(&self) -> ReplicationMetrics {
        self.status.borrow().metrics.clone()
    }

    /// The staleness bound of a local read now, ms (`None` if some member was never synced).
    pub fn staleness_ms(&self) -> Option<u64> {
        self.peers()
            .iter()
            .try_fold(0, |acc: u64, p| Some(acc.max(p.lag_ms?)))
    }

    /// Forgets a member that is gone for good without having left (see
    /// [`Replicator::forget_member`]).
    pub async fn forget_member(&self, node_id: NodeId) {
        let _ = self.commands.send(Command::Forget(node_id)).await;
    }

    /// Stops the driver at once (tests, shutdown).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the driver task. `clock` reads the node's hybrid clock (at least its wall clock and
/// every timestamp it issued); `messages` is the transport's message channel
/// ([`crate::transport::TransportEvents`]); `member_events` comes from the membership driver.
pub fn spawn<R: Replica + Send + 'static>(
    replicator: Replicator,
    replica: R,
    clock: impl Fn() -> Timestamp + Send + Sync + 'static,
    transport: Transport,
    messages: mpsc::Receiver<Inbound>,
    member_events: mpsc::Receiver<MemberEvent>,
) -> ReplicationHandle {
    let (deltas_tx, deltas) = mpsc::channel(replicator.config().local_queue_len_max);
    let (commands_tx, commands) = mpsc::channel(16);
    let (status_tx, status) = watch::channel(Arc::new(status_of(&replicator)));
    let dropped = Arc::new(AtomicU64::new(0));
    let clock: Arc<dyn Fn() -> Timestamp + Send + Sync> = Arc::new(clock);
    let driver = Driver {
        replicator,
        replica,
        clock: clock.clone(),
        transport,
        messages: Some(messages),
        member_events: Some(member_events),
        deltas,
        dropped: dropped.clone(),
        commands,
        status: status_tx,
        start: Instant::now(),
    };
    let task = tokio::spawn(driver.run());
    ReplicationHandle {
        deltas: deltas_tx,
        dropped,
        commands: commands_tx,
        status,
        clock,
        task: task.abort_handle(),
    }
}

fn status_of(r: &Replicator) -> ReplicationStatus {
    ReplicationStatus {
        node_id: r.node_id(),
        stream: r.stream(),
        mode: r.mode(),
        peers: r.peers(),
        metrics: r.metrics().clone(),
        caught_up: r.caught_up(),
    }
}

struct Driver<R> {
    replicator: Replicator,
    replica: R,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    transport: Transport,
    messages: Option<mpsc::Receiver<Inbound>>,
    member_events: Option<mpsc::Receiver<MemberEvent>>,
    deltas: mpsc::Receiver<Vec<LocalDelta>>,
    dropped: Arc<AtomicU64>,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<Arc<ReplicationStatus>>,
    start: Instant,
}

impl<R: Replica + Send + 'static> Driver<R> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self) {
        loop {
            // Sample first, drain second: see the module docs.
            let clock = (self.clock)();
            let now = self.now_ms();
            let mut open = true;
            loop {
                match self.deltas.try_recv() {
                    Ok(batch) => self.submit(batch, now),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.replicator
                .local_deltas_dropped(self.dropped.swap(0, Ordering::SeqCst));
            self.replicator.set_clock(clock, now);
            self.execute_effects();
            self.publish();
            if !open {
                // Every handle is gone: the node is shutting down.
                break;
            }
            let deadline = self
                .replicator
                .poll_timeout()
                .map(|t| self.start + std::time::Duration::from_millis(t));
            tokio::select! {
                batch = self.deltas.recv() => match batch {
                    Some(batch) => {
                        let now = self.now_ms();
                        self.submit(batch, now);
                    }
                    None => break,
                },
                inbound = recv(&mut self.messages) => match inbound {
                    Some(Inbound { from, bytes }) => {
                        let now = self.now_ms();
                        if let Err(e) = self.replicator.handle_message(&mut self.replica, from, &bytes, now) {
                            tracing::debug!(%from, error = %e, "replication message refused");
                        }
                    }
                    // The transport is gone; nothing more can be said to anyone.
                    None => break,
                },
                event = recv(&mut self.member_events) => match event {
                    Some(event) => {
                        let now = self.now_ms();
                        self.replicator.handle_member_event(&mut self.replica, &event, now);
                    }
                    None => self.member_events = None,
                },
                Some(command) = self.commands.recv() => match command {
                    Command::Forget(node_id) => {
                        let now = self.now_ms();
                        self.replicator.forget_member(node_id, now);
                    }
                },
                () = sleep_until(deadline) => {
                    let now = self.now_ms();
                    self.replicator.handle_timeout(&mut self.replica, now);
                }
            }
        }
    }

    fn submit(&mut self, batch: Vec<LocalDelta>, now: u64) {
        for d in batch {
            self.replicator.submit_delta(d.key, d.delta, d.ts, now);
        }
    }

    fn execute_effects(&mut self) {
        while let Some(effect) = self.replicator.poll_effect() {
            match effect {
                Effect::Send { to, bytes } => {
                    if let Err(e) = self.transport.send_message(to, bytes) {
                        tracing::trace!(%to, error = %e, "replication message not sent");
                        self.replicator.send_failed(to);
                    }
                }
            }
        }
    }

    fn publish(&self) {
        let status = status_of(&self.replicator);
        self.status.send_if_modified(|current| {
            if **current == status {
                false
            } else {
                *current = Arc::new(status);
                true
            }
        });
    }
}

/// Receives from a channel that may have been closed (then never ready).
async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
