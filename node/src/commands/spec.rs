//! The static description of a command: what the dispatcher checks (arity, flags) and what
//! `COMMAND INFO` / `COMMAND DOCS` report, next to the handler that runs it.
//!
//! Specs are built with `const` builder methods so a family's table reads like documentation:
//!
//! ```text
//! pub const COMMANDS: &[CommandSpec] = &[
//!     CommandSpec::new("echo", 2, echo)
//!         .flags(Flags::FAST)
//!         .group(Group::Connection)
//!         .since("1.0.0")
//!         .summary("Returns the given string.")
//!         .complexity("O(1)")
//!         .args(&[ArgDoc::string("message")]),
//! ];
//! ```
//!
//! Arity follows Redis: `n > 0` means exactly `n` arguments (the name included), `n < 0` means
//! at least `-n`. Key positions (`keys(first, last, step)`) are 1-based like Redis', with
//! `last = -1` for "to the end".

use super::Handler;

/// Command flags, as `COMMAND INFO` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u16);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);
    /// May modify the keyspace.
    pub const WRITE: Flags = Flags(1);
    /// Reads the keyspace, never modifies it.
    pub const READONLY: Flags = Flags(1 << 1);
    /// May grow memory use (refused when a memory limit is reached).
    pub const DENYOOM: Flags = Flags(1 << 2);
    /// Administrative: reveals or changes server state.
    pub const ADMIN: Flags = Flags(1 << 3);
    /// O(1) or O(log n) and never blocks.
    pub const FAST: Flags = Flags(1 << 4);
    /// Allowed before the client authenticated.
    pub const NO_AUTH: Flags = Flags(1 << 5);
    /// Allowed while the node is loading its data.
    pub const LOADING: Flags = Flags(1 << 6);
    /// Allowed on a node with stale data.
    pub const STALE: Flags = Flags(1 << 7);
    /// Not allowed from scripts.
    pub const NOSCRIPT: Flags = Flags(1 << 8);
    /// Keys cannot be found from the key positions alone.
    pub const MOVABLEKEYS: Flags = Flags(1 << 9);

    /// Names in `COMMAND INFO`, in Redis' order.
    const NAMES: [(Flags, &'static str); 10] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::FAST, "fast"),
        (Flags::NO_AUTH, "no_auth"),
        (Flags::MOVABLEKEYS, "movablekeys"),
    ];

    /// Both sets of flags.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// True if every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the flags that are set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// Where a command's keys are, Redis' legacy `(first, last, step)` key specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyRange {
    /// Position of the first key (0: the command takes no key).
    pub first: i32,
    /// Position of the last key; negative counts from the end (`-1`: the last argument).
    pub last: i32,
    /// Distance between keys (2 for `MSET k v k v`).
    pub step: i32,
}

impl KeyRange {
    /// Whether the command takes keys at all.
    pub fn has_keys(&self) -> bool {
        self.first > 0 && self.step > 0
    }

    /// The positions of the keys in a call of `argc` arguments (the name included), in order;
    /// empty for a command without keys.
    pub fn positions(&self, argc: usize) -> impl Iterator<Item = usize> + use<> {
        let argc = argc as i64;
        let last = if self.last >= 0 {
            i64::from(self.last)
        } else {
            argc + i64::from(self.last)
        };
        let (first, end) = if self.has_keys() {
            (i64::from(self.first), last.min(argc - 1))
        } else {
            (1, 0)
        };
        (first..=end)
            .step_by(self.step.max(1) as usize)
            .map(|p| p as usize)
    }
}

/// The functional group of a command (`COMMAND DOCS`, `redis-cli HELP @group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Commands on keys of any type.
    Generic,
    /// Registers and counters read as strings.
    String,
    /// Sets.
    Set,
    /// Connection management.
    Connection,
    /// Server administration and introspection.
    Server,
    /// Cluster membership and fault injection.
    Cluster,
    /// Commands that are not Redis commands (module-style names such as `TEXT.INSERT`).
    Module,
}

impl Group {
    /// The name Redis uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::String => "string",
            Self::Set => "set",
            Self::Connection => "connection",
            Self::Server => "server",
            Self::Cluster => "cluster",
            Self::Module => "module",
        }
    }
}

/// The type of one documented argument (`COMMAND DOCS` `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A key name.
    Key,
    /// Any string.
    String,
    /// An integer.
    Integer,
    /// A floating-point number.
    Double,
    /// A glob-style pattern.
    Pattern,
    /// A Unix time.
    UnixTime,
    /// A keyword alone (its `token`).
    PureToken,
    /// Exactly one of the nested arguments.
    OneOf(&'static [ArgDoc]),
    /// The nested arguments, in order.
    Block(&'static [ArgDoc]),
}

impl ArgKind {
    /// The name Redis uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::String => "string",
            Self::Integer => "integer",
            Self::Double => "double",
            Self::Pattern => "pattern",
            Self::UnixTime => "unix-time",
            Self::PureToken => "pure-token",
            Self::OneOf(_) => "oneof",
            Self::Block(_) => "block",
        }
    }
}

