//! A whole speaker core (session FSM and RIB, no runtime) fed arbitrary bytes as from a peer
//! after a valid handshake, with time steps, drains and reconnections in between (see
//! `bgp_testkit::fuzz::core`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bgp_testkit::fuzz::core_bytes(data);
});
