//! Opening a RocksDB store: tuning, column families, the schema version check, and the
//! delta index built at start.

use std::collections::HashSet;
use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Options, ReadOptions,
    WriteBatch, WriteOptions,
};

use super::{ALL_CFS, CF_DELTAS, CF_META, CF_STATE, SCHEMA_KEY, SCHEMA_VERSION, cf};
use crate::error::{StorageError, display_key, read_error};
use crate::keys;
use crate::options::StoreOptions;

/// Memtable size of the small column families (`meta`, `raft_state`, and `raft_log` until the
/// Raft keyspace tunes its own), in bytes.
const SMALL_CF_WRITE_BUFFER_BYTES: usize = 4 << 20;
/// Memtables per large column family: one being written and up to two waiting for flush, so a
/// slow flush does not stall writers at once.
const WRITE_BUFFERS_PER_CF_MAX: i32 = 3;
/// Block size of table files. Larger than RocksDB's 4 KiB default because values are small and
/// read by scans: better lz4 ratio and a smaller index.
const BLOCK_BYTES: usize = 16 << 10;
/// Incremental background syncing of table files and the log, so that an fsync never has
/// hundreds of megabytes of dirty pages to write at once.
const BYTES_PER_SYNC: u64 = 1 << 20;
/// RocksDB's own info log: a few small files, not an unbounded stream next to the data.
const INFO_LOG_FILES_MAX: usize = 4;
const INFO_LOG_FILE_BYTES_MAX: usize = 8 << 20;

/// Database-wide options.
///
/// Durability rests on one default kept on purpose: `manual_wal_flush` is off, so every write
/// reaches the log file (the OS page cache) before `write` returns and survives `kill -9`.
/// The WAL recovery mode stays at RocksDB's default point-in-time recovery, which drops a torn
/// tail after power loss and keeps everything before it.
pub(super) fn db_options(o: &StoreOptions, cache: &Cache) -> Options {
    let mut db = cf_options(o, cache, false);
    db.create_if_missing(true);
    db.set_max_background_jobs(o.max_background_jobs);
    // Required by the vector memtables of `cf_options`; writes reach RocksDB one group at a time
    // anyway (the group committer).
    db.set_allow_concurrent_memtable_write(false);
    db.set_db_write_buffer_size(o.write_buffers_total_bytes);
    db.set_max_total_wal_size(o.wal_total_bytes_max);
    db.set_max_open_files(o.open_files_max);
    db.set_bytes_per_sync(BYTES_PER_SYNC);
    db.set_wal_bytes_per_sync(BYTES_PER_SYNC);
    db.set_keep_log_file_num(INFO_LOG_FILES_MAX);
    db.set_max_log_file_size(INFO_LOG_FILE_BYTES_MAX);
    db
}

/// Options of one column family. All share one small block cache; index and filter blocks
/// live in it too, so RocksDB's read-side memory is bounded by `block_cache_bytes`. There is
/// no bloom filter: the node reads from its own memory, RocksDB only by scans.
pub(super) fn cf_options(o: &StoreOptions, cache: &Cache, large: bool) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_block_size(BLOCK_BYTES);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut cf = Options::default();
    cf.set_block_based_table_factory(&table);
    cf.set_compression_type(DBCompressionType::Lz4);
    cf.set_level_compaction_dynamic_level_bytes(true);
    if large {
        // An append-only vector memtable, sorted once when it is flushed, instead of the default
        // skip list: inserting into a skip list of a hundred thousand entries costs a cache miss
        // per level on the write path, and was the largest single cost of a small write. The
        // skip list's strength, reading the memtable while it is written, is not needed: the node
        // serves reads from its own memory and reads RocksDB only by scans at start.
        cf.set_memtable_factory(rocksdb::MemtableFactory::Vector);
        cf.set_write_buffer_size(o.write_buffer_bytes);
        cf.set_max_write_buffer_number(WRITE_BUFFERS_PER_CF_MAX);
    } else {
        cf.set_write_buffer_size(SMALL_CF_WRITE_BUFFER_BYTES.min(o.write_buffer_bytes));
    }
    cf
}

/// Opens (or creates) the database and checks that it is a crdtkv store of this schema.
pub(super) fn open_db(path: &Path, o: &StoreOptions, cache: &Cache) -> Result<DB, StorageError> {
    let mut db_opts = db_options(o, cache);
    db_opts.create_missing_column_families(true);
    if path.join("CURRENT").exists() {
        let existing = DB::list_cf(&db_opts, path).map_err(|e| open_error(path, e))?;
        let complete = ALL_CFS
            .iter()
            .all(|name| existing.iter().any(|e| e == name));
        if !complete || existing.len() != ALL_CFS.len() + 1 {
            // Not (yet) a complete crdtkv store: look before touching it.
            inspect_read_only(path, &existing)?;
        }
    }
    let descriptors = ALL_CFS.iter().map(|&name| {
        let large = name == CF_STATE || name == CF_DELTAS;
        let mut cf = cf_options(o, cache, large);
        if name == CF_STATE {
            cf.set_merge_operator_associative(
                super::versioned::MERGE_OPERATOR,
                super::versioned::keep_highest,
            );
        }
        ColumnFamilyDescriptor::new(name, cf)
    });
    let db =
        DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(|e| open_error(path, e))?;
    check_schema(&db, path)?;
    Ok(db)
}

