//! Running commands in unit tests without a socket: a registered client on an in-memory node.

use std::sync::Arc;

use crate::clients::Registration;
use crate::config::Config;
use crate::resp::{ArgVec, Protocol, ReplyWriter};
use crate::session::Session;
use crate::state::NodeState;
use crate::write_set::WriteSet;

/// A client connected to an in-memory node.
pub(crate) struct TestClient {
    pub state: Arc<NodeState>,
    pub session: Session,
    pub reply: ReplyWriter,
    pub writes: WriteSet,
    _registration: Registration,
}

impl TestClient {
    /// A client of a fresh node with `config`.
    pub fn new(config: Config) -> Self {
        let state = NodeState::in_memory(config, Arc::new(storage::MemStore::new()));
        Self::connect(&state)
    }

    /// Another client of `state`.
    pub fn connect(state: &Arc<NodeState>) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
        let laddr = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
        let registration = state
            .clients
            .register(addr, laddr, 3)
            .expect("room for a test client");
        let session = Session::new(Arc::clone(&registration.info), state.password_required());
        Self {
            state: Arc::clone(state),
            session,
            reply: ReplyWriter::new(Protocol::Resp2),
            writes: WriteSet::new(),
            _registration: registration,
        }
    }

    /// Runs one command and returns its reply as text (lossy UTF-8).
    pub fn run(&mut self, words: &[&str]) -> String {
        let args = ArgVec::new(words);
        self.reply.clear();
        // Each command is a batch of its own, as on a connection (nothing is committed here).
        self.writes.clear();
        crate::commands::execute(
            &self.state,
            &mut self.session,
            args.args(),
            &mut self.reply,
            &mut self.writes,
        );
        String::from_utf8_lossy(self.reply.as_bytes()).into_owned()
    }
}
