//! ringkv-client: the Rust client for ringkv.
//!
//! This crate will hold the lock client (native fair locks with fencing tokens, a
//! Redis-compatible mode and RedLock) and the cache-aside loader with fill leases.
//! It is created now so the workspace layout is stable; its API arrives with the
//! locks work.
