//! Range and consistency checks of a [`Config`], run once after the file and the flags are
//! merged. Each failure names the dotted key so the operator knows which line to fix.

use std::net::IpAddr;

use super::{Config, ConfigError};

/// Largest `query_buffer_bytes_max`: argument positions inside one request are kept as 32-bit
/// offsets, so one request can never be larger than this.
pub const QUERY_BUFFER_BYTES_LIMIT: u64 = u32::MAX as u64;

/// Largest `array_len_max`, Redis' own ceiling on a multibulk count (`INT_MAX`).
pub const ARRAY_LEN_LIMIT: u64 = i32::MAX as u64;

/// Largest `server.connection_threads`.
pub const CONNECTION_THREADS_LIMIT: u64 = 1024;

/// Smallest `inline_bytes_max`: enough for any `*N` or `$N` header with a 64-bit number.
pub const INLINE_BYTES_MIN: u64 = 32;

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn at_least(key: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(invalid(key, format!("must be at least {min}, got {value}")));
    }
    Ok(())
}

fn at_most(key: &'static str, value: u64, max: u64, max_name: &str) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(
            key,
            format!("must be at most {max_name} ({max}), got {value}"),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every value; the first problem found is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_server()?;
        self.validate_limits()?;
        self.validate_storage()?;
        self.validate_log()?;
        self.validate_cluster()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        cluster
            .check()
            .map_err(|(key, reason)| invalid(&format!("cluster.{key}"), reason))?;
        // Anti-entropy ships a key's whole state in one transport message.
        let room = (cluster.transport.message_bytes_max as u64)
            .saturating_sub(cluster.replication.key_bytes_max as u64)
            .saturating_sub(super::MESSAGE_OVERHEAD_BYTES);
        at_most(
            "limits.value_bytes_max",
            self.limits.value_bytes_max,
            room,
            "cluster.transport.message_bytes_max - cluster.replication.key_bytes_max - 4096 \
             in a cluster",
        )
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        if self.node.node_id == Some(0) {
            return Err(invalid(
                "node.node_id",
                "must be 1..=18446744073709551615, got 0",
            ));
        }
        if self.node.max_clock_offset_ms == 0 {
            return Err(invalid("node.max_clock_offset_ms", "must be at least 1"));
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return Err(invalid("node.data_dir", "must not be empty"));
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.bind.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "server.bind",
                format!("must be an IPv4 or IPv6 address, got {:?}", s.bind),
            ));
        }
        if !(1..=65535).contains(&s.port) {
            return Err(invalid(
                "server.port",
                format!("must be 1..=65535, got {}", s.port),
            ));
        }
        if s.requirepass.as_deref() == Some("") {
            return Err(invalid(
                "server.requirepass",
                "must not be empty; remove the key to accept clients without a password",
            ));
        }
        at_least("server.connections_max", s.connections_max, 1)?;
        at_most(
            "server.connections_max",
            s.connections_max,
            1_000_000,
            "one million",
        )?;
        at_most(
            "server.connection_threads",
            s.connection_threads,
            CONNECTION_THREADS_LIMIT,
            "1024",
        )?;
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        at_least("limits.bulk_bytes_max", l.bulk_bytes_max, 1)?;
        at_least("limits.array_len_max", l.array_len_max, 1)?;
        at_most(
            "limits.array_len_max",
            l.array_len_max,
            ARRAY_LEN_LIMIT,
            "2^31-1",
        )?;
        at_least(
            "limits.inline_bytes_max",
            l.inline_bytes_max,
            INLINE_BYTES_MIN,
        )?;
        at_least("limits.value_bytes_max", l.value_bytes_max, 1)?;
        at_least("limits.query_buffer_bytes_max", l.query_buffer_bytes_max, 1)?;
        at_most(
            "limits.query_buffer_bytes_max",
            l.query_buffer_bytes_max,
            QUERY_BUFFER_BYTES_LIMIT,
            "2^32-1",
        )?;
        at_most(
            "limits.bulk_bytes_max",
            l.bulk_bytes_max,
            l.query_buffer_bytes_max,
            "limits.query_buffer_bytes_max",
        )?;
        at_most(
            "limits.inline_bytes_max",
            l.inline_bytes_max,
            l.query_buffer_bytes_max,
            "limits.query_buffer_bytes_max",
        )?;
        at_least("limits.pipeline_commands_max", l.pipeline_commands_max, 1)?;
        at_least("limits.reply_buffer_bytes_max", l.reply_buffer_bytes_max, 1)?;
        at_least("limits.unauth_bulk_bytes_max", l.unauth_bulk_bytes_max, 1)?;
        at_most(
            "limits.unauth_bulk_bytes_max",
            l.unauth_bulk_bytes_max,
            l.bulk_bytes_max,
            "limits.bulk_bytes_max",
        )?;
        // AUTH and HELLO 3 AUTH user pass need up to 5 arguments.
        at_least("limits.unauth_array_len_max", l.unauth_array_len_max, 5)?;
        at_most(
            "limits.unauth_array_len_max",
            l.unauth_array_len_max,
            l.array_len_max,
            "limits.array_len_max",
        )?;
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        self.storage.validate().map_err(|e| match e {
            storage::StorageError::InvalidOption { key, reason } => {
                invalid(&format!("storage.{key}"), reason)
            }
            other => invalid("storage", other.to_string()),
        })
    }

    fn validate_log(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.log.level)
            .map_err(|e| invalid("log.level", format!("{e} in {:?}", self.log.level)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_key(cfg: &Config) -> String {
        match cfg.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let mut c = Config::default();
        c.server.port = 0;
        assert_eq!(error_key(&c), "server.port");
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "server.port: must be 1..=65535, got 0"
        );

        let mut c = Config::default();
        c.server.port = 65536;
        assert_eq!(error_key(&c), "server.port");

        let mut c = Config::default();
        c.server.bind = "localhost:1".into();
        assert_eq!(error_key(&c), "server.bind");

        let mut c = Config::default();
        c.node.node_id = Some(0);
        assert_eq!(error_key(&c), "node.node_id");

        let mut c = Config::default();
        c.server.requirepass = Some(String::new());
        assert_eq!(error_key(&c), "server.requirepass");

        let mut c = Config::default();
        c.server.connection_threads = CONNECTION_THREADS_LIMIT + 1;
        assert_eq!(error_key(&c), "server.connection_threads");

        let mut c = Config::default();
        c.limits.unauth_bulk_bytes_max = c.limits.bulk_bytes_max + 1;
        assert_eq!(error_key(&c), "limits.unauth_bulk_bytes_max");

        let mut c = Config::default();
        c.limits.query_buffer_bytes_max = QUERY_BUFFER_BYTES_LIMIT + 1;
        assert_eq!(error_key(&c), "limits.query_buffer_bytes_max");

        let mut c = Config::default();
        c.limits.inline_bytes_max = 8;
        assert_eq!(error_key(&c), "limits.inline_bytes_max");

        let mut c = Config::default();
        c.limits.array_len_max = ARRAY_LEN_LIMIT + 1;
        assert_eq!(error_key(&c), "limits.array_len_max");

        let mut c = Config::default();
        c.storage.max_background_jobs = 0;
        assert_eq!(error_key(&c), "storage.max_background_jobs");

        let mut c = Config::default();
        c.storage.group_commit.queue_len_max = 0;
        assert_eq!(error_key(&c), "storage.group_commit.queue_len_max");

        let mut c = Config::default();
        c.log.level = "info,=bogus=".into();
        assert_eq!(error_key(&c), "log.level");

        let mut c = Config {
            cluster: Some(super::super::ClusterSection::default()),
            ..Config::default()
        };
        assert_eq!(error_key(&c), "limits.value_bytes_max");
        c.limits.value_bytes_max = 1 << 20;
        c.validate().unwrap();
        c.cluster.as_mut().unwrap().replication.ae_period_ms = 0;
        assert_eq!(error_key(&c), "cluster.replication.ae_period_ms");
        c.cluster.as_mut().unwrap().replication.ae_period_ms = 100;
        c.cluster.as_mut().unwrap().transport.bind_addr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(error_key(&c), "cluster.transport.bind_addr");
    }
}
