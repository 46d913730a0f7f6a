//! Scaffold: replaced by the issue that builds this target.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = data;
});
