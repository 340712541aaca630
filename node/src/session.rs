//! Per-connection state that commands read and change: who the client is, whether it has
//! authenticated, and whether the connection ends after this batch. Owned by the connection's
//! task, so commands change it without locks; what other connections must see (name, protocol,
//! last command for CLIENT LIST) is mirrored in the shared [`ClientInfo`].

use std::sync::Arc;

use crate::clients::ClientInfo;

/// The state of one client connection.
#[derive(Debug)]
pub struct Session {
    /// Unique id of the connection (CLIENT ID), never reused while the node runs.
    pub id: u64,
    /// False until AUTH succeeds when `server.requirepass` is set; true from the start
    /// otherwise.
    pub authenticated: bool,
    /// Set by QUIT (or a protocol error): the connection is closed once this batch's replies
    /// are written.
    pub close_after_reply: bool,
    /// What other connections see of this client.
    pub client: Arc<ClientInfo>,
}

impl Session {
    /// A session for the registered `client`; `password_required` says whether it must
    /// authenticate first.
    pub fn new(client: Arc<ClientInfo>, password_required: bool) -> Self {
        Self {
            id: client.id,
            authenticated: !password_required,
            close_after_reply: false,
            client,
        }
    }
}
