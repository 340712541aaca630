//! The command table: every [`CommandSpec`] of every family, found by name in any case.
//!
//! Built once at start from [`super::FAMILIES`]. Each command and subcommand gets a dense
//! [`CommandId`], which is what a client's "last command" (CLIENT LIST `cmd=`) records without
//! a lock or a pointer.
//!
//! Every request looks its name up (a pipelined one once, when the connection looks ahead at
//! it; see `server::ahead`), so the lookup hashes with unkeyed xxh3 rather than std's SipHash,
//! which cost several times more on names of a few bytes. A fixed hash is safe here, unlike in
//! the keyspace: the table is built from our own names and never grows, so a client can only
//! look names up, not flood a chain.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use super::spec::CommandSpec;

/// Longest command or `container|sub` name looked up; longer names cannot exist in the table,
/// so they are unknown without hashing them.
const NAME_BYTES_MAX: usize = 64;

/// A dense index of a command or subcommand in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandId(pub u32);

/// Every command, by name.
#[derive(Debug)]
pub struct CommandTable {
    specs: Vec<&'static CommandSpec>,
    top_level: Vec<CommandId>,
    /// Ids by the hash of their (lowercase) name.
    by_name: HashTable<CommandId>,
}

/// Lowercases `parts` (joined by `|`) into `buf`; `None` if too long or not UTF-8.
fn lowercase_name<'b>(buf: &'b mut [u8; NAME_BYTES_MAX], parts: &[&[u8]]) -> Option<&'b str> {
    let mut len = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(len)? = b'|';
            len += 1;
        }
        let dst = buf.get_mut(len..len + part.len())?;
        for (d, s) in dst.iter_mut().zip(part.iter()) {
            *d = s.to_ascii_lowercase();
        }
        len += part.len();
    }
    std::str::from_utf8(&buf[..len]).ok()
}

impl CommandTable {
    /// The table of `families`.
    ///
    /// # Panics
    /// If two commands share a name, or a name is not lowercase: both are bugs in a family's
    /// table, caught by the first test that builds it.
    pub fn new(families: &[&'static [CommandSpec]]) -> Self {
        let mut table = Self {
            specs: Vec::new(),
            top_level: Vec::new(),
            by_name: HashTable::new(),
        };
        for spec in families.iter().flat_map(|f| f.iter()) {
            let id = table.add(spec);
            table.top_level.push(id);
            for sub in spec.subcommands() {
                assert!(
                    sub.name.starts_with(spec.name) && sub.name[spec.name.len()..].starts_with('|'),
                    "subcommand {} of {} must be named {}|<sub>",
                    sub.name,
                    spec.name,
                    spec.name
                );
                table.add(sub);
            }
        }
        table
    }

    fn add(&mut self, spec: &'static CommandSpec) -> CommandId {
        assert!(
            spec.name.len() <= NAME_BYTES_MAX && spec.name == spec.name.to_ascii_lowercase(),
            "command name {:?} must be lowercase and at most {NAME_BYTES_MAX} bytes",
            spec.name
        );
        let id = CommandId(u32::try_from(self.specs.len()).expect("fewer than 2^32 commands"));
        assert!(
            self.find(spec.name).is_none(),
            "command {} is defined twice",
            spec.name
        );
        self.specs.push(spec);
        let specs = &self.specs;
        self.by_name
            .insert_unique(xxh3_64(spec.name.as_bytes()), id, |id| {
                xxh3_64(specs[id.0 as usize].name.as_bytes())
            });
        id
    }

    /// The command or subcommand of exactly this (lowercase) name.
    fn find(&self, name: &str) -> Option<(CommandId, &'static CommandSpec)> {
        let id = *self.by_name.find(xxh3_64(name.as_bytes()), |id| {
            self.specs[id.0 as usize].name == name
        })?;
        Some((id, self.specs[id.0 as usize]))
    }

    /// The command named `name` (any case).
    pub fn lookup(&self, name: &[u8]) -> Option<(CommandId, &'static CommandSpec)> {
        let mut buf = [0u8; NAME_BYTES_MAX];
        self.find(lowercase_name(&mut buf, &[name])?)
    }

    /// The subcommand `sub` (any case) of `container`.
    pub fn lookup_sub(
        &self,
        container: &CommandSpec,
        sub: &[u8],
    ) -> Option<(CommandId, &'static CommandSpec)> {
        let mut buf = [0u8; NAME_BYTES_MAX];
        self.find(lowercase_name(&mut buf, &[container.name.as_bytes(), sub])?)
    }

    /// The command or subcommand `id`.
    pub fn get(&self, id: CommandId) -> Option<&'static CommandSpec> {
        self.specs.get(id.0 as usize).copied()
    }

    /// Top-level commands, in table order.
    pub fn top_level(&self) -> impl ExactSizeIterator<Item = &'static CommandSpec> + '_ {
        self.top_level.iter().map(|id| self.specs[id.0 as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::FAMILIES;

    #[test]
    fn builtin_table_is_consistent_and_case_insensitive() {
        let table = CommandTable::new(FAMILIES);
        let (id, ping) = table.lookup(b"PiNg").unwrap();
        assert_eq!(ping.name, "ping");
        assert_eq!(table.get(id).unwrap().name, "ping");
        let (_, client) = table.lookup(b"client").unwrap();
        assert_eq!(
            table.lookup_sub(client, b"SETNAME").unwrap().1.name,
            "client|setname"
        );
        assert!(table.lookup_sub(client, b"nope").is_none());
        assert!(table.lookup(b"nope").is_none());
        assert!(table.lookup(&[b'a'; 200]).is_none());
        assert!(table.lookup(b"\xff").is_none());
        for spec in table.top_level() {
            assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
            for sub in spec.subcommands() {
                assert!(!sub.summary.is_empty(), "{} has no summary", sub.name);
            }
        }
    }

    /// The look-ahead reads the arguments after the key of a `member_args` command as members
    /// of that key's set: only commands of one key followed by members may say so.
    #[test]
    fn member_args_are_claimed_by_the_set_member_commands_only() {
        let table = CommandTable::new(FAMILIES);
        let mut claimed: Vec<&str> = table
            .top_level()
            .filter(|spec| spec.member_args)
            .map(|spec| {
                let k = spec.keys;
                assert_eq!((k.first, k.last, k.step), (1, 1, 1), "{}", spec.name);
                assert!(spec.arity == 3 || spec.arity == -3, "{}", spec.name);
                spec.name
            })
            .collect();
        claimed.sort_unstable();
        assert_eq!(claimed, ["sadd", "sismember", "smismember", "srem"]);
    }
}
