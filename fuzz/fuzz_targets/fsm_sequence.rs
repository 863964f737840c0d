//! Arbitrary input sequences (events, messages, time steps) into one session; the script
//! runner checks the FSM's invariants after every step.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = bgp_fsm::script::fuzz(data) {
        panic!("invariant violated: {v:?}");
    }
});
