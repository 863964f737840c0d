//! decode → encode → decode must give the same message.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bgp_testkit::fuzz::round_trip(data);
});
