//! Anti-entropy sessions: the initiator walks the hash trees top-down and drives the exchange;
//! the responder answers each request from its current state and keeps only what it needs to
//! recognise the end of the session. See "Anti-entropy" in [`super`] for the protocol.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use crdt::{NodeId, Value};
use serde_bytes::ByteBuf;

use super::Effect;
use super::config::ReplicationConfig;
use super::gc::Dropped;
use super::metrics::ReplicationMetrics;
use super::replica::Replica;
use super::wire::{KeyPage, Message, SyncPoint};
use crate::digest::Tree;

/// Key pages asked for in one request.
const PAGES_PER_REQUEST_MAX: usize = 16;
/// Bytes a key list entry costs besides its key (entry hash and framing), for page budgets.
const ENTRY_OVERHEAD_BYTES: usize = 12;

/// Everything a session step may touch, lent by the replicator.
pub(crate) struct Ctx<'a> {
    pub(crate) replica: &'a mut dyn Replica,
    pub(crate) config: &'a ReplicationConfig,
    pub(crate) effects: &'a mut VecDeque<Effect>,
    pub(crate) metrics: &'a mut ReplicationMetrics,
    pub(crate) epoch: &'a mut u64,
    pub(crate) dropped: &'a Dropped,
    /// This node's stream position and watermark now.
    pub(crate) point: SyncPoint,
    pub(crate) now_ms: u64,
}

impl Ctx<'_> {
    fn send(&mut self, to: NodeId, message: &Message) {
        let bytes = message.encode();
        self.metrics.ae_bytes_sent += bytes.len() as u64;
        self.effects.push_back(Effect::Send {
            to,
            bytes: Bytes::from(bytes),
        });
    }

    /// Refreshes the digests at a new epoch and folds the tree.
    fn tree(&mut self) -> (Tree, u64) {
        let epoch = self.refresh();
        let mut leaves = Vec::with_capacity(1 << self.config.leaf_bits);
        self.replica.leaf_digests(&mut leaves);
        (Tree::from_leaves(self.config.leaf_bits, leaves), epoch)
    }

    fn refresh(&mut self) -> u64 {
        *self.epoch += 1;
        self.replica.refresh(*self.epoch);
        *self.epoch
    }

    /// The bucket's `(key, entry hash)` sorted by key, limited to keys after `after`.
    fn bucket(&mut self, bucket: u32, after: Option<&[u8]>) -> Vec<(Vec<u8>, u64)> {
        let mut entries = Vec::new();
        self.replica.bucket_entries(bucket, &mut entries);
        if let Some(after) = after {
            entries.retain(|(k, _)| k.as_slice() > after);
        }
        entries.sort_unstable();
        entries
    }

    /// Merges received states, except those a recently dropped tombstone covers.
    fn merge(&mut self, states: Vec<(ByteBuf, Value)>) {
        let before = states.len();
        let keep: Vec<(Vec<u8>, Value)> = states
            .into_iter()
            .filter(|(k, v)| !self.dropped.covers(k, v))
            .map(|(k, v)| (k.into_vec(), v))
            .collect();
        self.metrics.tombstones_refused += (before - keep.len()) as u64;
        if !keep.is_empty() {
            self.metrics.ae_keys_repaired += self.replica.merge(keep) as u64;
        }
    }

    /// Reads the states of `keys` (front first) into a message budget; keys that do not fit
    /// stay in `keys`. At least one state is taken, so every message makes progress.
    fn take_states(
        &mut self,
        keys: &mut VecDeque<Vec<u8>>,
        count_max: usize,
    ) -> Vec<(ByteBuf, Value)> {
        let mut states = Vec::new();
        let mut bytes = 0;
        let mut scratch = Vec::new();
        while states.len() < count_max {
            let Some(key) = keys.pop_front() else { break };
            // Gone since it was listed (garbage-collected): nothing to ship.
            let Some(value) = self.replica.state(&key) else {
                continue;
            };
            scratch.clear();
            crdt::encoding::encode_into(&value, &mut scratch);
            let size = scratch.len() + key.len();
            if !states.is_empty() && bytes + size > self.config.ae_bytes_per_message_max {
                keys.push_front(key);
                break;
            }
            bytes += size;
            states.push((ByteBuf::from(key), value));
        }
        self.metrics.ae_states_sent += states.len() as u64;
        states
    }
}

