//! Fuzzes the line decoder: any bytes, split anywhere, with any limit.
//!
//! The first two bytes choose the line limit and a split point; the rest is
//! the stream. Checks, besides "no panic": feeding the stream in two pieces
//! gives the same items as feeding it whole, no line is longer than the
//! limit, and no line holds a `\n`.
#![no_main]

use chat_protocol::LineDecoder;
use libfuzzer_sys::fuzz_target;

fn decode(max: usize, pieces: &[&[u8]]) -> Vec<Result<String, chat_protocol::DecodeError>> {
    let mut decoder = LineDecoder::new(max);
    let mut items = Vec::new();
    for piece in pieces {
        items.extend(decoder.decode(piece));
    }
    items.extend(decoder.finish());
    items
}

fuzz_target!(|data: &[u8]| {
    let [limit, split, stream @ ..] = data else { return };
    let max = usize::from(*limit) + 1;
    let at = usize::from(*split).min(stream.len());
    let (a, b) = stream.split_at(at);
    let whole = decode(max, &[stream]);
    assert_eq!(decode(max, &[a, b]), whole);
    for line in whole.iter().flatten() {
        assert!(line.len() <= max);
        assert!(!line.contains('\n'));
    }
});
