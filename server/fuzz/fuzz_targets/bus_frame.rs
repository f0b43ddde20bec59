//! Fuzzes the cluster bus frame decoder: any bytes, delivered in any chunking,
//! must decode without panicking, and every decoded frame must encode back to
//! exactly the bytes it was taken from (the encoding is canonical).
//!
//! Run from `server/` with the committed seeds (a frame of every type, counts and
//! lengths past the frame, over-long and unknown frames):
//!
//! ```text
//! cargo +nightly fuzz run bus_frame fuzz/corpus/bus_frame fuzz/seeds/bus_frame
//! ```
//!
//! (New finds go to the first directory, `fuzz/corpus/`, which is not committed.)
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringkv_server::cluster::wire::{encode, FrameDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    // The first byte picks how many bytes arrive per read, to exercise resumption.
    let chunk = usize::from(chunk).max(1);
    let limits = Limits {
        max_frame: 64 << 10,
        max_publish: 256 << 10,
    };
    let mut decoder = FrameDecoder::new(limits);
    let (mut buf, mut start) = (BytesMut::new(), 0);
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    let taken = before - buf.len();
                    let mut again = Vec::new();
                    encode(&frame, &mut again);
                    assert_eq!(again, input[start..start + taken]);
                    start += taken;
                }
                Err(_) => {
                    assert_eq!(buf.len(), before, "an error takes nothing");
                    return;
                }
            }
        }
    }
});
