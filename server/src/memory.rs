//! Process memory and CPU figures for `INFO`: the allocator's own accounting
//! (jemalloc, installed as the global allocator by the binary) and the kernel's view
//! from `/proc`.

use tikv_jemalloc_ctl::{epoch, stats};

/// Allocator statistics in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes handed out to the program (`used_memory`).
    pub allocated: u64,
    /// Bytes in pages the allocator has in use.
    pub active: u64,
    /// Bytes of physical memory the allocator holds.
    pub resident: u64,
}

/// Current jemalloc statistics (refreshing its cached counters first).
pub fn allocator() -> AllocatorStats {
    // Errors only mean jemalloc is not the active allocator (e.g. unit tests); the
    // figures are then simply 0.
    let _ = epoch::advance();
    AllocatorStats {
        allocated: stats::allocated::read().unwrap_or(0) as u64,
        active: stats::active::read().unwrap_or(0) as u64,
        resident: stats::resident::read().unwrap_or(0) as u64,
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Total physical memory, from `/proc/meminfo`.
pub fn total_system() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// (user, system) CPU seconds used by this process, from `/proc/self/stat`.
pub fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // The kernel reports in USER_HZ, 100 on every Linux platform that matters.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// Bytes in Redis's human form: `1.50M`, `512.00K`, `100B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 5] = [
        ("P", 1125899906842624.0),
        ("T", 1099511627776.0),
        ("G", 1073741824.0),
        ("M", 1048576.0),
        ("K", 1024.0),
    ];
    let b = bytes as f64;
    for (unit, size) in UNITS {
        if b >= size {
            return format!("{:.2}{unit}", b / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_look_like_redis() {
        assert_eq!(human(100), "100B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 20), "3.00M");
    }

    #[test]
    fn proc_figures_are_read() {
        assert!(rss() > 0);
        assert!(total_system() > 0);
    }
}
