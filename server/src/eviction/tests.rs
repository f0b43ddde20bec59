//! Deterministic checks of what each policy evicts, on a keyspace without a
//! server: "memory" is the number of keys.

use super::*;
use crate::keyspace::access::Tracking;
use crate::keyspace::{Expiry, Value};

const T0: Millis = 1_700_000_000_000;

fn settings(policy: Policy) -> Settings {
    Settings { policy, samples: 5 }
}

fn keyspace_for(policy: Policy) -> Keyspace {
    let keyspace = Keyspace::new();
    keyspace.set_tracking(Tracking {
        lfu: policy.counts_frequency(),
        sketch: policy == Policy::AllkeysTinylfu,
        ..Tracking::default()
    });
    keyspace
}

fn put(keyspace: &Keyspace, key: &str, ttl: Option<Millis>, now: Millis) {
    let expiry = ttl.map_or(Expiry::Persist, |ttl| Expiry::At(now + ttl));
    keyspace
        .lock_key(key.as_bytes())
        .insert(key.as_bytes(), Value::Int(1), expiry, now);
}

fn read(keyspace: &Keyspace, key: &str, now: Millis) {
    keyspace.lock_key(key.as_bytes()).get(key.as_bytes(), now);
}

fn exists(keyspace: &Keyspace, key: &str, now: Millis) -> bool {
    keyspace
        .lock_key(key.as_bytes())
        .contains(key.as_bytes(), now)
}

/// Evicts down to `keep` keys.
fn shrink_to(
    evictor: &Evictor,
    keyspace: &Keyspace,
    policy: Policy,
    keep: usize,
    now: Millis,
) -> Result<usize, OutOfMemory> {
    evictor.evict_while(
        keyspace,
        settings(policy),
        now,
        || keyspace.len() > keep,
        |_, _| {},
    )
}

#[test]
fn lru_keeps_recently_touched_keys() {
    let keyspace = keyspace_for(Policy::AllkeysLru);
    for i in 0..2_000 {
        put(&keyspace, &format!("k{i}"), None, T0);
    }
    let later = T0 + 10_000;
    for i in 0..200 {
        read(&keyspace, &format!("k{i}"), later);
    }
    let evictor = Evictor::default();
    assert_eq!(
        shrink_to(&evictor, &keyspace, Policy::AllkeysLru, 1_000, later),
        Ok(1_000)
    );
    assert_eq!(keyspace.len(), 1_000);
    assert_eq!(evictor.evicted(), 1_000);
    let survivors = (0..200)
        .filter(|i| exists(&keyspace, &format!("k{i}"), later))
        .count();
    assert_eq!(survivors, 200);
}

#[test]
fn volatile_policies_never_evict_keys_without_ttl() {
    for policy in [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
    ] {
        let keyspace = keyspace_for(policy);
        for i in 0..500 {
            put(&keyspace, &format!("p{i}"), None, T0);
            put(&keyspace, &format!("v{i}"), Some(60_000), T0);
        }
        let evictor = Evictor::default();
        assert_eq!(shrink_to(&evictor, &keyspace, policy, 700, T0), Ok(300));
        // Asked for more than the volatile keys can give: all of them go, then OOM.
        assert_eq!(
            shrink_to(&evictor, &keyspace, policy, 100, T0),
            Err(OutOfMemory)
        );
        assert_eq!(keyspace.len(), 500, "{policy:?}");
        assert_eq!(keyspace.volatile_len(), 0);
        assert!((0..500).all(|i| exists(&keyspace, &format!("p{i}"), T0)));
    }
}

#[test]
fn noeviction_refuses() {
    let keyspace = keyspace_for(Policy::NoEviction);
    put(&keyspace, "a", None, T0);
    let evictor = Evictor::default();
    assert_eq!(
        shrink_to(&evictor, &keyspace, Policy::NoEviction, 0, T0),
        Err(OutOfMemory)
    );
    assert_eq!(
        shrink_to(&evictor, &keyspace, Policy::NoEviction, 1, T0),
        Ok(0)
    );
    assert_eq!(keyspace.len(), 1);
}

#[test]
fn lfu_keeps_frequently_used_keys() {
    let keyspace = keyspace_for(Policy::AllkeysLfu);
    for i in 0..1_000 {
        put(&keyspace, &format!("k{i}"), None, T0);
    }
    for i in 0..100 {
        let key = format!("k{i}");
        keyspace
            .lock_key(key.as_bytes())
            .set_frequency(key.as_bytes(), 50, T0);
    }
    let evictor = Evictor::default();
    shrink_to(&evictor, &keyspace, Policy::AllkeysLfu, 500, T0).unwrap();
    assert!((0..100).all(|i| exists(&keyspace, &format!("k{i}"), T0)));
}

