#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmicro::fuzz::consul_health(data));