/// The end of a session, for the replicator's freshness and GC bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completed {
    pub(crate) peer: NodeId,
    /// The peer's stream position and watermark when it read its digests.
    pub(crate) their_point: SyncPoint,
    /// This node's refresh epoch when it read its digests: the peer holds every state this
    /// node had then.
    pub(crate) my_epoch: u64,
    /// When this node read its digests (`now_ms`): this node now holds every state the peer
    /// had at about that time.
    pub(crate) started_ms: u64,
}

struct Initiator {
    session: u64,
    start_epoch: u64,
    started_ms: u64,
    last_progress_ms: u64,
    /// The responder's answer to `AeStart`, once it came.
    peer_point: Option<SyncPoint>,
    in_sync: bool,
    descend: VecDeque<(u8, u32)>,
    pages: VecDeque<(u32, Option<Vec<u8>>)>,
    pushes: VecDeque<Vec<u8>>,
    wants: VecDeque<Vec<u8>>,
    inflight: BTreeSet<u32>,
    next_req: u32,
}

impl Initiator {
    fn is_idle(&self) -> bool {
        self.inflight.is_empty()
            && self.descend.is_empty()
            && self.pages.is_empty()
            && self.pushes.is_empty()
            && self.wants.is_empty()
    }
}

struct Responder {
    session: u64,
    their_point: SyncPoint,
    start_epoch: u64,
    started_ms: u64,
    last_ms: u64,
}

/// All sessions of one node: at most one started by this node and one answered per peer.
#[derive(Default)]
pub(crate) struct AntiEntropy {
    initiated: BTreeMap<NodeId, Initiator>,
    responding: BTreeMap<NodeId, Responder>,
}

impl AntiEntropy {
    pub(crate) fn is_running_with(&self, peer: NodeId) -> bool {
        self.initiated.contains_key(&peer)
    }

    /// Opens a session with `peer`: sends this node's root digest.
    pub(crate) fn start(&mut self, ctx: &mut Ctx<'_>, peer: NodeId, session: u64) {
        let (tree, epoch) = ctx.tree();
        ctx.send(
            peer,
            &Message::AeStart {
                session,
                point: ctx.point,
                leaf_bits: ctx.config.leaf_bits,
                root: tree.root(),
            },
        );
        ctx.metrics.ae_rounds_started += 1;
        let previous = self.initiated.insert(
            peer,
            Initiator {
                session,
                start_epoch: epoch,
                started_ms: ctx.now_ms,
                last_progress_ms: ctx.now_ms,
                peer_point: None,
                in_sync: false,
                descend: VecDeque::new(),
                pages: VecDeque::new(),
                pushes: VecDeque::new(),
                wants: VecDeque::new(),
                inflight: BTreeSet::new(),
                next_req: 0,
            },
        );
        if previous.is_some() {
            ctx.metrics.ae_rounds_failed += 1;
        }
    }

    /// Forgets every session with `peer` (down, left, or unreachable).
    pub(crate) fn abort_peer(&mut self, ctx_metrics: &mut ReplicationMetrics, peer: NodeId) {
        if self.initiated.remove(&peer).is_some() {
            ctx_metrics.ae_rounds_failed += 1;
        }
        self.responding.remove(&peer);
    }

