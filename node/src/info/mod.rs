//! INFO: the node's state as `field:value` lines grouped in `# Sections`, like Redis.
//!
//! Sections are pluggable: each is an [`InfoSection`]. The built-in ones ([`builtin`]) cover
//! what the daemon shell knows (server, clients, memory, persistence, stats, replication of a
//! standalone node, cpu, keyspace from the keyspace hook); the cluster code adds its own or
//! replaces `replication` through [`crate::state::Hooks::info_sections`].
//!
//! Selection follows Redis 7: `INFO` and `INFO default` give the default sections, `INFO all`
//! and `INFO everything` every section, `INFO a b` the named ones (any case); unknown names
//! select nothing.

mod builtin;
pub mod process;

pub use builtin::{REDIS_COMPAT_VERSION, fsync_name};

use std::fmt::Display;
use std::sync::Arc;

use crate::state::NodeState;

/// One INFO section.
pub trait InfoSection: Send + Sync {
    /// Lowercase name, as given to `INFO name`; the header shows it capitalised.
    fn name(&self) -> &'static str;
    /// Whether plain `INFO` includes it.
    fn is_default(&self) -> bool {
        true
    }
    /// Writes the section's fields.
    fn render(&self, state: &NodeState, out: &mut InfoWriter);
}

/// Collects the text of INFO.
#[derive(Debug, Default)]
pub struct InfoWriter {
    text: String,
}

impl InfoWriter {
    /// Adds one `name:value` line.
    pub fn field(&mut self, name: &str, value: impl Display) {
        use std::fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{name}:{value}\r\n");
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The built-in sections with `extra` added: one of the same name replaces a built-in, others
/// come after the built-ins, before `keyspace`.
pub fn sections_with(extra: &[Arc<dyn InfoSection>]) -> Vec<Arc<dyn InfoSection>> {
    let mut sections = builtin::sections();
    for section in extra {
        match sections.iter_mut().find(|s| s.name() == section.name()) {
            Some(slot) => *slot = Arc::clone(section),
            None => {
                let at = sections
                    .iter()
                    .position(|s| s.name() == "keyspace")
                    .unwrap_or(sections.len());
                sections.insert(at, Arc::clone(section));
            }
        }
    }
    sections
}

fn header(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The INFO text for the requested section names (empty: the default sections).
pub fn render(state: &NodeState, requested: &[&[u8]]) -> String {
    let wants = |section: &dyn InfoSection| {
        if requested.is_empty() {
            return section.is_default();
        }
        requested.iter().any(|r| {
            r.eq_ignore_ascii_case(b"all")
                || r.eq_ignore_ascii_case(b"everything")
                || (r.eq_ignore_ascii_case(b"default") && section.is_default())
                || r.eq_ignore_ascii_case(section.name().as_bytes())
        })
    };
    let mut out = InfoWriter::default();
    let mut first = true;
    for section in state.info_sections.iter().filter(|s| wants(s.as_ref())) {
        if !first {
            out.text.push_str("\r\n");
        }
        first = false;
        out.text.push_str("# ");
        out.text.push_str(&header(section.name()));
        out.text.push_str("\r\n");
        section.render(state, &mut out);
    }
    out.text
}
