//! The value layout of the `state` column family: the base's version (u64 big-endian), then
//! the encoded state. Bases are written with RocksDB *merges*, resolved by [`keep_highest`]: of
//! all writes of a key, the one with the highest version wins (the latest among equals), so a
//! base committed late never replaces a newer one (see [`Op::PutState`](crate::Op::PutState)).

use rocksdb::MergeOperands;

/// Name of the merge operator, recorded by RocksDB in the database's options.
pub(crate) const MERGE_OPERATOR: &str = "crdtkv_keep_highest_version";

/// Appends `version ++ state` to `out`.
pub(crate) fn encode_into(version: u64, state: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(state);
}

/// Splits a stored value into version and state.
pub(crate) fn decode(raw: &[u8]) -> Result<(u64, &[u8]), String> {
    match raw.split_first_chunk::<8>() {
        Some((version, state)) => Ok((u64::from_be_bytes(*version), state)),
        None => Err(format!("base of {} bytes has no version", raw.len())),
    }
}

fn version_of(raw: &[u8]) -> u64 {
    // A value too short to hold a version is corrupt; ranking it lowest lets any valid write
    // replace it, and reads still report it as corrupt.
    decode(raw).map_or(0, |(v, _)| v)
}

/// The merge operator of the `state` column family (full and partial merge alike: keeping the
/// maximum is associative).
pub(crate) fn keep_highest(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let mut best = existing;
    for operand in operands {
        if best.is_none_or(|b| version_of(operand) >= version_of(b)) {
            best = Some(operand);
        }
    }
    best.map(<[u8]>::to_vec)
}
