//! Logging to standard error through `tracing`. The filter is `RUST_LOG` when set, otherwise
//! `log.level` from the config; colours are used only on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// Installs the global subscriber. Call once, before anything logs; later calls do nothing.
pub fn init(log: &LogSection) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        // `log.level` was validated as a filter, so it parses.
        _ => EnvFilter::new(&log.level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Fails only if a subscriber is already installed (tests), which is fine.
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
}