    /// Abandons sessions without progress for `ae_session_timeout_ms`.
    pub(crate) fn expire(&mut self, ctx: &mut Ctx<'_>) {
        let timeout = ctx.config.ae_session_timeout_ms;
        let now = ctx.now_ms;
        let stale: Vec<(NodeId, u64)> = self
            .initiated
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_progress_ms) >= timeout)
            .map(|(p, s)| (*p, s.session))
            .collect();
        for (peer, session) in stale {
            self.initiated.remove(&peer);
            ctx.metrics.ae_rounds_failed += 1;
            ctx.send(peer, &Message::AeAbort { session });
        }
        self.responding
            .retain(|_, r| now.saturating_sub(r.last_ms) < timeout);
    }

    /// When the next session may time out.
    pub(crate) fn next_deadline(&self, timeout_ms: u64) -> Option<u64> {
        let a = self.initiated.values().map(|s| s.last_progress_ms);
        let b = self.responding.values().map(|r| r.last_ms);
        a.chain(b).min().map(|t| t.saturating_add(timeout_ms))
    }

    /// Handles one anti-entropy message from `from`. Returns the session that completed, if any.
    pub(crate) fn handle(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        message: Message,
    ) -> Option<Completed> {
        match message {
            Message::AeStart {
                session,
                point,
                leaf_bits,
                root,
            } => self.on_start(ctx, from, session, point, leaf_bits, root),
            Message::AeAccept {
                session,
                point,
                in_sync,
            } => {
                let s = self.live(ctx, from, session)?;
                if s.peer_point.is_some() {
                    ctx.metrics.messages_stale += 1;
                    return None;
                }
                s.peer_point = Some(point);
                s.last_progress_ms = ctx.now_ms;
                if in_sync {
                    s.in_sync = true;
                    ctx.metrics.ae_rounds_in_sync += 1;
                } else if Tree::depth_for(ctx.config.leaf_bits) == 0 {
                    s.pages.push_back((0, None));
                } else {
                    s.descend.push_back((0, 0));
                }
                self.pump(ctx, from)
            }
            Message::AeDescend {
                session,
                req,
                level,
                nodes,
            } => {
                self.touch(ctx.now_ms, from, session);
                let (tree, _) = ctx.tree();
                let digests = nodes
                    .iter()
                    .flat_map(|&n| Tree::children(ctx.config.leaf_bits, level, n))
                    .filter_map(|c| tree.node(level + 1, c).map(|d| (c, d)))
                    .collect();
                let reply = Message::AeDigests {
                    session,
                    req,
                    level: level + 1,
                    digests,
                };
                ctx.send(from, &reply);
                None
            }
            Message::AeDigests {
                session,
                req,
                level,
                digests,
            } => {
                self.answered(ctx, from, session, req)?;
                let (tree, _) = ctx.tree();
                let leaves = tree.depth();
                let s = self.initiated.get_mut(&from).expect("answered");
                for (index, digest) in digests {
                    if tree.node(level, index).is_some_and(|mine| mine != digest) {
                        if level == leaves {
                            s.pages.push_back((index, None));
                        } else {
                            s.descend.push_back((level, index));
                        }
                    }
                }
                self.pump(ctx, from)
            }
            Message::AeKeysReq {
                session,
                req,
                pages,
            } => {
                self.touch(ctx.now_ms, from, session);
                let pages = answer_pages(ctx, pages);
                ctx.send(
                    from,
                    &Message::AeKeys {
                        session,
                        req,
                        pages,
                    },
                );
                None
            }
            Message::AeKeys {
                session,
                req,
                pages,
            } => {
                self.answered(ctx, from, session, req)?;
                ctx.refresh();
                for page in pages {
                    compare_page(ctx, self.initiated.get_mut(&from).expect("answered"), page);
                }
                self.pump(ctx, from)
            }
            Message::AeStates {
                session,
                req,
                states,
                want,
            } => {
                self.touch(ctx.now_ms, from, session);
                let pushed: HashMap<Vec<u8>, Value> = states
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.clone()))
                    .collect();
                ctx.merge(states);
                // A key pushed and wanted whose state here, after the merge, is the pushed state
                // adds nothing for the initiator.
                let mut wanted: VecDeque<Vec<u8>> = want
                    .into_iter()
                    .map(ByteBuf::into_vec)
                    .filter(|k| {
                        pushed
                            .get(k)
                            .is_none_or(|v| ctx.replica.state(k).as_ref() != Some(v))
                    })
                    .collect();
                let states = ctx.take_states(&mut wanted, ctx.config.ae_keys_per_message_max);
                let missing = wanted.into_iter().map(ByteBuf::from).collect();
                ctx.send(
                    from,
                    &Message::AeStatesReply {
                        session,
                        req,
                        states,
                        missing,
                    },
                );
                None
            }
            Message::AeStatesReply {
                session,
                req,
                states,
                missing,
            } => {
                self.answered(ctx, from, session, req)?;
                ctx.merge(states);
                let s = self.initiated.get_mut(&from).expect("answered");
                s.wants.extend(missing.into_iter().map(ByteBuf::into_vec));
                self.pump(ctx, from)
            }
            Message::AeDone { session } => match self.responding.get(&from) {
                Some(r) if r.session == session => {
                    let r = self.responding.remove(&from).expect("checked");
                    ctx.metrics.ae_rounds_completed += 1;
                    Some(Completed {
                        peer: from,
                        their_point: r.their_point,
                        my_epoch: r.start_epoch,
                        started_ms: r.started_ms,
                    })
                }
                _ => {
                    ctx.metrics.messages_stale += 1;
                    None
                }
            },
            Message::AeAbort { session } => {
                if self
                    .initiated
                    .get(&from)
                    .is_some_and(|s| s.session == session)
                {
                    self.initiated.remove(&from);
                    ctx.metrics.ae_rounds_failed += 1;
                }
                if self
                    .responding
                    .get(&from)
                    .is_some_and(|r| r.session == session)
                {
                    self.responding.remove(&from);
                }
                None
            }
            Message::Deltas { .. } | Message::Heartbeat { .. } => None,
        }
    }

    fn on_start(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        session: u64,
        point: SyncPoint,
        leaf_bits: u32,
        root: u64,
    ) -> Option<Completed> {
        if leaf_bits != ctx.config.leaf_bits {
            tracing::warn!(%from, leaf_bits, mine = ctx.config.leaf_bits, "anti-entropy refused: different leaf_bits");
            ctx.metrics.ae_rounds_failed += 1;
            ctx.send(from, &Message::AeAbort { session });
            return None;
        }
        let (tree, epoch) = ctx.tree();
        let in_sync = tree.root() == root;
        ctx.send(
            from,
            &Message::AeAccept {
                session,
                point: ctx.point,
                in_sync,
            },
        );
        if in_sync {
            // The initiator read its digests before this node did and held the same state, so
            // each holds what the other had: the session is complete on both sides.
            self.responding.remove(&from);
            ctx.metrics.ae_rounds_completed += 1;
            ctx.metrics.ae_rounds_in_sync += 1;
            return Some(Completed {
                peer: from,
                their_point: point,
                my_epoch: epoch,
                started_ms: ctx.now_ms,
            });
        }
        self.responding.insert(
            from,
            Responder {
                session,
                their_point: point,
                start_epoch: epoch,
                started_ms: ctx.now_ms,
                last_ms: ctx.now_ms,
            },
        );
        None
    }

    fn touch(&mut self, now_ms: u64, from: NodeId, session: u64) {
        if let Some(r) = self
            .responding
            .get_mut(&from)
            .filter(|r| r.session == session)
        {
            r.last_ms = now_ms;
        }
    }

    fn live(&mut self, ctx: &mut Ctx<'_>, from: NodeId, session: u64) -> Option<&mut Initiator> {
        match self.initiated.get_mut(&from) {
            Some(s) if s.session == session => Some(s),
            _ => {
                ctx.metrics.messages_stale += 1;
                None
            }
        }
    }

    /// Marks request `req` of the session answered; `None` for a late or duplicated reply.
    fn answered(&mut self, ctx: &mut Ctx<'_>, from: NodeId, session: u64, req: u32) -> Option<()> {
        let now = ctx.now_ms;
        let s = self.live(ctx, from, session)?;
        if !s.inflight.remove(&req) {
            ctx.metrics.messages_stale += 1;
            return None;
        }
        s.last_progress_ms = now;
        Some(())
    }

    /// Sends the next requests of the session with `peer`, or ends it when nothing is left.
    fn pump(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) -> Option<Completed> {
        let s = self.initiated.get_mut(&peer)?;
        let keys_max = ctx.config.ae_keys_per_message_max;
        while s.inflight.len() < ctx.config.ae_requests_inflight_max {
            let req = s.next_req;
            let message = if !s.pushes.is_empty() || !s.wants.is_empty() {
                let states = ctx.take_states(&mut s.pushes, keys_max);
                let n = (keys_max - states.len()).min(s.wants.len());
                let want: Vec<ByteBuf> = s.wants.drain(..n).map(ByteBuf::from).collect();
                if states.is_empty() && want.is_empty() {
                    continue;
                }
                Message::AeStates {
                    session: s.session,
                    req,
                    states,
                    want,
                }
            } else if !s.pages.is_empty() {
                let n = s.pages.len().min(PAGES_PER_REQUEST_MAX);
                let pages = s
                    .pages
                    .drain(..n)
                    .map(|(b, after)| (b, after.map(ByteBuf::from)))
                    .collect();
                Message::AeKeysReq {
                    session: s.session,
                    req,
                    pages,
                }
            } else if let Some(&(level, _)) = s.descend.front() {
                let mut nodes = Vec::new();
                while nodes.len() < keys_max / 16
                    && s.descend.front().is_some_and(|(l, _)| *l == level)
                {
                    nodes.push(s.descend.pop_front().expect("checked").1);
                }
                Message::AeDescend {
                    session: s.session,
                    req,
                    level,
                    nodes,
                }
            } else {
                break;
            };
            s.next_req = s.next_req.wrapping_add(1);
            s.inflight.insert(req);
            ctx.send(peer, &message);
        }
        let point = s.peer_point?;
        if !s.is_idle() {
            return None;
        }
        let s = self.initiated.remove(&peer).expect("checked");
        if !s.in_sync {
            // The responder already ended an in-sync session when it compared the roots.
            ctx.send(peer, &Message::AeDone { session: s.session });
        }
        ctx.metrics.ae_rounds_completed += 1;
        Some(Completed {
            peer,
            their_point: point,
            my_epoch: s.start_epoch,
            started_ms: s.started_ms,
        })
    }
}

