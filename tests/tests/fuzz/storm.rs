//! Several connections fuzzing at once against a server with several worker
//! threads: multi-key commands lock slots in every combination, blocked clients
//! are woken, served and dropped concurrently, and no request may hang, drop its
//! connection or get an invalid reply.

use std::time::Duration;

use super::fuzzer::REPLY_TIMEOUT;
use super::gen::{Gen, Pools};
use super::spec::Spec;
use super::wire::{render, Conn, ReadError, Value};

/// How long a command that may block gets before its connection is dropped
/// (blocked or not: closing blocked clients while others wake them is part of
/// the storm).
const BLOCK_WAIT: Duration = Duration::from_millis(20);

/// What the storm connections run.
pub struct Storm<'a> {
    /// Commands the storm draws from, each with whether it may block.
    pub specs: Vec<(&'a Spec, bool)>,
    /// Argument pools.
    pub pools: &'a Pools,
    /// Server port.
    pub port: u16,
}

impl Storm<'_> {
    /// Sends `requests` random requests from connection number `lane`, seeded by
    /// `seed`; the first failure, described.
    pub fn run(&self, seed: u64, lane: u64, requests: u64) -> Result<(), String> {
        let mut conn = Conn::open(self.port, lane % 2 == 1, REPLY_TIMEOUT)?;
        for i in 0..requests {
            // Every request gets its own stream, so a failure names its seed.
            let request_seed = seed ^ (lane << 32) ^ i;
            let (spec, blocks) = self.specs[(request_seed % self.specs.len() as u64) as usize];
            let args = Gen::new(request_seed, spec, self.pools).random();
            let failed = |e: &dyn std::fmt::Display| {
                format!(
                    "lane {lane}, request {i}: {e}\n  request: {}",
                    render(&args)
                )
            };
            if blocks {
                let mut aside = Conn::open(self.port, false, REPLY_TIMEOUT)?;
                aside.send(&args);
                match aside.read(BLOCK_WAIT) {
                    Ok(_) | Err(ReadError::Timeout) => {}
                    Err(e) => return Err(failed(&e)),
                }
                continue;
            }
            match conn.call(&args, REPLY_TIMEOUT) {
                Ok(Value::Push(_)) => return Err(failed(&"a push message")),
                Ok(_) => {}
                Err(e) => return Err(failed(&e)),
            }
        }
        Ok(())
    }
}
