//! Decoding untrusted bytes never panics: random bytes, truncations and bit flips of valid
//! encodings of every type either give an error or decode to a state that passes validation and
//! round-trips through our own (canonical) encoding. MessagePack lets one integer be written in
//! several widths, so accepted bytes need not be byte-identical to our encoding; fingerprints
//! are always taken over our re-encoding, never over received bytes.

mod samples;

use crdt::encoding::{FORMAT_VERSION, decode, encode};
use crdt::{CausalContext, GCounter, LwwRegister, OrSet, PnCounter, Value};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn no_panic<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = decode::<T>(bytes) {
        let ours = encode(&v);
        let again: T = decode(&ours).map_err(|e| TestCaseError::fail(format!("re-decode: {e}")))?;
        prop_assert_eq!(encode(&again), ours, "re-encoding is not stable");
    }
    Ok(())
}

fn all_types(bytes: &[u8]) -> Result<(), TestCaseError> {
    no_panic::<Value>(bytes)?;
    no_panic::<OrSet>(bytes)?;
    no_panic::<LwwRegister>(bytes)?;
    no_panic::<PnCounter>(bytes)?;
    no_panic::<GCounter>(bytes)?;
    no_panic::<crdt::Rga>(bytes)?;
    no_panic::<CausalContext>(bytes)
}

fn valid_encodings() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = samples::values().iter().map(|(_, x)| encode(x)).collect();
    v.push(encode(&samples::or_set()));
    v.push(encode(&samples::lww_register()));
    v.push(encode(&samples::pn_counter()));
    v.push(encode(&samples::causal_context()));
    v.push(encode(&samples::rga()));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend(body);
        all_types(&bytes)?;
    }

    #[test]
    fn truncated_and_flipped(pick in any::<usize>(), cut in any::<usize>(), flip in any::<usize>(), bit in 0u8..8) {
        let encodings = valid_encodings();
        let valid = &encodings[pick % encodings.len()];
        let truncated = &valid[..cut % (valid.len() + 1)];
        all_types(truncated)?;
        let mut flipped = valid.clone();
        let at = flip % flipped.len();
        flipped[at] ^= 1 << bit;
        all_types(&flipped)?;
    }
}

#[test]
fn hostile_lengths_are_refused_without_allocating() {
    // A value claiming 2^32-1 parts, a set claiming 2^32-1 members, a register value of 4 GiB.
    for body in [
        &[0xddu8, 0xff, 0xff, 0xff, 0xff][..],
        &[0x92, 0xdd, 0xff, 0xff, 0xff, 0xff],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend_from_slice(body);
        assert!(decode::<Value>(&bytes).is_err());
        assert!(decode::<OrSet>(&bytes).is_err());
        assert!(decode::<LwwRegister>(&bytes).is_err());
    }
}

#[test]
fn inconsistent_states_are_refused() {
    // A register entry whose dot the context never saw.
    let reg = samples::lww_register();
    let mut bytes = encode(&reg);
    // Replace the context (last element) with an empty one: [[], []] = 0x92 0x90 0x90.
    let empty_ctx = [0x92u8, 0x90, 0x90];
    let ctx_len = encode(&*reg.context()).len() - 1;
    bytes.truncate(bytes.len() - ctx_len);
    bytes.extend_from_slice(&empty_ctx);
    assert!(decode::<LwwRegister>(&bytes).is_err());
}
