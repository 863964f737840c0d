//! Frames and decodes arbitrary bytes as a BGP stream, with a context chosen by the first byte.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bgp_testkit::fuzz::decode_stream(data);
});
