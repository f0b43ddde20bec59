//! Fuzzes the request decoder: any bytes, delivered in any chunking, must decode
//! without panicking, and every decoded request must lie inside the input.
//!
//! Run from `server/` with the committed seeds (extreme counts and lengths,
//! nan/inf and binary arguments, 64 KB inline lines) and dictionary:
//!
//! ```text
//! cargo +nightly fuzz run decode_request fuzz/corpus/decode_request fuzz/seeds/decode_request -- -dict=fuzz/decode_request.dict
//! ```
//!
//! (New finds go to the first directory, `fuzz/corpus/`, which is not committed.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_server::protocol::{Decoded, RequestDecoder, RequestLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    // The first byte picks how many bytes arrive per read, to exercise resumption.
    let chunk = usize::from(chunk).max(1);
    let limits = RequestLimits { max_bulk_len: 1 << 20, authenticated: chunk % 2 == 0 };
    let mut decoder = RequestDecoder::new();
    let (mut start, mut available) = (0, 0);
    while available < input.len() {
        available = (available + chunk).min(input.len());
        loop {
            let buf = &input[start..available];
            match decoder.decode(buf, limits) {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Request { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    for arg in decoder.args(buf).iter() {
                        assert!(arg.len() as u64 <= limits.max_bulk_len || arg.len() <= 64 * 1024);
                    }
                    start += consumed;
                }
                Err(_) => return,
            }
        }
    }
});
