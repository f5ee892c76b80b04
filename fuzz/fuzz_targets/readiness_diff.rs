//! Thin: the logic is `selectlab::fuzzing::readiness_diff`, which `cargo test` also runs on the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| selectlab::fuzzing::readiness_diff(data));
