//! Errors a command handler returns. Each becomes one Redis-style error reply; the dispatcher
//! drops whatever the handler had already written for the command first, so a handler can fail
//! half-way through its reply.

use std::borrow::Cow;

/// Why a command failed, as the client will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `-ERR syntax error`
    Syntax,
    /// `-ERR value is not an integer or out of range`
    NotInteger,
    /// `-WRONGTYPE Operation against a key holding the wrong kind of value`
    WrongType,
    /// `-ERR wrong number of arguments for '<command>' command` (named by the dispatcher).
    WrongArity,
    /// `-ERR unknown subcommand '<sub>'. Try <COMMAND> HELP.` (named by the dispatcher).
    UnknownSubcommand,
    /// Any other error, as the full reply text without the leading `-`, error code first:
    /// `"ERR DB index is out of range"`, `"NOPROTO unsupported protocol version"`.
    Message(Cow<'static, str>),
}

impl CommandError {
    /// An error with a fixed text (code first, no leading `-`).
    pub const fn msg(text: &'static str) -> Self {
        Self::Message(Cow::Borrowed(text))
    }

    /// An error with a computed text (code first, no leading `-`).
    pub fn owned(text: String) -> Self {
        Self::Message(Cow::Owned(text))
    }
}

/// What a handler returns: `Ok` once it has written its reply.
pub type CmdResult = Result<(), CommandError>;
