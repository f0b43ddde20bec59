//! Cache-aside in front of a slow fake database: concurrent readers of one key
//! cause a single load, and ids that do not exist are cached as absent.
//!
//! ```text
//! cargo run --release -p ringkv-server &
//! cargo run -p ringkv-client --example get_or_load [redis://127.0.0.1:6379]
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringkv_client::{Cache, Client, Error};

/// A database that takes 200 ms per query and only knows even ids.
struct SlowDatabase {
    queries: AtomicUsize,
}

impl SlowDatabase {
    async fn user(&self, id: u32) -> Result<Option<Vec<u8>>, String> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(id
            .is_multiple_of(2)
            .then(|| format!("user {id}").into_bytes()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
    let cache = Arc::new(Cache::new(&Client::connect(&url).await?).jitter(10));
    let db = Arc::new(SlowDatabase {
        queries: AtomicUsize::new(0),
    });
    let mut readers = Vec::new();
    for _ in 0..100 {
        let (cache, db) = (cache.clone(), db.clone());
        readers.push(tokio::spawn(async move {
            let ttl = Duration::from_secs(60);
            let null_ttl = Duration::from_secs(5);
            let found = cache
                .get_or_load("example:user:42", ttl, null_ttl, || db.user(42))
                .await?;
            let missing = cache
                .get_or_load("example:user:7", ttl, null_ttl, || db.user(7))
                .await?;
            Ok::<_, Error>((found, missing))
        }));
    }
    for reader in readers {
        let (found, missing) = reader.await.expect("reader task")?;
        assert_eq!(found.as_deref(), Some(&b"user 42"[..]));
        assert_eq!(missing, None);
    }
    println!(
        "200 reads, {} database queries",
        db.queries.load(Ordering::SeqCst)
    );
    Ok(())
}
