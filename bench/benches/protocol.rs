//! Decoding requests and encoding replies; encoding and decoding cluster bus frames.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringkv_server::cluster::id::Id;
use ringkv_server::cluster::message::{Addr, Body, Flags, Gossip, Header, Message};
use ringkv_server::cluster::slots::SlotSet;
use ringkv_server::cluster::wire::{self, Frame, FrameDecoder, Limits};
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

/// A `Ping` with three gossip entries, with or without the sender's claim.
fn ping(claim: bool) -> Frame {
    let gossip = (1..=3)
        .map(|n| Gossip {
            id: Id([n; 20]),
            shard: Id([n; 20]),
            addr: Addr {
                ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
                port: 7000,
                cport: 17000,
            },
            flags: Flags(Flags::MASTER),
            pong_age: 1200,
        })
        .collect();
    let header = Header {
        sender: Id([9; 20]),
        shard: Id([9; 20]),
        flags: Flags(Flags::MASTER),
        master: None,
        port: 7000,
        cport: 17000,
        current_epoch: 7,
        config_epoch: 5,
        claim_digest: 1,
        your_claim_digest: 2,
        offset: 0,
        knows_you: true,
        paused: false,
        claim: claim.then(|| Box::new((0..5461).collect::<SlotSet>())),
    };
    Frame::Message(Message {
        header,
        body: Body::Ping(gossip),
    })
}

fn bus(c: &mut Criterion) {
    let mut group = c.benchmark_group("bus");
    for (name, frame) in [("ping_3", ping(false)), ("ping_3_claim", ping(true))] {
        group.bench_function(format!("encode/{name}"), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                wire::encode(&frame, &mut out);
                out.len()
            });
        });
        group.bench_function(format!("frame_len/{name}"), |b| {
            b.iter(|| wire::frame_len(std::hint::black_box(&frame)));
        });
        let mut bytes = Vec::new();
        wire::encode(&frame, &mut bytes);
        group.bench_function(format!("decode/{name}"), |b| {
            let mut decoder = FrameDecoder::new(Limits {
                max_frame: 1 << 20,
                max_publish: 1 << 20,
            });
            let mut buf = BytesMut::new();
            b.iter(|| {
                buf.extend_from_slice(&bytes);
                decoder.decode(&mut buf)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode, bus);
criterion_main!(benches);