/// One documented argument, the shape `COMMAND DOCS` reports and redis-cli uses for hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgDoc {
    /// The argument's name (`key`, `value`, `condition`).
    pub name: &'static str,
    /// Its type.
    pub kind: ArgKind,
    /// The keyword that introduces it (`COUNT` in `COUNT count`), if any.
    pub token: Option<&'static str>,
    /// May be left out.
    pub optional: bool,
    /// May be repeated.
    pub multiple: bool,
}

impl ArgDoc {
    const fn base(name: &'static str, kind: ArgKind) -> Self {
        Self {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
        }
    }

    /// A key argument.
    pub const fn key(name: &'static str) -> Self {
        Self::base(name, ArgKind::Key)
    }

    /// A string argument.
    pub const fn string(name: &'static str) -> Self {
        Self::base(name, ArgKind::String)
    }

    /// An integer argument.
    pub const fn integer(name: &'static str) -> Self {
        Self::base(name, ArgKind::Integer)
    }

    /// A glob pattern argument.
    pub const fn pattern(name: &'static str) -> Self {
        Self::base(name, ArgKind::Pattern)
    }

    /// A keyword alone, such as `NX`; `name` is its lowercase form.
    pub const fn token(name: &'static str, token: &'static str) -> Self {
        Self {
            token: Some(token),
            ..Self::base(name, ArgKind::PureToken)
        }
    }

    /// One of `choices`.
    pub const fn one_of(name: &'static str, choices: &'static [ArgDoc]) -> Self {
        Self::base(name, ArgKind::OneOf(choices))
    }

    /// `parts` in order.
    pub const fn block(name: &'static str, parts: &'static [ArgDoc]) -> Self {
        Self::base(name, ArgKind::Block(parts))
    }

    /// Introduced by the keyword `token`.
    pub const fn with_token(self, token: &'static str) -> Self {
        Self {
            token: Some(token),
            ..self
        }
    }

    /// May be left out.
    pub const fn optional(self) -> Self {
        Self {
            optional: true,
            ..self
        }
    }

    /// May be repeated.
    pub const fn multiple(self) -> Self {
        Self {
            multiple: true,
            ..self
        }
    }
}

/// What running the command means.
#[derive(Clone, Copy)]
pub enum Run {
    /// A handler.
    Handler(Handler),
    /// A container (`CLIENT`, `CONFIG`, `COMMAND`): the second argument names one of the
    /// `subcommands`, whose names are `container|sub`. `bare` runs the container called alone
    /// (`COMMAND`), when its arity allows that.
    Container {
        /// The subcommands.
        subcommands: &'static [CommandSpec],
        /// The handler of the container without a subcommand.
        bare: Option<Handler>,
    },
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Handler(_) => f.write_str("Handler"),
            Self::Container { subcommands, bare } => f
                .debug_struct("Container")
                .field("subcommands", &subcommands.len())
                .field("bare", &bare.is_some())
                .finish(),
        }
    }
}

/// The static description of one command or subcommand.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lowercase name; for a subcommand `container|sub`.
    pub name: &'static str,
    /// Redis arity (see the module docs).
    pub arity: i32,
    /// Flags.
    pub flags: Flags,
    /// Key positions.
    pub keys: KeyRange,
    /// The arguments after the (single) key are members of the key's set, looked up by the
    /// command: the connection's look-ahead prefetches their slots (`server::ahead`).
    pub member_args: bool,
    /// Functional group.
    pub group: Group,
    /// The version that introduced it: Redis' for Redis commands, crdtkv's for our own.
    pub since: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Time complexity.
    pub complexity: &'static str,
    /// Documented arguments (after the name, and after the subcommand name).
    pub args: &'static [ArgDoc],
    /// Hints for clients and proxies (`request_policy:all_shards`, `nondeterministic_output`).
    pub tips: &'static [&'static str],
    /// The handler or the subcommands.
    pub run: Run,
}

impl CommandSpec {
    const fn base(name: &'static str, arity: i32, run: Run) -> Self {
        Self {
            name,
            arity,
            flags: Flags::NONE,
            keys: KeyRange {
                first: 0,
                last: 0,
                step: 0,
            },
            member_args: false,
            group: Group::Server,
            since: "1.0.0",
            summary: "",
            complexity: "O(1)",
            args: &[],
            tips: &[],
            run,
        }
    }

    /// A command run by `handler`.
    pub const fn new(name: &'static str, arity: i32, handler: Handler) -> Self {
        Self::base(name, arity, Run::Handler(handler))
    }

    /// A container of `subcommands` (each named `name|sub`); called alone it is a wrong number
    /// of arguments.
    pub const fn container(name: &'static str, subcommands: &'static [CommandSpec]) -> Self {
        let run = Run::Container {
            subcommands,
            bare: None,
        };
        Self {
            complexity: "Depends on subcommand.",
            ..Self::base(name, -2, run)
        }
    }

