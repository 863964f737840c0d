//! The images a hand-over carries between processes (a session's state, a peer's
//! Adj-RIB-In), decoded from arbitrary bytes; the first byte picks which.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bgp_testkit::fuzz::hand_over_images(data);
});
