//! How the running server holds each type of setting: numbers, flags and enum
//! choices in atomics, so reading one on a hot path is one relaxed load and
//! never contends; text behind a lock (read only by `CONFIG GET` and `AUTH`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};

use clap::ValueEnum;
use parking_lot::RwLock;

use super::{DebugAccess, LogLevel, MemSize, Policy};
use crate::protocol::OutputLimit;

/// A value the live configuration holds in a cell of its own.
pub(super) trait Stored: Sized {
    /// Where the value lives while the server runs.
    type Cell: Send + Sync;

    /// A cell holding `self`.
    fn cell(self) -> Self::Cell;

    /// The value in `cell`.
    fn load(cell: &Self::Cell) -> Self;

    /// Replaces the value in `cell`.
    fn store(cell: &Self::Cell, value: Self);
}

macro_rules! in_atomic {
    ($($ty:ty => $atomic:ty),* $(,)?) => {$(
        impl Stored for $ty {
            type Cell = $atomic;

            fn cell(self) -> $atomic {
                <$atomic>::new(self)
            }

            fn load(cell: &$atomic) -> Self {
                cell.load(Relaxed)
            }

            fn store(cell: &$atomic, value: Self) {
                cell.store(value, Relaxed)
            }
        }
    )*};
}

in_atomic!(
    bool => AtomicBool,
    u16 => AtomicU16,
    u32 => AtomicU32,
    u64 => AtomicU64,
    usize => AtomicUsize,
    i64 => AtomicI64,
);

impl Stored for MemSize {
    type Cell = AtomicU64;

    fn cell(self) -> AtomicU64 {
        AtomicU64::new(self.0)
    }

    fn load(cell: &AtomicU64) -> Self {
        MemSize(cell.load(Relaxed))
    }

    fn store(cell: &AtomicU64, value: Self) {
        cell.store(value.0, Relaxed)
    }
}

/// Enum choices are held as their index among the enum's values.
macro_rules! as_index {
    ($($ty:ty),* $(,)?) => {$(
        impl Stored for $ty {
            type Cell = AtomicU8;

            fn cell(self) -> AtomicU8 {
                AtomicU8::new(index_of(self))
            }

            fn load(cell: &AtomicU8) -> Self {
                <$ty>::value_variants()[usize::from(cell.load(Relaxed))]
            }

            fn store(cell: &AtomicU8, value: Self) {
                cell.store(index_of(value), Relaxed)
            }
        }
    )*};
}

as_index!(Policy, LogLevel, DebugAccess);

fn index_of<T: ValueEnum + PartialEq>(value: T) -> u8 {
    T::value_variants()
        .iter()
        .position(|v| *v == value)
        .unwrap_or(0) as u8
}

macro_rules! locked {
    ($($ty:ty),* $(,)?) => {$(
        impl Stored for $ty {
            type Cell = RwLock<$ty>;

            fn cell(self) -> RwLock<$ty> {
                RwLock::new(self)
            }

            fn load(cell: &RwLock<$ty>) -> Self {
                cell.read().clone()
            }

            fn store(cell: &RwLock<$ty>, value: Self) {
                *cell.write() = value;
            }
        }
    )*};
}

locked!(String, Option<String>, Vec<String>);

/// Settings with a single value hold nothing.
impl Stored for () {
    type Cell = ();

    fn cell(self) {}

    fn load(_: &()) {}

    fn store(_: &(), _: ()) {}
}

/// Output limits per client class: hard bytes, soft bytes, soft seconds.
impl Stored for [OutputLimit; 3] {
    type Cell = [[AtomicU64; 3]; 3];

    fn cell(self) -> Self::Cell {
        self.map(|l| [l.hard, l.soft, l.soft_seconds].map(AtomicU64::new))
    }

    fn load(cell: &Self::Cell) -> Self {
        cell.each_ref()
            .map(|[hard, soft, soft_seconds]| OutputLimit {
                hard: hard.load(Relaxed),
                soft: soft.load(Relaxed),
                soft_seconds: soft_seconds.load(Relaxed),
            })
    }

    fn store(cell: &Self::Cell, value: Self) {
        for ([hard, soft, soft_seconds], limit) in cell.iter().zip(value) {
            hard.store(limit.hard, Relaxed);
            soft.store(limit.soft, Relaxed);
            soft_seconds.store(limit.soft_seconds, Relaxed);
        }
    }
}
