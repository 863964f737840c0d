//! Arbitrary operation sequences (peers, UPDATEs, stale marks, local routes, drains) into one
//! RIB, with its invariants and what each peer was told checked (see
//! `bgp_testkit::fuzz::rib`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bgp_testkit::fuzz::rib_updates(data);
});
