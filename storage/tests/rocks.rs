//! What only the RocksDB store has: its layout, the schema check, and corruption on disk.
//! These tests open the database directly with the `rocksdb` crate to plant what crdtkv
//! itself never writes.

use std::path::Path;

use rocksdb::{DB, Options};
use storage::rocks::{ALL_CFS, CF_DELTAS, CF_META, CF_STATE};
use storage::{Batch, Op, RocksStore, SCHEMA_VERSION, StorageError, Store, StoreOptions};

fn open(path: &Path) -> Result<RocksStore, StorageError> {
    RocksStore::open(path, &StoreOptions::default())
}

/// Opens a store's directory with plain RocksDB, all column families.
fn raw(path: &Path) -> DB {
    DB::open_cf(&Options::default(), path, ALL_CFS).unwrap()
}

fn scan(store: &RocksStore) -> Result<usize, StorageError> {
    let mut n = 0;
    store.scan(&mut |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

fn put_keys(store: &RocksStore, n: u32, value_bytes: usize) {
    let ops = (0..n).map(|i| Op::PutState {
        key: format!("key:{i:06}").into_bytes(),
        // Pseudo-random bytes, so that lz4 cannot shrink the table file to nothing.
        state: (0..value_bytes)
            .map(|j| (i as usize * 31 + j * 17 + j * j) as u8)
            .collect(),
        version: 0,
    });
    store.write(&Batch::from_iter(ops), false).unwrap();
}

#[test]
fn creates_every_column_family_and_stamps_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    let mut cfs = DB::list_cf(&Options::default(), dir.path()).unwrap();
    cfs.sort();
    assert_eq!(
        cfs,
        [
            "default",
            "deltas",
            "meta",
            "raft_log",
            "raft_state",
            "state"
        ]
    );
    let db = raw(dir.path());
    let version = db
        .get_cf(db.cf_handle(CF_META).unwrap(), b"\xffschema_version")
        .unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
}

#[test]
fn refuses_another_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    {
        let db = raw(dir.path());
        db.put_cf(
            db.cf_handle(CF_META).unwrap(),
            b"\xffschema_version",
            99u32.to_be_bytes(),
        )
        .unwrap();
    }
    let err = open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::IncompatibleSchema {
                found: 99,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 99"));
    {
        let db = raw(dir.path());
        db.put_cf(db.cf_handle(CF_META).unwrap(), b"\xffschema_version", b"x")
            .unwrap();
    }
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::Corrupt { cf: "meta", .. })
    ));

    // A newer layout with a column family of its own is recognised by its version too.
    let newer = tempfile::tempdir().unwrap();
    drop(open(newer.path()).unwrap());
    {
        let mut db = raw(newer.path());
        db.create_cf("future", &Options::default()).unwrap();
        db.put_cf(
            db.cf_handle(CF_META).unwrap(),
            b"\xffschema_version",
            2u32.to_be_bytes(),
        )
        .unwrap();
    }
    assert!(matches!(
        open(newer.path()),
        Err(StorageError::IncompatibleSchema { found: 2, .. })
    ));
}

#[test]
fn refuses_a_database_that_is_not_a_store() {
    // Data in a plain RocksDB database.
    let plain = tempfile::tempdir().unwrap();
    {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        DB::open(&opts, plain.path())
            .unwrap()
            .put(b"foreign", b"data")
            .unwrap();
    }
    assert!(matches!(
        open(plain.path()),
        Err(StorageError::NotAStore { .. })
    ));
    // A database with column families crdtkv does not know is left alone.
    let other = tempfile::tempdir().unwrap();
    {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        DB::open_cf(&opts, other.path(), ["users"]).unwrap();
    }
    assert!(matches!(
        open(other.path()),
        Err(StorageError::NotAStore { .. })
    ));
    let cfs = DB::list_cf(&Options::default(), other.path()).unwrap();
    assert_eq!(
        cfs,
        ["default", "users"],
        "no column family was added to it"
    );
    // A store of this version that lost a column family.
    let damaged = tempfile::tempdir().unwrap();
    drop(open(damaged.path()).unwrap());
    raw(damaged.path()).drop_cf("raft_log").unwrap();
    let err = open(damaged.path()).unwrap_err();
    assert!(
        matches!(&err, StorageError::NotAStore { reason, .. } if reason.contains("raft_log")),
        "{err}"
    );
}

#[test]
fn a_first_open_cut_short_is_completed() {
    // A crash during the very first open can leave some column families and no version.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        DB::open_cf(&opts, dir.path(), [CF_STATE]).unwrap();
    }
    let store = open(dir.path()).unwrap();
    let put = Op::PutState {
        key: b"k".to_vec(),
        state: b"v".to_vec(),
        version: 0,
    };
    store.write(&Batch::from(vec![put]), false).unwrap();
    drop(store);
    assert_eq!(scan(&open(dir.path()).unwrap()).unwrap(), 1);
}

#[test]
fn invalid_options_are_refused_before_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let opts = StoreOptions {
        write_buffer_bytes: 1,
        ..StoreOptions::default()
    };
    let err = RocksStore::open(&path, &opts).unwrap_err();
    assert!(matches!(
        err,
        StorageError::InvalidOption {
            key: "write_buffer_bytes",
            ..
        }
    ));
    assert!(!path.exists());
}

#[test]
fn a_malformed_key_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).unwrap();
        put_keys(&store, 3, 10);
    }
    {
        let db = raw(dir.path());
        // No key terminator: storage never writes this.
        db.put_cf(db.cf_handle(CF_STATE).unwrap(), b"bad\x00", b"v")
            .unwrap();
    }
    let store = open(dir.path()).unwrap();
    let err = scan(&store).unwrap_err();
    match &err {
        StorageError::Corrupt { cf, key, .. } => {
            assert_eq!((*cf, key.as_str()), ("state", r#""bad\x00""#))
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    drop(store);
    {
        let db = raw(dir.path());
        let cf = db.cf_handle(CF_STATE).unwrap();
        db.delete_cf(cf, b"bad\x00").unwrap();
        // A delta key whose sequence number is cut short.
        db.put_cf(db.cf_handle(CF_DELTAS).unwrap(), b"k\x00\x01\x00\x01", b"d")
            .unwrap();
    }
    // The delta index is read at open, so the damage is found there.
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::Corrupt { cf: "deltas", .. })
    ));
}

#[test]
fn a_damaged_table_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).unwrap();
        put_keys(&store, 2000, 100);
        store.flush().unwrap();
    }
    let table = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a table file after flush");
    let mut bytes = std::fs::read(&table).unwrap();
    // Data blocks come first in a table file; overwrite some in the first third.
    let at = bytes.len() / 3;
    bytes[at..at + 64].fill(0xA5);
    std::fs::write(&table, bytes).unwrap();
    let result = open(dir.path()).and_then(|s| scan(&s));
    assert!(
        matches!(result, Err(StorageError::Corrupt { .. })),
        "{result:?}"
    );
}

#[test]
fn estimates_and_memory_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    assert_eq!(store.key_count_estimate(), 0);
    put_keys(&store, 500, 20);
    assert!(store.key_count_estimate() > 0);
    assert!(store.memory_bytes() > 0);
    assert_eq!(scan(&store).unwrap(), 500);
}
