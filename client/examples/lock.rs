//! A critical section under a native lock, with its fencing token.
//!
//! ```text
//! cargo run --release -p ringkv-server -- --lock-delay 0 &
//! cargo run -p ringkv-client --example lock [redis://127.0.0.1:6379]
//! ```
//!
//! (`--lock-delay 0`: grant at once after the start; by default a server
//! refuses new grants for a minute after it starts, having forgotten the
//! grants of its previous life.)

use std::time::Duration;

use ringkv_client::{Client, Error, Lock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
    let client = Client::connect(&url).await?;
    let guard = Lock::new(&client, "example:invoice-run")
        .ttl(Duration::from_secs(10))
        .wait(Duration::from_secs(5))
        .acquire()
        .await?;
    let token = guard.fencing_token().unwrap_or_default();
    println!("holding {} with fencing token {token}", guard.name());
    // The critical section: anything it writes elsewhere should carry `token`,
    // so the storage can refuse a holder whose lease ran out unnoticed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    guard.release().await?;
    println!("released");
    Ok(())
}