    /// A container of `subcommands` that `bare` runs when called alone.
    pub const fn container_or(
        name: &'static str,
        subcommands: &'static [CommandSpec],
        bare: Handler,
    ) -> Self {
        let run = Run::Container {
            subcommands,
            bare: Some(bare),
        };
        Self {
            complexity: "Depends on subcommand.",
            ..Self::base(name, -1, run)
        }
    }

    /// Sets the flags.
    pub const fn flags(self, flags: Flags) -> Self {
        Self { flags, ..self }
    }

    /// Sets the key positions.
    pub const fn keys(self, first: i32, last: i32, step: i32) -> Self {
        Self {
            keys: KeyRange { first, last, step },
            ..self
        }
    }

    /// Marks the arguments after the key as members of the key's set
    /// ([`member_args`](Self::member_args)).
    pub const fn member_args(self) -> Self {
        Self {
            member_args: true,
            ..self
        }
    }

    /// Sets the group.
    pub const fn group(self, group: Group) -> Self {
        Self { group, ..self }
    }

    /// Sets the version that introduced the command.
    pub const fn since(self, since: &'static str) -> Self {
        Self { since, ..self }
    }

    /// Sets the summary.
    pub const fn summary(self, summary: &'static str) -> Self {
        Self { summary, ..self }
    }

    /// Sets the complexity.
    pub const fn complexity(self, complexity: &'static str) -> Self {
        Self { complexity, ..self }
    }

    /// Sets the documented arguments.
    pub const fn args(self, args: &'static [ArgDoc]) -> Self {
        Self { args, ..self }
    }

    /// Sets the tips.
    pub const fn tips(self, tips: &'static [&'static str]) -> Self {
        Self { tips, ..self }
    }

    /// The subcommands of a container, empty otherwise.
    pub fn subcommands(&self) -> &'static [CommandSpec] {
        match self.run {
            Run::Container { subcommands, .. } => subcommands,
            Run::Handler(_) => &[],
        }
    }

    /// For a subcommand, the part after `|`; otherwise the whole name.
    pub fn short_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }

    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// The ACL categories Redis would list for the command, derived from its flags and group.
    pub fn acl_categories(&self) -> impl Iterator<Item = &'static str> {
        let f = self.flags;
        let group = match self.group {
            Group::Generic => Some("@keyspace"),
            Group::String => Some("@string"),
            Group::Set => Some("@set"),
            Group::Connection => Some("@connection"),
            Group::Server | Group::Cluster | Group::Module => None,
        };
        [
            f.contains(Flags::WRITE).then_some("@write"),
            f.contains(Flags::READONLY).then_some("@read"),
            f.contains(Flags::ADMIN).then_some("@admin"),
            group,
            Some(if f.contains(Flags::FAST) {
                "@fast"
            } else {
                "@slow"
            }),
            f.contains(Flags::ADMIN).then_some("@dangerous"),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{CmdResult, Ctx};

    fn nothing(_: &mut Ctx<'_>) -> CmdResult {
        Ok(())
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let range = |first, last, step| KeyRange { first, last, step };
        let positions = |k: KeyRange, argc| k.positions(argc).collect::<Vec<_>>();
        // GET k
        assert_eq!(positions(range(1, 1, 1), 2), [1]);
        // MSET k v k v k v
        assert_eq!(positions(range(1, -1, 2), 7), [1, 3, 5]);
        // DEL k k k
        assert_eq!(positions(range(1, -1, 1), 4), [1, 2, 3]);
        // A call shorter than the range names only the positions it has.
        assert_eq!(positions(range(1, 3, 1), 2), [1]);
        // PING: no keys, whatever the call.
        assert!(!range(0, 0, 0).has_keys());
        assert!(positions(range(0, 0, 0), 3).is_empty());
        assert!(positions(range(1, -1, 1), 1).is_empty());
    }

    #[test]
    fn arity_and_flags() {
        let exact = CommandSpec::new("get", 2, nothing);
        assert!(exact.arity_ok(2) && !exact.arity_ok(1) && !exact.arity_ok(3));
        let at_least = CommandSpec::new("del", -2, nothing);
        assert!(at_least.arity_ok(2) && at_least.arity_ok(9) && !at_least.arity_ok(1));
        let f = Flags::WRITE.with(Flags::FAST);
        assert!(f.contains(Flags::WRITE) && !f.contains(Flags::ADMIN));
        assert_eq!(f.names().collect::<Vec<_>>(), ["write", "fast"]);
        let spec = CommandSpec::new("set", -3, nothing)
            .flags(Flags::WRITE.with(Flags::DENYOOM))
            .group(Group::String);
        assert_eq!(
            spec.acl_categories().collect::<Vec<_>>(),
            ["@write", "@string", "@slow"]
        );
        assert_eq!(CommandSpec::new("client|id", 2, nothing).short_name(), "id");
    }
}
