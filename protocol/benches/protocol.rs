//! Criterion benchmarks of the protocol's hot paths: the line decoder
//! (every byte a client sends goes through it), the command parser (every
//! line), the chat-text sanitiser (every chat line) and the encoders (every line the server sends, once per message
//! when the encoded bytes are shared, once per recipient otherwise).
//!
//! Run with `cargo bench -p chat-protocol`; `-- --quick` for a short run.
//! The inputs are 64-byte chat lines, the same size the load generator
//! (`chat-bench`) sends, so these numbers sit beside BENCHMARKS.md.

use std::hint::black_box;

use chat_protocol::text::sanitize;
use chat_protocol::{Command, LineDecoder, Nick, RoomName, ServerEvent, ServerLine, DEFAULT_MAX_LINE};
use criterion::{criterion_main, BatchSize, Criterion, Throughput};

/// A 63-byte chat line, like the load generator's, without its `\n`.
const CHAT_LINE: &str = "t=123456789012 s=3 n=4567 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// `lines` chat lines, each ending in `\n`.
fn stream(lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * (CHAT_LINE.len() + 1));
    for _ in 0..lines {
        out.extend_from_slice(CHAT_LINE.as_bytes());
        out.push(b'\n');
    }
    out
}

fn decoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("decoder");
    let input = stream(1024);
    group.throughput(Throughput::Bytes(input.len() as u64));
    // One 64 KiB read holding 1024 whole lines: the common case under load.
    group.bench_function("64KiB_read_of_64B_lines", |b| {
        let mut decoder = LineDecoder::new(DEFAULT_MAX_LINE);
        b.iter(|| decoder.decode(black_box(&input)).count());
    });
    // The same bytes in 100-byte reads, so most lines are split between
    // two reads and go through the decoder's buffer.
    group.bench_function("100B_reads_of_64B_lines", |b| {
        let mut decoder = LineDecoder::new(DEFAULT_MAX_LINE);
        b.iter(|| {
            input
                .chunks(100)
                .map(|piece| decoder.decode(black_box(piece)).count())
                .sum::<usize>()
        });
    });
    group.finish();
}

fn parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("command_parser");
    let cases = [
        ("chat_text", CHAT_LINE),
        ("nick", "/nick alice"),
        ("join", "/join rust"),
        ("msg", "/msg bob see you in #rust"),
        ("me", "/me waves"),
        ("double_slash", "//not a command"),
        ("control_chars", "bell\u{7} and escape\u{1b}[2J in text"),
        ("unknown", "/dance"),
    ];
    for (name, line) in cases {
        group.bench_function(name, |b| b.iter(|| Command::parse(black_box(line))));
    }
    group.finish();
}

fn sanitizer(c: &mut Criterion) {
    let mut group = c.benchmark_group("sanitize");
    let cases = [
        // The common case: printable ASCII, nothing to change.
        ("plain_ascii", CHAT_LINE),
        // Ordinary non-ASCII text, nothing to change: accents (precomposed
        // and combining), Cyrillic, CJK, an emoji ZWJ sequence, a flag.
        (
            "mixed_clean",
            "café naïve e\u{301} привет 你好 👩\u{1F3FD}\u{200D}💻 ok \u{1F1EB}\u{1F1F7} done",
        ),
        // Mixed text with something to replace near the start, so almost
        // all of it is copied.
        (
            "mixed_dirty",
            "\u{1b}[2J café naïve e\u{301} привет 你好 👩\u{1F3FD}\u{200D}💻 ok \u{1F1EB}\u{1F1F7} done",
        ),
        // Zalgo: a few letters under dozens of stacked marks each.
        (
            "zalgo",
            "z\u{336}\u{30c}\u{350}\u{33e}\u{30f}\u{304}\u{31a}\u{35d}\u{321}\u{32e}\u{353}\u{329}\u{318}a\u{334}\u{308}\u{35b}\u{301}\u{350}\u{31a}\u{341}\u{35c}\u{323}\u{329}\u{319}l\u{335}\u{30e}\u{344}\u{34b}\u{352}\u{35d}\u{347}\u{32d}\u{349}\u{33c}",
        ),
    ];
    for (name, text) in cases {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| sanitize(black_box(text)).len()));
    }
    group.finish();
}

fn encoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("encoder");
    let (Ok(alice), Ok(room)) = (Nick::new("alice"), RoomName::new("#rust")) else {
        return;
    };
    group.throughput(Throughput::Elements(1));
    let said = ServerEvent::Said {
        room: room.clone(),
        from: alice.clone(),
        text: CHAT_LINE.to_string(),
    };
    group.bench_function("server_event_said", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&said).encode(&mut out);
            out.len()
        });
    });
    let joined = ServerEvent::Joined { nick: alice, room };
    group.bench_function("server_event_joined", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&joined).encode(&mut out);
            out.len()
        });
    });
    let line = ServerLine::Message {
        from: "alice".to_string(),
        text: CHAT_LINE.to_string(),
    };
    group.bench_function("server_line_message", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&line).encode(&mut out);
            out.len()
        });
    });
    // Encoding into a fresh buffer each time: what a per-recipient encode
    // would cost, allocation included.
    group.bench_function("server_line_message_fresh_vec", |b| {
        b.iter_batched(
            Vec::new,
            |mut out| {
                black_box(&line).encode(&mut out);
                out
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// The group, in a module of its own: `criterion_group!` defines an
/// undocumented `pub fn`, which the workspace's `missing_docs` lint would
/// reject.
mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(
        benches,
        super::decoder,
        super::parser,
        super::sanitizer,
        super::encoder
    );
}
criterion_main!(group::benches);
