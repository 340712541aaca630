//! State shared by the transport handle and its IO tasks: the peer table, pending dials, the cut
//! set and the counters.
//!
//! One `parking_lot` mutex guards the peer table. It is held only for map updates and is never
//! held across an `.await`, so every IO task stays independent; sends are synchronous and never
//! wait for the network.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crdt::NodeId;
use parking_lot::{Mutex, RwLock};
use quinn::{Connection, VarInt};
use tokio::sync::{mpsc, oneshot};

use super::counters::Counters;
use super::{Inbound, PeerEvent, Target, TransportConfig, tasks};
use crate::error::{Error, Result};

/// QUIC application close codes, visible in the peer's logs.
pub(crate) const CLOSE_SHUTDOWN: VarInt = VarInt::from_u32(0);
pub(crate) const CLOSE_DUPLICATE: VarInt = VarInt::from_u32(1);
pub(crate) const CLOSE_REFUSED: VarInt = VarInt::from_u32(2);
pub(crate) const CLOSE_PEER_DOWN: VarInt = VarInt::from_u32(3);

pub(crate) struct Senders {
    pub(crate) datagrams: mpsc::Sender<Inbound>,
    pub(crate) messages: mpsc::Sender<Inbound>,
    pub(crate) peers: mpsc::Sender<PeerEvent>,
}

pub(crate) struct Shared {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) local_id: NodeId,
    pub(crate) local_addr: SocketAddr,
    pub(crate) config: TransportConfig,
    pub(crate) client_config: quinn::ClientConfig,
    pub(crate) counters: Counters,
    pub(crate) tx: Senders,
    pub(crate) closed: AtomicBool,
    /// Incoming handshakes in progress; counted against `connections_max` with live ones.
    pub(crate) handshaking: AtomicUsize,
    cut: RwLock<BTreeSet<NodeId>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The connection used to send to each peer.
    links: HashMap<NodeId, Link>,
    /// Every live authenticated connection by `stable_id`, including duplicates in their grace
    /// period, so that a partition can close them all.
    conns: HashMap<usize, (NodeId, Connection)>,
    /// Last known dial address of each node.
    addrs: HashMap<NodeId, SocketAddr>,
    dials: HashMap<DialKey, Dial>,
    /// Addresses whose last dial failed, until when sends to them are dropped.
    backoff: HashMap<SocketAddr, Instant>,
}