#[test]
fn volatile_ttl_evicts_the_nearest_expiry_first() {
    let keyspace = keyspace_for(Policy::VolatileTtl);
    for i in 0..1_000 {
        put(&keyspace, &format!("k{i}"), Some(1_000 + i * 1_000), T0);
    }
    let evictor = Evictor::default();
    shrink_to(&evictor, &keyspace, Policy::VolatileTtl, 500, T0).unwrap();
    // The longest-lived fifth all survive.
    assert!((800..1_000).all(|i| exists(&keyspace, &format!("k{i}"), T0)));
}

#[test]
fn random_policies_evict_something_of_everything() {
    let keyspace = keyspace_for(Policy::AllkeysRandom);
    for i in 0..1_000 {
        put(&keyspace, &format!("k{i}"), None, T0);
    }
    let evictor = Evictor::default();
    shrink_to(&evictor, &keyspace, Policy::AllkeysRandom, 500, T0).unwrap();
    let early = (0..500)
        .filter(|i| exists(&keyspace, &format!("k{i}"), T0))
        .count();
    assert!((150..350).contains(&early), "{early}");
}

#[test]
fn tinylfu_keeps_popular_keys_and_rejects_one_hit_newcomers() {
    let policy = Policy::AllkeysTinylfu;
    let keyspace = keyspace_for(policy);
    for i in 0..1_000 {
        put(&keyspace, &format!("k{i}"), None, T0);
    }
    // As the server cron does: size the sketch for the keys held.
    keyspace.fit_sketch();
    // Popular keys; read long ago, so LRU would pick them first.
    for _ in 0..6 {
        for i in 0..100 {
            read(&keyspace, &format!("k{i}"), T0);
        }
    }
    // Everything else read twice, recently.
    let later = T0 + 60_000;
    for _ in 0..2 {
        for i in 100..1_000 {
            read(&keyspace, &format!("k{i}"), later);
        }
    }
    let evictor = Evictor::default();
    shrink_to(&evictor, &keyspace, policy, 500, later).unwrap();
    assert!((0..100).all(|i| exists(&keyspace, &format!("k{i}"), later)));

    // A newcomer nobody asked for loses to the keys already held. (Named so
    // that no other key's counters cover it: a count-min sketch may
    // overestimate a few keys, which the sketch's own tests measure.)
    let new = (0..)
        .map(|i| format!("new{i}"))
        .find(|k| keyspace.estimate(crate::keyspace::key_hash(k.as_bytes())) == 0)
        .unwrap();
    put(&keyspace, &new, None, later);
    evictor.admit(
        &keyspace,
        crate::keyspace::key_slot(new.as_bytes()),
        new.as_bytes(),
    );
    shrink_to(&evictor, &keyspace, policy, 500, later).unwrap();
    assert!(!exists(&keyspace, &new, later));
}

#[test]
fn locks_and_fill_leases_are_never_evicted() {
    let keyspace = keyspace_for(Policy::AllkeysRandom);
    for i in 0..100 {
        let key = format!("lease{i}");
        keyspace.lock_key(key.as_bytes()).insert(
            key.as_bytes(),
            Value::Lease(i),
            Expiry::At(T0 + 60_000),
            T0,
        );
    }
    put(&keyspace, "plain", None, T0);
    let evictor = Evictor::default();
    // Only the plain key can go; then eviction reports it is out of options
    // instead of spinning.
    assert_eq!(
        shrink_to(&evictor, &keyspace, Policy::AllkeysRandom, 0, T0),
        Err(OutOfMemory)
    );
    assert_eq!(keyspace.len(), 100);
    assert_eq!(evictor.evicted(), 1);
}

#[test]
fn keys_of_hidden_slots_are_never_evicted() {
    let hidden = crate::keyspace::key_slot(b"h");
    assert_ne!(crate::keyspace::key_slot(b"v"), hidden);
    for policy in <Policy as clap::ValueEnum>::value_variants()
        .iter()
        .copied()
        .filter(|&p| p != Policy::NoEviction)
    {
        let keyspace = keyspace_for(policy);
        // The best victims by every policy: idle longest, nearest expiry
        // (already past it), never read.
        for i in 0..500 {
            put(&keyspace, &format!("{{h}}{i}"), Some(1_000), T0);
        }
        keyspace.hide_slot(hidden);
        let later = T0 + 10_000;
        for i in 0..50 {
            put(&keyspace, &format!("{{v}}{i}"), Some(600_000), later);
        }
        let evictor = Evictor::default();
        assert_eq!(
            shrink_to(&evictor, &keyspace, policy, 0, later),
            Ok(50),
            "{policy:?}"
        );
        // Nor one admitted or pooled by name.
        put(&keyspace, "{v}new", Some(600_000), later);
        evictor.admit(&keyspace, hidden, b"{h}0");
        assert_eq!(
            shrink_to(&evictor, &keyspace, policy, 0, later),
            Ok(1),
            "{policy:?}"
        );
        keyspace.show_slot(hidden);
        assert_eq!(keyspace.len(), 500, "{policy:?}");
    }
}
