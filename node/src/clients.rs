//! The registry of connected clients: what CLIENT LIST, CLIENT INFO and INFO clients report,
//! and where `server.connections_max` is enforced.
//!
//! Each connection registers a [`ClientInfo`] shared with the registry. Fields that change on
//! every batch (idle time, last command, buffer sizes) are relaxed atomics written by the
//! connection's task and read by whoever lists clients, so the hot path takes no lock; the
//! rarely changed ones (name, library) sit behind a mutex.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::commands::{CommandId, CommandTable};
use crate::resp::Protocol;

/// What a client chose to tell about itself (CLIENT SETNAME, CLIENT SETINFO, HELLO SETNAME).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    /// Connection name; `None` when unset or set to the empty string.
    pub name: Option<Box<[u8]>>,
    /// Client library name (CLIENT SETINFO LIB-NAME).
    pub lib_name: Option<Box<[u8]>>,
    /// Client library version (CLIENT SETINFO LIB-VER).
    pub lib_ver: Option<Box<[u8]>>,
}

/// Marks "no command yet" in [`ClientInfo::last_command`].
const NO_COMMAND: u32 = u32::MAX;

/// One connected client, as other connections see it.
#[derive(Debug)]
pub struct ClientInfo {
    /// CLIENT ID.
    pub id: u64,
    /// The client's address.
    pub addr: SocketAddr,
    /// Our address the client connected to.
    pub laddr: SocketAddr,
    /// The socket's file descriptor.
    pub fd: i32,
    created: Instant,
    /// Milliseconds from `created` to the last batch.
    last_active_ms: AtomicU64,
    resp: AtomicU8,
    last_command: AtomicU32,
    query_buffer_bytes: AtomicU64,
    read_buffer_bytes: AtomicU64,
    output_buffer_bytes: AtomicU64,
    parser_bytes: AtomicU64,
    meta: Mutex<ClientMeta>,
}

/// Buffer sizes of a connection, published once per batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct BufferSizes {
    /// Unconsumed request bytes.
    pub query: usize,
    /// Capacity of the read buffer.
    pub read: usize,
    /// Capacity of the output buffer.
    pub output: usize,
    /// Memory of the parser's argument positions.
    pub parser: usize,
}

impl ClientInfo {
    /// Records activity now (once per batch).
    pub fn touch(&self) {
        let ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// Records the command being executed.
    pub fn set_last_command(&self, id: CommandId) {
        self.last_command.store(id.0, Ordering::Relaxed);
    }

    /// Records the protocol version chosen with HELLO.
    pub fn set_protocol(&self, protocol: Protocol) {
        self.resp.store(protocol.version() as u8, Ordering::Relaxed);
    }

    /// Publishes buffer sizes for CLIENT LIST and INFO clients.
    pub fn set_buffer_sizes(&self, sizes: BufferSizes) {
        let n = |v: usize| v as u64;
        self.query_buffer_bytes
            .store(n(sizes.query), Ordering::Relaxed);
        self.read_buffer_bytes
            .store(n(sizes.read), Ordering::Relaxed);
        self.output_buffer_bytes
            .store(n(sizes.output), Ordering::Relaxed);
        self.parser_bytes.store(n(sizes.parser), Ordering::Relaxed);
    }

    /// The buffer sizes last published.
    pub fn buffer_sizes(&self) -> BufferSizes {
        let n = |a: &AtomicU64| usize::try_from(a.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        BufferSizes {
            query: n(&self.query_buffer_bytes),
            read: n(&self.read_buffer_bytes),
            output: n(&self.output_buffer_bytes),
            parser: n(&self.parser_bytes),
        }
    }

    /// A copy of the name and library fields.
    pub fn meta(&self) -> ClientMeta {
        self.meta.lock().clone()
    }

    /// Changes the name and library fields.
    pub fn update_meta(&self, f: impl FnOnce(&mut ClientMeta)) {
        f(&mut self.meta.lock());
    }

    /// The connection name, if set.
    pub fn name(&self) -> Option<Box<[u8]>> {
        self.meta.lock().name.clone()
    }

    /// The CLIENT LIST / CLIENT INFO line of this client, with a trailing newline.
    pub fn render(&self, commands: &CommandTable, out: &mut Vec<u8>) {
        let meta = self.meta();
        let age = self.created.elapsed().as_secs();
        let active = self.last_active_ms.load(Ordering::Relaxed);
        let idle_ms = u64::try_from(self.created.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(active);
        let cmd = match self.last_command.load(Ordering::Relaxed) {
            NO_COMMAND => "NULL",
            id => commands.get(CommandId(id)).map_or("NULL", |s| s.name),
        };
        let b = self.buffer_sizes();
        let text = |v: &Option<Box<[u8]>>| v.as_deref().unwrap_or_default().to_vec();
        let mut line = format!(
            "id={} addr={} laddr={} fd={} name=",
            self.id, self.addr, self.laddr, self.fd
        )
        .into_bytes();
        line.extend_from_slice(&text(&meta.name));
        line.extend_from_slice(
            format!(
                " age={age} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf={} \
                 qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl=0 oll=0 omem={} \
                 tot-mem={} events=r cmd={cmd} user=default redir=-1 resp={} lib-name=",
                idle_ms / 1000,
                b.query,
                b.read.saturating_sub(b.query),
                b.parser,
                b.read,
                b.query,
                b.output,
                b.read + b.output + b.parser,
                self.resp.load(Ordering::Relaxed),
            )
            .as_bytes(),
        );
        line.extend_from_slice(&text(&meta.lib_name));
        line.extend_from_slice(b" lib-ver=");
        line.extend_from_slice(&text(&meta.lib_ver));
        line.push(b'\n');
        out.extend_from_slice(&line);
    }
}

/// Every connected client, by id.
#[derive(Debug)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Arc<Mutex<ClientMap>>,
    connections_max: usize,
}

type ClientMap = BTreeMap<u64, Arc<ClientInfo>>;

/// The registry is full: `server.connections_max` clients are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyClients;

/// Keeps a client registered; unregisters it when dropped (also if its task panics).
#[derive(Debug)]
pub struct Registration {
    clients: Arc<Mutex<ClientMap>>,
    /// The registered client.
    pub info: Arc<ClientInfo>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.info.id);
    }
}

