#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgnet_codegen::fuzz::label_image(data));
