//! Small helpers shared by several modules.
//! Uses nothing else of the crate.

pub mod cancel;
pub mod glob;
pub mod huge;
pub mod prefetch;
pub mod slot_bits;
pub mod suspend;
pub mod turn;

use std::net::IpAddr;

/// True for a loopback address, IPv4-mapped ones included.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}
