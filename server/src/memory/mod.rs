//! Process memory and CPU figures for `INFO`: the allocator's own accounting
//! (jemalloc, installed as the global allocator by the binary) and the kernel's view
//! from `/proc`.
//! Uses nothing else of the crate.

mod counting;
mod defrag_hint;

use tikv_jemalloc_ctl::{epoch, stats, Access, AsName};

pub use counting::{used, Counting};
pub use defrag_hint::worth_moving;

/// The allocation jemalloc makes for a request of `bytes`: 8, then 16-byte steps
/// up to 128, then four classes per doubling (160, 192, 224, 256, 320, ...).
#[inline]
pub fn size_class(bytes: usize) -> usize {
    if bytes <= 8 {
        return 8;
    }
    if bytes <= 128 {
        return bytes.div_ceil(16) * 16;
    }
    let log2 = usize::BITS - 1 - (bytes - 1).leading_zeros();
    let step = 1usize << (log2 - 2);
    bytes.div_ceil(step) * step
}

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

/// Has jemalloc give blocks of 8 MiB or more (its oversize arena) back to the
/// kernel as soon as they are freed, as jemalloc before 5.3.1 and Redis's do.
/// With background threads on, 5.3.1 keeps them for the usual 10 s decay
/// instead, so a string that grows by reallocation holds every size it
/// outgrew: 512 appends of 1 MB peaked at 3.3 GB. Arenas take this default when
/// they are created, and the oversize arena is the only one created after
/// start-up (one arena: see `MALLOC_CONF`), so call it first thing. Does
/// nothing where jemalloc is not the allocator.
pub fn return_huge_blocks_at_once() {
    let _ = b"arenas.dirty_decay_ms\0".name().write(0isize);
}

/// Runs `f` with this thread's allocation cache off, so blocks it allocates
/// come from the allocator's fullest slabs instead of the cache of blocks just
/// freed (what defragmentation needs).
pub fn without_thread_cache<R>(f: impl FnOnce() -> R) -> R {
    let name = b"thread.tcache.enabled\0".name();
    let was: Option<bool> = name.read().ok();
    if was == Some(true) {
        let _ = name.write(false);
    }
    let result = f();
    if was == Some(true) {
        let _ = name.write(true);
    }
    result
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
    fn size_classes_follow_jemalloc() {
        assert_eq!(size_class(1), 8);
        assert_eq!(size_class(9), 16);
        assert_eq!(size_class(48), 48);
        assert_eq!(size_class(129), 160);
        assert_eq!(size_class(3072), 3072);
        assert_eq!(size_class(3073), 3584);
        assert_eq!(size_class(4320), 5120);
        assert_eq!(size_class(16385), 20480);
    }

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