fn open_error(path: &Path, e: rocksdb::Error) -> StorageError {
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StorageError::Corrupt {
            cf: "(database files)",
            key: "?".into(),
            detail: e.into_string(),
        },
        _ => StorageError::Open {
            path: path.to_owned(),
            reason: e.into_string(),
        },
    }
}

fn not_a_store(path: &Path, reason: String) -> StorageError {
    StorageError::NotAStore {
        path: path.to_owned(),
        reason,
    }
}

/// Decides, without writing, about a database whose column families are not exactly ours:
/// another program's database, a newer crdtkv's, or ours cut short by a crash during its very
/// first open (all column families empty). Only the last may be opened for writing.
fn inspect_read_only(path: &Path, existing: &[String]) -> Result<(), StorageError> {
    let db = DB::open_cf_for_read_only(&Options::default(), path, existing, false)
        .map_err(|e| open_error(path, e))?;
    let stamped = match db.cf_handle(CF_META) {
        Some(meta) => read_schema(&db, meta, path)?.is_some(),
        None => false,
    };
    let unknown: Vec<&String> = existing
        .iter()
        .filter(|n| *n != rocksdb::DEFAULT_COLUMN_FAMILY_NAME && !ALL_CFS.contains(&n.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(not_a_store(
            path,
            format!("unknown column families {unknown:?}"),
        ));
    }
    if stamped {
        let missing: Vec<&str> = ALL_CFS
            .into_iter()
            .filter(|name| !existing.iter().any(|e| e == name))
            .collect();
        return Err(not_a_store(
            path,
            format!("schema version {SCHEMA_VERSION} but column families {missing:?} are missing"),
        ));
    }
    for name in existing {
        let mut it = match db.cf_handle(name) {
            Some(handle) => db.raw_iterator_cf(handle),
            None => db.raw_iterator(),
        };
        it.seek_to_first();
        it.status()
            .map_err(|e| read_error("(existing database)", None, e))?;
        if it.valid() {
            return Err(not_a_store(
                path,
                format!("column family `{name}` holds data but no crdtkv schema version"),
            ));
        }
    }
    Ok(())
}

/// The stored schema version, refusing any other than ours. `None` if none is stored.
fn read_schema(
    db: &DB,
    meta: &rocksdb::ColumnFamily,
    path: &Path,
) -> Result<Option<u32>, StorageError> {
    let Some(bytes) = db
        .get_cf(meta, SCHEMA_KEY)
        .map_err(|e| read_error(CF_META, Some(SCHEMA_KEY), e))?
    else {
        return Ok(None);
    };
    let found = <[u8; 4]>::try_from(bytes.as_slice())
        .map(u32::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            cf: CF_META,
            key: display_key(SCHEMA_KEY),
            detail: format!("schema version of {} bytes, expected 4", bytes.len()),
        })?;
    if found != SCHEMA_VERSION {
        return Err(StorageError::IncompatibleSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Some(found))
}

/// Refuses another schema version; stamps a new, empty database with ours.
fn check_schema(db: &DB, path: &Path) -> Result<(), StorageError> {
    let meta = cf(db, CF_META);
    if read_schema(db, meta, path)?.is_some() {
        return Ok(());
    }
    // No version: a new database (or one whose first open crashed before the version was
    // written). It must be empty, then it is initialised now.
    for name in ALL_CFS {
        let mut it = db.raw_iterator_cf(cf(db, name));
        it.seek_to_first();
        it.status().map_err(|e| read_error(name, None, e))?;
        if it.valid() {
            return Err(not_a_store(
                path,
                format!("column family `{name}` holds data but no schema version is stored"),
            ));
        }
    }
    let mut batch = WriteBatch::default();
    batch.put_cf(meta, SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes());
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.write_opt(batch, &sync).map_err(|e| StorageError::Open {
        path: path.to_owned(),
        reason: e.into_string(),
    })
}

/// The user keys that have at least one delta, read once at open by seeking from one key's
/// range to the next (one step per key, not per delta).
pub(super) fn load_delta_index(db: &DB) -> Result<HashSet<Vec<u8>>, StorageError> {
    let mut index = HashSet::new();
    let mut opts = ReadOptions::default();
    opts.fill_cache(false);
    let mut it = db.raw_iterator_cf_opt(cf(db, CF_DELTAS), opts);
    it.seek_to_first();
    while let Some(raw) = it.key() {
        let corrupt = |detail| StorageError::Corrupt {
            cf: CF_DELTAS,
            key: display_key(raw),
            detail,
        };
        let (prefix, _) = keys::decode_delta_key(raw).map_err(corrupt)?;
        let key = keys::decode_state_key(&raw[..prefix]).map_err(corrupt)?;
        let end = keys::range_end(&raw[..prefix]);
        index.insert(key);
        it.seek(&end);
    }
    it.status().map_err(|e| read_error(CF_DELTAS, None, e))?;
    Ok(index)
}
