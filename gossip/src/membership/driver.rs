//! The tokio shell that runs a [`Membership`] over the QUIC [`Transport`].
//!
//! One task owns the state machine. It feeds it the transport's datagram channel, its own timer
//! heap and the seeds it resolves, executes the effects (datagrams go out through
//! [`Transport::send_datagram`], timers into the heap), forwards member events on a bounded
//! channel and publishes the member table through a `watch` channel, so readers (admin
//! commands, metrics) never wait on the task. Time is `tokio::time::Instant` since the task
//! started, in milliseconds.
//!
//! Seeds are configured as addresses; the driver connects to each (the certificate names the
//! node behind it) and joins through the ones that answer, retrying every `rejoin_period_ms`
//! while this member is not active.
//!
//! [`MembershipHandle::leave`] (or dropping every handle) leaves the cluster gracefully: the
//! leave is sent, the task lingers `leave_linger_ms` so that it reaches peers, then stops.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crdt::NodeId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{
    Effect, LocalStatus, MemberEvent, MemberIdentity, MemberInfo, Membership, MembershipCounters,
    Timer,
};
use crate::error::Result;
use crate::transport::{Inbound, Transport};

/// A generation for a node starting now: the wall clock in milliseconds, which grows from one
/// run to the next unless the clock goes back.
pub fn generation_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The member table as last published by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembersView {
    /// This member's identity.
    pub local: MemberIdentity,
    /// This member's status.
    pub status: LocalStatus,
    /// Every other member ever seen, sorted by node id.
    pub members: Vec<MemberInfo>,
    /// The state machine's counters.
    pub counters: MembershipCounters,
    /// Member events dropped because the event channel was full.
    pub events_dropped: u64,
}

impl MembersView {
    /// The row of `node_id`, if seen.
    pub fn member(&self, node_id: NodeId) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.node_id == node_id)
    }
}

enum Command {
    Leave(oneshot::Sender<()>),
}

/// A handle to a running membership driver. Cheap to clone; when the last handle is dropped the
/// member leaves the cluster and the task stops.
#[derive(Clone, Debug)]
pub struct MembershipHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Arc<MembersView>>,
    task: tokio::task::AbortHandle,
}

impl MembershipHandle {
    /// The member table as of now.
    pub fn view(&self) -> Arc<MembersView> {
        self.view.borrow().clone()
    }

    /// A receiver that is notified whenever the table changes.
    pub fn watch(&self) -> watch::Receiver<Arc<MembersView>> {
        self.view.clone()
    }

    /// Leaves the cluster gracefully and waits until the driver has stopped.
    pub async fn leave(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Stops the driver at once without leaving, as a crash would (for tests and fault drills).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the driver task; returns its handle and the member-event channel (bounded by
/// `events_queue_len_max`; when full, events are dropped and counted, the table stays exact).
///
/// `datagrams` is the transport's datagram channel ([`crate::transport::TransportEvents`]);
/// `seeds` are addresses to join through (this node's own address is skipped).
pub fn spawn(
    membership: Membership,
    transport: Transport,
    datagrams: mpsc::Receiver<Inbound>,
    seeds: Vec<SocketAddr>,
) -> (MembershipHandle, mpsc::Receiver<MemberEvent>) {
    let config = membership.config().clone();
    let (events_tx, events) = mpsc::channel(config.events_queue_len_max);
    let (commands_tx, commands) = mpsc::channel(4);
    let seeds: Vec<SocketAddr> = seeds
        .into_iter()
        .filter(|addr| *addr != transport.local_addr())
        .collect();
    let (resolved_tx, resolved) = mpsc::channel(seeds.len().max(1));
    let (view_tx, view) = watch::channel(Arc::new(view_of(&membership, 0)));
    let driver = Driver {
        membership,
        transport,
        datagrams,
        commands,
        events: events_tx,
        view: view_tx,
        timers: BinaryHeap::new(),
        timer_seq: 0,
        start: Instant::now(),
        seeds,
        resolved_tx,
        resolved,
        resolving: 0,
        events_dropped: 0,
        rejoin_period: Duration::from_millis(config.rejoin_period_ms),
        leave_linger: Duration::from_millis(config.leave_linger_ms),
    };
    let task = tokio::spawn(driver.run());
    let handle = MembershipHandle {
        commands: commands_tx,
        view,
        task: task.abort_handle(),
    };
    (handle, events)
}

fn view_of(membership: &Membership, events_dropped: u64) -> MembersView {
    MembersView {
        local: membership.identity(),
        status: membership.status(),
        members: membership.members().copied().collect(),
        counters: membership.counters(),
        events_dropped,
    }
}

/// A timer in the heap: due first, then foca's order for simultaneous timers, then FIFO.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    due: Instant,
    timer: Timer,
    seq: u64,
}

struct Driver {
    membership: Membership,
    transport: Transport,
    datagrams: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<MemberEvent>,
    view: watch::Sender<Arc<MembersView>>,
    timers: BinaryHeap<Reverse<Scheduled>>,
    timer_seq: u64,
    start: Instant,
    seeds: Vec<SocketAddr>,
    resolved_tx: mpsc::Sender<(SocketAddr, Result<NodeId>)>,
    resolved: mpsc::Receiver<(SocketAddr, Result<NodeId>)>,
    resolving: usize,
    events_dropped: u64,
    rejoin_period: Duration,
    leave_linger: Duration,
}

impl Driver {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self) {
        self.resolve_seeds();
        let mut seed_retry = tokio::time::interval(self.rejoin_period);
        seed_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            self.execute_effects();
            self.publish();
            let next_due = self.timers.peek().map(|Reverse(s)| s.due);
            tokio::select! {
                inbound = self.datagrams.recv() => match inbound {
                    Some(Inbound { from, bytes }) => {
                        let now = self.now_ms();
                        if let Err(e) = self.membership.handle_datagram(from, &bytes, now) {
                            tracing::debug!(%from, error = %e, "SWIM datagram rejected");
                        }
                    }
                    // The transport is gone; nothing more can be said to anyone.
                    None => break,
                },
                () = sleep_until(next_due) => self.fire_due_timers(),
                Some((addr, result)) = self.resolved.recv() => {
                    self.resolving -= 1;
                    match result {
                        Ok(node_id) => {
                            let now = self.now_ms();
                            self.membership.join(&[(node_id, addr)], now);
                        }
                        Err(e) => tracing::debug!(%addr, error = %e, "seed unreachable"),
                    }
                }
                _ = seed_retry.tick() => {
                    if self.transport.is_closed() {
                        // Closed under us without a leave: peers will see this member go down.
                        break;
                    }
                    let status = self.membership.status();
                    if matches!(status, LocalStatus::Joining | LocalStatus::Isolated) {
                        self.resolve_seeds();
                    }
                }
                command = self.commands.recv() => {
                    self.leave().await;
                    if let Some(Command::Leave(done)) = command {
                        let _ = done.send(());
                    }
                    break;
                }
            }
        }
    }

