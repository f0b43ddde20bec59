//! Process memory and CPU figures for `INFO`: the allocator's own accounting
//! (jemalloc, installed as the global allocator by the binary) and the kernel's view
//! from `/proc`.

use tikv_jemalloc_ctl::{background_thread, epoch, stats};

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

/// Lets jemalloc return freed pages to the kernel from a background thread, as
/// Redis's `jemalloc-bg-thread yes` does; otherwise pages freed while the server
/// is idle stay resident until the next burst of allocations. False if jemalloc
/// is not the allocator.
pub fn start_allocator_background_thread() -> bool {
    background_thread::write(true).is_ok()
}

/// Resident set size in bytes of process `pid` (`None`: this one), from
/// `/proc/<pid>/statm`.
pub fn rss_of(pid: Option<u32>) -> u64 {
    std::fs::read_to_string(proc_path(pid, "statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Resident set size of this process in bytes.
pub fn rss() -> u64 {
    rss_of(None)
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
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

/// CPU seconds a process used, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// In user mode.
    pub user: f64,
    /// In the kernel.
    pub system: f64,
    /// By its children that exited and were waited for, user and kernel together.
    pub children: f64,
}

/// CPU times of process `pid` (`None`: this one); zeros where unavailable.
pub fn cpu_of(pid: Option<u32>) -> CpuTimes {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime, stime, cutime and cstime
    // are fields 14 to 17, in USER_HZ (100 on every Linux platform that matters).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let seconds = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    CpuTimes {
        user: seconds(11),
        system: seconds(12),
        children: seconds(13) + seconds(14),
    }
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
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_of(None).user + cpu_of(None).system > 0.0);
    }
}
