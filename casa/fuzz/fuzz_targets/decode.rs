//! `casa::decode::decode` on arbitrary bytes: a kernel record decoder must return `Ok` or
//! `Err` for any input, never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = casa::decode::decode(data) {
        // Touch what the pipeline derives from a decoded event first.
        let _ = ev.detail.kind_name();
        let _ = ev.comm.to_text();
    }
});