impl ClientRegistry {
    /// An empty registry admitting at most `connections_max` clients.
    pub fn new(connections_max: usize) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            clients: Arc::default(),
            connections_max,
        }
    }

    /// Registers a new connection, unless `connections_max` clients are already connected.
    pub fn register(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i32,
    ) -> Result<Registration, TooManyClients> {
        let mut clients = self.clients.lock();
        if clients.len() >= self.connections_max {
            return Err(TooManyClients);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            last_command: AtomicU32::new(NO_COMMAND),
            query_buffer_bytes: AtomicU64::new(0),
            read_buffer_bytes: AtomicU64::new(0),
            output_buffer_bytes: AtomicU64::new(0),
            parser_bytes: AtomicU64::new(0),
            meta: Mutex::new(ClientMeta::default()),
        });
        clients.insert(id, Arc::clone(&info));
        Ok(Registration {
            clients: Arc::clone(&self.clients),
            info,
        })
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// True when no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most clients admitted at once.
    pub fn connections_max(&self) -> usize {
        self.connections_max
    }

    /// The connected clients in id order (a snapshot; the lock is not held afterwards).
    pub fn snapshot(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn registration_enforces_the_limit_and_unregisters_on_drop() {
        let reg = ClientRegistry::new(2);
        let a = reg.register(addr(1), addr(6379), 7).unwrap();
        let b = reg.register(addr(2), addr(6379), 8).unwrap();
        assert_eq!(
            reg.register(addr(3), addr(6379), 9).unwrap_err(),
            TooManyClients
        );
        assert!(b.info.id > a.info.id);
        drop(a);
        assert_eq!(reg.len(), 1);
        let c = reg.register(addr(3), addr(6379), 9).unwrap();
        assert_eq!(
            reg.snapshot().iter().map(|c| c.id).collect::<Vec<_>>(),
            [b.info.id, c.info.id]
        );
    }

    #[test]
    fn rendered_line_has_redis_fields() {
        let reg = ClientRegistry::new(10);
        let r = reg.register(addr(5000), addr(6379), 11).unwrap();
        r.info.update_meta(|m| m.name = Some(b"worker"[..].into()));
        let table = CommandTable::new(crate::commands::FAMILIES);
        r.info.set_last_command(table.lookup(b"ping").unwrap().0);
        let mut out = Vec::new();
        r.info.render(&table, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with(&format!(
            "id={} addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=11 name=worker age=",
            r.info.id
        )));
        assert!(
            line.contains(" cmd=ping user=default redir=-1 resp=2 lib-name= lib-ver=\n"),
            "{line}"
        );
    }
}
