//! libFuzzer target: any bytes through decoding, parsing, checking and lowering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ndec::driver::fuzz_front_end(data);
});