/// The responder's key pages for `(bucket, after)` requests, within the message budgets.
fn answer_pages(ctx: &mut Ctx<'_>, asked: Vec<(u32, Option<ByteBuf>)>) -> Vec<KeyPage> {
    ctx.refresh();
    let mut keys_left = ctx.config.ae_keys_per_message_max;
    let mut bytes_left = ctx.config.ae_bytes_per_message_max;
    let mut pages = Vec::with_capacity(asked.len());
    for (bucket, after) in asked {
        let mut entries = Vec::new();
        let mut complete = true;
        if keys_left == 0 {
            complete = false;
        } else {
            for (key, hash) in ctx.bucket(bucket, after.as_deref().map(|k| &k[..])) {
                let cost = key.len() + ENTRY_OVERHEAD_BYTES;
                let first = pages.is_empty() && entries.is_empty();
                if keys_left == 0 || (cost > bytes_left && !first) {
                    complete = false;
                    break;
                }
                keys_left -= 1;
                bytes_left = bytes_left.saturating_sub(cost);
                entries.push((ByteBuf::from(key), hash));
            }
        }
        pages.push(KeyPage {
            bucket,
            after,
            entries,
            complete,
        });
    }
    pages
}

/// Compares one of the responder's key pages with the local bucket over the range it covers:
/// local keys the responder lacks or holds differently are pushed, the responder's keys this
/// node lacks or holds differently are wanted.
fn compare_page(ctx: &mut Ctx<'_>, s: &mut Initiator, page: KeyPage) {
    let KeyPage {
        bucket,
        after,
        entries,
        complete,
    } = page;
    if !complete && entries.is_empty() {
        // The message was full before this page: ask again.
        s.pages.push_back((bucket, after.map(ByteBuf::into_vec)));
        return;
    }
    let last = (!complete)
        .then(|| entries.last().map(|(k, _)| k.to_vec()))
        .flatten();
    let remote: HashMap<&[u8], u64> = entries.iter().map(|(k, h)| (&k[..], *h)).collect();
    let local = ctx.bucket(bucket, after.as_deref().map(|k| &k[..]));
    let mut local_hashes: HashMap<&[u8], u64> = HashMap::with_capacity(local.len());
    for (key, hash) in &local {
        if last.as_ref().is_some_and(|l| key > l) {
            break; // beyond the page's range; a later page covers it
        }
        local_hashes.insert(key, *hash);
        if remote.get(key.as_slice()) != Some(hash) {
            s.pushes.push_back(key.clone());
        }
    }
    for (key, hash) in &entries {
        if local_hashes.get(&key[..]) != Some(hash) && !ctx.dropped.is_dropped_hash(key, *hash) {
            s.wants.push_back(key.to_vec());
        }
    }
    if let Some(last) = last {
        s.pages.push_back((bucket, Some(last)));
    }
}
