//! Decoding requests and encoding replies.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringkv_server::protocol::{Decoded, Protocol, Reply, RequestDecoder, RequestLimits};

const LIMITS: RequestLimits = RequestLimits {
    max_bulk_len: 512 << 20,
    authenticated: true,
};

fn pipeline(commands: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..commands {
        let key = format!("key:{i:012}");
        out.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxxx\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    out
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for n in [1, 16, 64] {
        let input = pipeline(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("set_pipeline", n), &input, |b, input| {
            let mut decoder = RequestDecoder::new();
            b.iter(|| {
                let mut pos = 0;
                let mut args = 0;
                while let Ok(Decoded::Request { consumed }) = decoder.decode(&input[pos..], LIMITS)
                {
                    args += decoder.args(&input[pos..]).len();
                    pos += consumed;
                }
                args
            });
        });
    }
    let inline = b"SET key:000000000001 \"some value\"\r\n".repeat(16);
    group.throughput(Throughput::Elements(16));
    group.bench_function("inline_16", |b| {
        let mut decoder = RequestDecoder::new();
        b.iter(|| {
            let mut pos = 0;
            while let Ok(Decoded::Request { consumed }) = decoder.decode(&inline[pos..], LIMITS) {
                pos += consumed;
            }
            pos
        });
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(64));
    group.bench_function("bulk_64", |b| {
        let mut reply = Reply::new(Protocol::Resp2);
        b.iter(|| {
            reply.clear();
            for _ in 0..64 {
                reply.bulk(b"xxx");
            }
            reply.len()
        });
    });
    group.bench_function("int_64", |b| {
        let mut reply = Reply::new(Protocol::Resp3);
        b.iter(|| {
            reply.clear();
            for i in 0..64 {
                reply.int(i * 1_000_003);
            }
            reply.len()
        });
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
