//! `casa::recording::Reader` on arbitrary bytes: the header, then every frame until a clean end
//! or an error, decoding each kernel record. Frame lengths come from the input, so the reader
//! must bound its allocations (`FRAME_MAX`) and report truncation, never panic.
#![no_main]

use std::path::Path;

use casa::recording::{Frame, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data, Path::new("fuzz")) else {
        return;
    };
    let _ = reader.meta();
    // Every frame consumes at least its 5-byte head, so this loop ends with the input.
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Frame::Record(raw) = frame {
            let _ = casa::decode::decode(&raw);
        }
    }
});
