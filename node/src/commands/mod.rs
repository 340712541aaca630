//! The command table and the commands of the daemon shell.
//!
//! ## Model
//! A command is a [`CommandSpec`] — name, Redis arity, flags, key positions, documentation —
//! plus a [`Handler`]: a plain synchronous function of a [`Ctx`]. Specs are grouped in one
//! `const COMMANDS: &[CommandSpec]` per family file, and [`FAMILIES`] lists the families. The
//! [`CommandTable`] built from it at start answers lookups by name, and `COMMAND`, `COMMAND
//! COUNT/INFO/DOCS/LIST` are generated from it, so a command exists for clients exactly when
//! it is in the table.
//!
//! The [`dispatch`]er checks, in Redis' order: the name (unknown command), the arity, the
//! subcommand of a container (`CLIENT`, `CONFIG`, `COMMAND`), then authentication. Only then
//! does it call the handler.
//!
//! ## Writing a handler
//! A handler reads its arguments from `ctx.args` (`ctx.args[0]` is the name as sent), reads and
//! changes shared state through `ctx.state`, writes exactly one reply with `ctx.reply`, and
//! returns `Ok(())`; or returns a [`CommandError`] and the dispatcher replaces anything it
//! wrote with the error. A handler never awaits. A write command applies its change to memory
//! and pushes the storage ops and the replication delta into `ctx.writes` (see
//! [`crate::write_set`]): the connection commits them once per batch, before any reply of the
//! batch is sent, and turns the replies of commands that pushed into errors if the commit
//! fails.
//!
//! ## Adding a family
//! Create `commands/<family>.rs` with `pub(crate) const COMMANDS: &[CommandSpec]`, declare the
//! module below and append `<family>::COMMANDS` to [`FAMILIES`]. Names must be lowercase and
//! unique (checked when the table is built, in every test).

mod client;
mod cluster;
mod command;
mod config;
mod connection;
mod counters;
mod crdt_info;
mod data;
pub mod dispatch;
mod error;
mod keys;
mod server;
mod sets;
pub mod spec;
mod strings;
mod table;
mod text;

pub use dispatch::{Found, execute, execute_found, key_positions};
pub use error::{CmdResult, CommandError};
pub use spec::{ArgDoc, ArgKind, CommandSpec, Flags, Group, KeyRange, Run};
pub use table::{CommandId, CommandTable};

use crate::resp::{Args, Protocol, ReplyWriter, parse_i64};
use crate::session::Session;
use crate::state::NodeState;
use crate::write_set::WriteSet;

/// Every command family, in the order `COMMAND` lists them.
pub const FAMILIES: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    client::COMMANDS,
    command::COMMANDS,
    config::COMMANDS,
    server::COMMANDS,
    keys::COMMANDS,
    strings::COMMANDS,
    counters::COMMANDS,
    sets::COMMANDS,
    text::COMMANDS,
    crdt_info::COMMANDS,
    cluster::COMMANDS,
];

/// A command's implementation.
pub type Handler = fn(&mut Ctx<'_>) -> CmdResult;

/// Everything a handler works with.
pub struct Ctx<'a> {
    /// Shared node state.
    pub state: &'a NodeState,
    /// The client's session.
    pub session: &'a mut Session,
    /// The arguments, name first.
    pub args: Args<'a>,
    /// Where the reply goes.
    pub reply: &'a mut ReplyWriter,
    /// The batch's writes: storage ops and replication deltas.
    pub writes: &'a mut WriteSet,
    /// The spec of the command (or subcommand) being run.
    pub spec: &'static CommandSpec,
}

impl<'a> Ctx<'a> {
    /// Argument `i` (only for positions the arity guarantees).
    pub fn arg(&self, i: usize) -> &'a [u8] {
        self.args.arg(i)
    }

    /// Argument `i` as an integer with Redis' rules, or `-ERR value is not an integer or out
    /// of range`.
    pub fn int_arg(&self, i: usize) -> Result<i64, CommandError> {
        parse_i64(self.args.arg(i)).ok_or(CommandError::NotInteger)
    }

    /// Switches the connection's protocol; the current reply is already encoded in it.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.reply.set_protocol(protocol);
        self.session.client.set_protocol(protocol);
    }
}

#[cfg(test)]
pub(crate) mod test_support;
