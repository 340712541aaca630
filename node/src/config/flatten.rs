//! The configuration as a flat list of dotted keys (`server.port` → `6379`), sorted by name.
//! `CONFIG GET` matches patterns against these names, so every key of the tree is reachable
//! without a hand-written table that could drift from the structs.

use super::Config;

/// Every key of `config` as (`section.key`, value rendered as `CONFIG GET` shows it). Absent
/// optional keys are left out.
pub fn flatten(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Plain structs of strings, integers and enums always convert.
    let tree = toml::Value::try_from(config).expect("the config tree converts to TOML");
    walk("", &tree, &mut out);
    out
}

fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                walk(&name, value, out);
            }
        }
        leaf => out.push((prefix.to_owned(), render(leaf))),
    }
}

fn render(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_is_flattened_with_plain_values() {
        let mut c = Config::default();
        c.server.requirepass = Some("pw".into());
        let flat = flatten(&c);
        let get = |k: &str| flat.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("server.port"), Some("6379"));
        assert_eq!(get("server.bind"), Some("127.0.0.1"));
        assert_eq!(get("server.requirepass"), Some("pw"));
        assert_eq!(get("storage.fsync"), Some("everysec"));
        assert_eq!(get("limits.unauth_array_len_max"), Some("10"));
        assert_eq!(get("node.data_dir"), Some("data"));
        assert_eq!(get("node.node_id"), None);
        assert_eq!(get("storage.group_commit.sync_interval_ms"), Some("1000"));
        for section in ["node", "server", "limits", "storage", "log"] {
            assert!(
                flat.iter()
                    .any(|(k, _)| k.starts_with(&format!("{section}."))),
                "{section}"
            );
        }
    }
}