struct Link {
    conn: Connection,
    /// Messages for this peer; outlives connection replacement, one writer task drains it.
    queue: mpsc::Sender<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DialKey {
    pub(crate) addr: SocketAddr,
    pub(crate) expected: Option<NodeId>,
}

#[derive(Default)]
struct Dial {
    datagrams: Vec<Bytes>,
    messages: Vec<Bytes>,
    waiters: Vec<oneshot::Sender<Result<NodeId>>>,
}

/// Where a send goes.
pub(crate) enum Route {
    /// The peer is cut: drop silently, as a real partition would.
    Cut,
    /// An authenticated connection exists.
    Linked {
        peer: NodeId,
        conn: Connection,
        queue: mpsc::Sender<Bytes>,
    },
    /// No connection yet: queue behind a dial.
    Dial(DialKey),
}

pub(crate) enum Pending {
    Datagram(Bytes),
    Message(Bytes),
}

impl Shared {
    pub(crate) fn new(
        endpoint: quinn::Endpoint,
        local_id: NodeId,
        local_addr: SocketAddr,
        config: TransportConfig,
        client_config: quinn::ClientConfig,
        tx: Senders,
    ) -> Self {
        Shared {
            endpoint,
            local_id,
            local_addr,
            config,
            client_config,
            counters: Counters::default(),
            tx,
            closed: AtomicBool::new(false),
            handshaking: AtomicUsize::new(0),
            cut: RwLock::new(BTreeSet::new()),
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_cut(&self, peer: NodeId) -> bool {
        self.cut.read().contains(&peer)
    }

    pub(crate) fn cut_set(&self) -> BTreeSet<NodeId> {
        self.cut.read().clone()
    }

    /// Adds `peers` to the cut set and closes every connection to them.
    pub(crate) fn partition(&self, peers: &[NodeId]) {
        self.cut.write().extend(peers.iter().copied());
        self.close_peers(peers, CLOSE_REFUSED, b"partitioned");
    }

    /// Closes every connection to `peer`; the next send dials a new one.
    pub(crate) fn reset_peer(&self, peer: NodeId) {
        self.close_peers(&[peer], CLOSE_PEER_DOWN, b"declared down");
    }

    fn close_peers(&self, peers: &[NodeId], code: VarInt, reason: &[u8]) {
        let victims: Vec<Connection> = {
            let st = self.state.lock();
            st.conns
                .values()
                .filter(|(peer, _)| peers.contains(peer))
                .map(|(_, conn)| conn.clone())
                .collect()
        };
        for conn in victims {
            conn.close(code, reason);
        }
    }

    pub(crate) fn heal(&self) {
        self.cut.write().clear();
        // A healed peer must be dialled at once, not after a backoff earned while it was cut.
        self.state.lock().backoff.clear();
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.state.lock().conns.len()
    }

    pub(crate) fn set_peer_addr(&self, peer: NodeId, addr: SocketAddr) {
        self.state.lock().addrs.insert(peer, addr);
    }

    pub(crate) fn connected_peers(&self) -> Vec<(NodeId, SocketAddr)> {
        let st = self.state.lock();
        let mut peers: Vec<_> = st
            .links
            .iter()
            .map(|(id, link)| (*id, link.conn.remote_address()))
            .collect();
        peers.sort();
        peers
    }

    pub(crate) fn link_conn(&self, peer: NodeId) -> Option<Connection> {
        self.state.lock().links.get(&peer).map(|l| l.conn.clone())
    }

    fn is_link_conn(&self, peer: NodeId, stable_id: usize) -> bool {
        self.state
            .lock()
            .links
            .get(&peer)
            .is_some_and(|l| l.conn.stable_id() == stable_id)
    }

    /// Decides where a send to `to` goes, remembering any address it names.
    pub(crate) fn route(&self, to: Target) -> Result<Route> {
        let (id, addr) = match to {
            Target::Node(id) => (Some(id), None),
            Target::Addr(addr) => (None, Some(addr)),
            Target::NodeAt(id, addr) => (Some(id), Some(addr)),
        };
        if let Some(id) = id {
            if self.is_cut(id) {
                return Ok(Route::Cut);
            }
            if id == self.local_id {
                return Err(Error::SelfConnection(addr.unwrap_or(self.local_addr)));
            }
        }
        if addr == Some(self.local_addr) {
            return Err(Error::SelfConnection(self.local_addr));
        }
        let mut st = self.state.lock();
        if let (Some(id), Some(addr)) = (id, addr) {
            st.addrs.insert(id, addr);
        }
        let linked = match id {
            Some(id) => st.links.get_key_value(&id),
            None => st
                .links
                .iter()
                .find(|(_, l)| Some(l.conn.remote_address()) == addr),
        };
        if let Some((peer, link)) = linked {
            return Ok(Route::Linked {
                peer: *peer,
                conn: link.conn.clone(),
                queue: link.queue.clone(),
            });
        }
        let addr = match (id, addr) {
            (_, Some(addr)) => addr,
            (Some(id), None) => *st.addrs.get(&id).ok_or(Error::UnknownPeer(id))?,
            (None, None) => unreachable!("a target names a node, an address or both"),
        };
        Ok(Route::Dial(DialKey { addr, expected: id }))
    }

    /// Queues `item` behind a dial of `key`, starting the dial if none is in flight.
    pub(crate) fn enqueue_dial(self: &Arc<Self>, key: DialKey, item: Pending) -> Result<()> {
        let mut st = self.state.lock();
        let now = Instant::now();
        if let Some(until) = st.backoff.get(&key.addr).copied() {
            if until > now {
                drop(st);
                Counters::inc(&self.counters.dropped_unreachable);
                return Err(Error::Connect {
                    addr: key.addr,
                    reason: "a recent dial failed; backing off".into(),
                });
            }
            st.backoff.remove(&key.addr);
        }
        let start = !st.dials.contains_key(&key);
        let dial = st.dials.entry(key).or_default();
        if dial.datagrams.len() + dial.messages.len() >= self.config.send_queue_len_max {
            drop(st);
            Counters::inc(&self.counters.dropped_queue_full);
            return Err(Error::QueueFull {
                peer: key.addr.to_string(),
            });
        }
        match item {
            Pending::Datagram(bytes) => dial.datagrams.push(bytes),
            Pending::Message(bytes) => dial.messages.push(bytes),
        }
        drop(st);
        if start {
            tokio::spawn(tasks::dial(self.clone(), key));
        }
        Ok(())
    }

    /// Dials `addr` (ignoring backoff: the caller asked explicitly) and reports the node id
    /// behind it; reuses a live connection to that address.
    pub(crate) async fn connect(self: &Arc<Self>, addr: SocketAddr) -> Result<NodeId> {
        if addr == self.local_addr {
            return Err(Error::SelfConnection(addr));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.state.lock();
            if let Some((id, _)) = st
                .links
                .iter()
                .find(|(_, l)| l.conn.remote_address() == addr)
            {
                return Ok(*id);
            }
            let key = DialKey {
                addr,
                expected: None,
            };
            let start = !st.dials.contains_key(&key);
            st.dials.entry(key).or_default().waiters.push(tx);
            if start {
                tokio::spawn(tasks::dial(self.clone(), key));
            }
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Ends a dial: flushes what was queued behind it over the new connection, or drops and
    /// counts it.
    pub(crate) fn finish_dial(&self, key: DialKey, result: std::result::Result<NodeId, String>) {
        let dial = {
            let mut st = self.state.lock();
            if result.is_err() {
                let until = Instant::now() + Duration::from_millis(self.config.redial_backoff_ms);
                st.backoff.retain(|_, t| *t > Instant::now());
                st.backoff.insert(key.addr, until);
            }
            st.dials.remove(&key).unwrap_or_default()
        };
        let peer = match result {
            Ok(peer) => peer,
            Err(reason) => {
                let lost = (dial.datagrams.len() + dial.messages.len()) as u64;
                Counters::add(&self.counters.dropped_unreachable, lost);
                for waiter in dial.waiters {
                    let _ = waiter.send(Err(Error::Connect {
                        addr: key.addr,
                        reason: reason.clone(),
                    }));
                }
                return;
            }
        };
        for bytes in dial.datagrams {
            let _ = self.send_datagram_on(peer, self.link_conn(peer), bytes);
        }
        let queue = self.state.lock().links.get(&peer).map(|l| l.queue.clone());
        for bytes in dial.messages {
            let _ = self.queue_message(peer, queue.as_ref(), bytes);
        }
        for waiter in dial.waiters {
            let _ = waiter.send(Ok(peer));
        }
    }

    /// Sends one datagram on `conn`, counting the outcome.
    pub(crate) fn send_datagram_on(
        &self,
        peer: NodeId,
        conn: Option<Connection>,
        bytes: Bytes,
    ) -> Result<()> {
        let Some(conn) = conn else {
            Counters::inc(&self.counters.dropped_unreachable);
            return Err(Error::UnknownPeer(peer));
        };
        let len = bytes.len();
        match conn.send_datagram(bytes) {
            Ok(()) => {
                Counters::inc(&self.counters.datagrams_sent);
                Counters::add(&self.counters.bytes_sent, len as u64);
                Ok(())
            }
            Err(quinn::SendDatagramError::TooLarge) => {
                Counters::inc(&self.counters.dropped_oversized);
                Err(Error::Oversized {
                    what: "datagram",
                    len,
                    max: conn.max_datagram_size().unwrap_or(0),
                })
            }
            Err(e) => {
                Counters::inc(&self.counters.dropped_unreachable);
                Err(Error::Connect {
                    addr: conn.remote_address(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Puts a message on a peer's queue, counting a refusal.
    pub(crate) fn queue_message(
        &self,
        peer: NodeId,
        queue: Option<&mpsc::Sender<Bytes>>,
        bytes: Bytes,
    ) -> Result<()> {
        let Some(queue) = queue else {
            Counters::inc(&self.counters.dropped_unreachable);
            return Err(Error::UnknownPeer(peer));
        };
        queue.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                Counters::inc(&self.counters.dropped_queue_full);
                Error::QueueFull {
                    peer: peer.to_string(),
                }
            }
            mpsc::error::TrySendError::Closed(_) => {
                Counters::inc(&self.counters.dropped_unreachable);
                Error::UnknownPeer(peer)
            }
        })
    }

    /// Accepts an authenticated connection unless it is to ourselves or to a cut peer, and makes
    /// it the peer's link or a duplicate.
    pub(crate) fn admit(self: &Arc<Self>, conn: Connection, peer: NodeId) -> Result<()> {
        let refuse = |reason: &'static [u8]| {
            conn.close(CLOSE_REFUSED, reason);
            Counters::inc(&self.counters.connections_refused);
        };
        if peer == self.local_id {
            refuse(b"self");
            return Err(Error::SelfConnection(conn.remote_address()));
        }
        if self.is_cut(peer) {
            refuse(b"partitioned");
            return Err(Error::Connect {
                addr: conn.remote_address(),
                reason: format!("node {peer} is partitioned away"),
            });
        }
        if self.is_closed() {
            refuse(b"shutdown");
            return Err(Error::Closed);
        }
        if self.connection_count() >= self.config.connections_max {
            refuse(b"connection limit");
            return Err(Error::Connect {
                addr: conn.remote_address(),
                reason: "connection limit reached".into(),
            });
        }
        self.register(conn, peer);
        Ok(())
    }

    /// Records a new connection. With one already linked to the same peer the rule is
    /// deterministic, so both ends keep the same one: a redial from the same side replaces the
    /// older connection (that side knows best that it needs a new one); connections dialled by
    /// both sides at once keep the one whose client has the lower node id. The loser stays open
    /// for a grace period so that what is in flight on it still arrives.
    fn register(self: &Arc<Self>, conn: Connection, peer: NodeId) {
        let mut writer = None;
        let mut loser = None;
        {
            let mut st = self.state.lock();
            st.conns.insert(conn.stable_id(), (peer, conn.clone()));
            let addr = conn.remote_address();
            if conn.side().is_client() {
                st.addrs.insert(peer, addr);
            } else {
                // An incoming connection comes from the peer's endpoint address, but an
                // address we were told about is more deliberate: keep it.
                st.addrs.entry(peer).or_insert(addr);
            }
            match st.links.get_mut(&peer) {
                None => {
                    let (queue, rx) = mpsc::channel(self.config.send_queue_len_max);
                    st.links.insert(
                        peer,
                        Link {
                            conn: conn.clone(),
                            queue,
                        },
                    );
                    writer = Some(rx);
                }
                Some(link) => {
                    let new_wins = if link.conn.side() == conn.side() {
                        true
                    } else {
                        let new_client = if conn.side().is_client() {
                            self.local_id
                        } else {
                            peer
                        };
                        new_client == self.local_id.min(peer)
                    };
                    loser = Some(if new_wins {
                        std::mem::replace(&mut link.conn, conn.clone())
                    } else {
                        conn.clone()
                    });
                }
            }
        }
        Counters::inc(&self.counters.connections_established);
        tokio::spawn(tasks::run_connection(self.clone(), conn.clone(), peer));
        if let Some(rx) = writer {
            tokio::spawn(tasks::write_loop(self.clone(), peer, rx));
            self.peer_event(PeerEvent::Connected {
                node_id: peer,
                addr: conn.remote_address(),
            });
        }
        if let Some(loser) = loser {
            let shared = self.clone();
            let grace = Duration::from_millis(self.config.duplicate_close_grace_ms);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                // The winner may have died meanwhile and this one been promoted.
                if !shared.is_link_conn(peer, loser.stable_id()) {
                    loser.close(CLOSE_DUPLICATE, b"duplicate connection");
                }
            });
        }
    }

    /// A connection ended: forget it; if it was the peer's link, promote a surviving duplicate
    /// or report the peer disconnected.
    pub(crate) fn on_closed(&self, peer: NodeId, conn: &Connection) {
        let id = conn.stable_id();
        let down = {
            let mut st = self.state.lock();
            st.conns.remove(&id);
            if let Some(reason) = conn.close_reason()
                && is_refusal(&reason)
            {
                // The peer refuses us (partitioned, shutting down): don't redial at every send.
                let until = Instant::now() + Duration::from_millis(self.config.redial_backoff_ms);
                st.backoff.insert(conn.remote_address(), until);
            }
            let survivor = st
                .conns
                .values()
                .find(|(p, c)| *p == peer && c.close_reason().is_none())
                .map(|(_, c)| c.clone());
            match st.links.get_mut(&peer) {
                Some(link) if link.conn.stable_id() == id => match survivor {
                    Some(next) => {
                        link.conn = next;
                        false
                    }
                    None => {
                        st.links.remove(&peer);
                        true
                    }
                },
                _ => false,
            }
        };
        if down {
            self.peer_event(PeerEvent::Disconnected { node_id: peer });
        }
    }

    pub(crate) fn peer_event(&self, event: PeerEvent) {
        if self.tx.peers.try_send(event).is_err() {
            Counters::inc(&self.counters.peer_events_dropped);
        }
    }

    /// Closes every connection (used at shutdown).
    pub(crate) fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        self.endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
    }
}

fn is_refusal(reason: &quinn::ConnectionError) -> bool {
    matches!(reason, quinn::ConnectionError::ApplicationClosed(close)
        if close.error_code == CLOSE_REFUSED || close.error_code == CLOSE_SHUTDOWN)
}
