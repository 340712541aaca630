//! Golden encoding vectors: fixed states of every type and the exact bytes they encode to,
//! checked into `tests/golden/`. An accidental change of the format fails here; an intended one
//! bumps `FORMAT_VERSION` and re-blesses with `CRDTKV_BLESS=1 cargo test -p crdt --test golden`.

mod samples;

use std::path::PathBuf;

use crdt::encoding::{decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, b) in bytes.iter().enumerate() {
        out.push_str(&format!("{b:02x}"));
        out.push(if i % 32 == 31 { '\n' } else { ' ' });
    }
    out.trim_end().to_string() + "\n"
}

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let bytes = encode(value);
    let path = golden_dir().join(format!("{name}.hex"));
    if std::env::var_os("CRDTKV_BLESS").is_some() {
        std::fs::write(&path, hex(&bytes)).expect("write golden file");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing golden vector {}: {e}; bless with CRDTKV_BLESS=1",
            path.display()
        )
    });
    assert_eq!(
        hex(&bytes),
        expected,
        "encoding of {name} changed; see the module doc"
    );
    let back: T = decode(&bytes).expect("golden bytes decode");
    assert_eq!(&back, value, "golden {name} does not round-trip");
}

#[test]
fn golden_vectors() {
    for (name, value) in samples::values() {
        check(&name, &value);
    }
    check("timestamp", &samples::ts(1_700_000_000_123, 7));
    check("causal_context", &samples::causal_context());
    check("g_counter", &samples::g_counter());
    check("pn_counter", &samples::pn_counter());
    check("or_set", &samples::or_set());
    check("lww_register", &samples::lww_register());
    check("rga", &samples::rga());
}

#[test]
fn every_golden_file_is_checked() {
    let mut expected: Vec<String> = samples::values().into_iter().map(|(n, _)| n).collect();
    expected.extend(
        [
            "timestamp",
            "causal_context",
            "g_counter",
            "pn_counter",
            "or_set",
            "lww_register",
            "rga",
        ]
        .map(String::from),
    );
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".hex")
            .to_string();
        assert!(expected.contains(&name), "stale golden file {name}.hex");
    }
}