    /// Connects to every seed (one task each) unless a round is still running.
    fn resolve_seeds(&mut self) {
        if self.resolving > 0 {
            return;
        }
        for &addr in &self.seeds {
            self.resolving += 1;
            let transport = self.transport.clone();
            let results = self.resolved_tx.clone();
            tokio::spawn(async move {
                let result = transport.connect(addr).await;
                let _ = results.send((addr, result)).await;
            });
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|Reverse(s)| s.due <= now) {
            let Some(Reverse(scheduled)) = self.timers.pop() else {
                break;
            };
            let now_ms = self.now_ms();
            self.membership.handle_timer(scheduled.timer, now_ms);
        }
    }

    fn execute_effects(&mut self) {
        while let Some(effect) = self.membership.poll_effect() {
            match effect {
                Effect::SendDatagram { to, addr, bytes } => {
                    if let Err(e) = self.transport.send_datagram((to, addr), bytes) {
                        tracing::trace!(%to, error = %e, "SWIM datagram not sent");
                    }
                }
                Effect::ScheduleTimer { after_ms, timer } => {
                    self.timer_seq += 1;
                    self.timers.push(Reverse(Scheduled {
                        due: Instant::now() + Duration::from_millis(after_ms),
                        timer,
                        seq: self.timer_seq,
                    }));
                }
                Effect::Event(event) => {
                    if let MemberEvent::Up { node_id, addr, .. }
                    | MemberEvent::Renewed { node_id, addr, .. } = &event
                    {
                        // Messages addressed by node id alone can now be dialled.
                        self.transport.set_peer_addr(*node_id, *addr);
                    }
                    if let MemberEvent::Down { node_id, .. } = &event {
                        // See `Transport::reset_peer`: recover fast when the network heals.
                        self.transport.reset_peer(*node_id);
                    }
                    tracing::info!(?event, "membership");
                    if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
                        self.events_dropped += 1;
                    }
                }
            }
        }
    }

    fn publish(&self) {
        let view = view_of(&self.membership, self.events_dropped);
        self.view.send_if_modified(|current| {
            if **current == view {
                false
            } else {
                *current = Arc::new(view);
                true
            }
        });
    }

    async fn leave(&mut self) {
        let now = self.now_ms();
        self.membership.leave(now);
        self.execute_effects();
        self.publish();
        // Give the leave time to go out before whoever owns the transport closes it; datagrams
        // arriving meanwhile are read and ignored so the transport's channel does not fill.
        let linger = tokio::time::sleep(self.leave_linger);
        tokio::pin!(linger);
        loop {
            tokio::select! {
                () = &mut linger => break,
                inbound = self.datagrams.recv() => if inbound.is_none() { break },
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
