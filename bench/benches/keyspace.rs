//! Keyspace operations without the network: GET and SET through a slot lock.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv_server::keyspace::{Expiry, Keyspace, Value};

const KEYS: usize = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect()
}

fn keyspace(c: &mut Criterion) {
    let names = keys();
    let ks = Keyspace::new();
    for k in &names {
        ks.lock_key(k)
            .insert(k, Value::string(b"xxx"), Expiry::Persist, 0);
    }
    let mut group = c.benchmark_group("keyspace");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let k = &names[i];
            ks.lock_key(k).get(k, 0).is_some()
        });
    });
    group.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            ks.lock_key(b"absent").get(b"absent", 0).is_some()
        });
    });
    group.bench_function("set_existing", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let k = &names[i];
            ks.lock_key(k)
                .insert(k, Value::string(b"yyy"), Expiry::Persist, 0)
        });
    });
    group.bench_function("set_then_delete_new_key", |b| {
        b.iter(|| {
            let mut t = ks.lock_key(b"fresh");
            t.insert(b"fresh", Value::string(b"v"), Expiry::At(10), 0);
            t.remove(b"fresh", 0)
        });
    });
    group.finish();
}

criterion_group!(benches, keyspace);
criterion_main!(benches);
