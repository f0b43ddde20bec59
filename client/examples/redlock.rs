//! Redlock over three independent local servers.
//!
//! ```text
//! for p in 7001 7002 7003; do cargo run --release -p ringkv-server -- --port $p & done
//! cargo run -p ringkv-client --example redlock
//! ```

use std::time::Duration;

use ringkv_client::{Client, Error, Redlock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut servers = Vec::new();
    for port in [7001, 7002, 7003] {
        servers.push(Client::connect(&format!("redis://127.0.0.1:{port}")).await?);
    }
    let redlock = Redlock::new(servers);
    let mut guard = redlock
        .lock("example:report", Duration::from_secs(10))
        .await?;
    println!(
        "locked on a majority ({} of 3 needed), valid for {:?}",
        redlock.quorum(),
        guard.validity()
    );
    guard.extend(Duration::from_secs(10)).await?;
    println!("extended, {:?} left", guard.remaining());
    guard.release().await?;
    println!("released");
    Ok(())
}
