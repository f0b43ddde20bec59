//! Search results ordered by distance as Redis orders them, equal distances
//! included: all of them by a stable sort (the C library's merge sort), or,
//! when a `COUNT` keeps fewer, only the first ones, by Bentley and McIlroy's
//! three-way quicksort that leaves alone the parts past them (Redis's
//! `pqsort`). Which of several equally distant results make the cut, and in
//! what order, follows from that algorithm, so it is followed step by step.

use std::cmp::Ordering;

/// Orders `items` by `distance`, ascending or `descending`, so that the
/// first `keep` are the nearest (farthest) in order; past them the order is
/// unspecified unless all are kept.
pub fn by_distance<T>(
    items: &mut [T],
    keep: usize,
    descending: bool,
    distance: impl Fn(&T) -> f64,
) {
    // Distances are never NaN or -0, so the total order is the order of
    // Redis's comparisons.
    let compare = |a: &T, b: &T| {
        let order = distance(a).total_cmp(&distance(b));
        match descending {
            true => order.reverse(),
            false => order,
        }
    };
    if keep >= items.len() {
        items.sort_by(compare);
    } else {
        sort_front(items, keep, &compare);
    }
}

/// Sorts the first `keep` positions of `v` (Bentley and McIlroy, "Engineering
/// a Sort Function", 1993): a pivot from the median of three (of three
/// medians past 40 items), a three-way partition with the equal items
/// gathered at both ends and swapped to the middle, insertion sort below 7
/// items, and no work on parts wholly past `keep`. Parts wait on a list
/// rather than the call stack (they are disjoint, so the order of work does
/// not change the result).
fn sort_front<T>(v: &mut [T], keep: usize, compare: &impl Fn(&T, &T) -> Ordering) {
    let mut parts = vec![(0, v.len())];
    while let Some((lo, n)) = parts.pop() {
        if n < 7 {
            for m in lo + 1..lo + n {
                let mut at = m;
                while at > lo && compare(&v[at - 1], &v[at]) == Ordering::Greater {
                    v.swap(at, at - 1);
                    at -= 1;
                }
            }
            continue;
        }
        let mut pivot = lo + n / 2;
        if n > 7 {
            let (mut first, mut last) = (lo, lo + n - 1);
            if n > 40 {
                let d = n / 8;
                first = median(v, compare, first, first + d, first + 2 * d);
                pivot = median(v, compare, pivot - d, pivot, pivot + d);
                last = median(v, compare, last - 2 * d, last - d, last);
            }
            pivot = median(v, compare, first, pivot, last);
        }
        v.swap(lo, pivot);
        // Items equal to the pivot (at `lo`) gather in lo+1..a and d+1..end;
        // smaller ones in a..b, larger ones in c+1..=d.
        let (mut a, mut b) = (lo + 1, lo + 1);
        let (mut c, mut d) = (lo + n - 1, lo + n - 1);
        loop {
            while b <= c {
                match compare(&v[b], &v[lo]) {
                    Ordering::Greater => break,
                    Ordering::Equal => {
                        v.swap(a, b);
                        a += 1;
                    }
                    Ordering::Less => {}
                }
                b += 1;
            }
            while b <= c {
                match compare(&v[c], &v[lo]) {
                    Ordering::Less => break,
                    Ordering::Equal => {
                        v.swap(c, d);
                        d -= 1;
                    }
                    Ordering::Greater => {}
                }
                c -= 1;
            }
            if b > c {
                break;
            }
            v.swap(b, c);
            b += 1;
            c -= 1;
        }
        let end = lo + n;
        swap_runs(v, lo, b - (a - lo).min(b - a), (a - lo).min(b - a));
        let r = (d - c).min(end - d - 1);
        swap_runs(v, b, end - r, r);
        let (smaller, larger) = (b - a, d - c);
        if larger > 1 && end - larger < keep {
            parts.push((end - larger, larger));
        }
        if smaller > 1 {
            parts.push((lo, smaller));
        }
    }
}

/// The index of the median of the items at `a`, `b` and `c`, as the paper's
/// `med3` picks it among equals.
fn median<T>(
    v: &[T],
    compare: &impl Fn(&T, &T) -> Ordering,
    a: usize,
    b: usize,
    c: usize,
) -> usize {
    let less = |x: usize, y: usize| compare(&v[x], &v[y]) == Ordering::Less;
    let greater = |x: usize, y: usize| compare(&v[x], &v[y]) == Ordering::Greater;
    if less(a, b) {
        if less(b, c) {
            b
        } else if less(a, c) {
            c
        } else {
            a
        }
    } else if greater(b, c) {
        b
    } else if less(a, c) {
        a
    } else {
        c
    }
}

/// Swaps the `n` items from `a` with the `n` from `b` (runs that do not
/// overlap), pairwise from the front.
fn swap_runs<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexes of `distances` in the order `by_distance` leaves the
    /// first `keep` of them.
    fn ordered(distances: &[f64], keep: usize, descending: bool) -> Vec<usize> {
        let mut items: Vec<(usize, f64)> = distances.iter().copied().enumerate().collect();
        by_distance(&mut items, keep, descending, |item| item.1);
        items[..keep].iter().map(|item| item.0).collect()
    }

    #[test]
    fn a_full_sort_keeps_equal_distances_in_the_order_found() {
        let d = [3.0, 1.0, 2.0, 1.0, 3.0];
        assert_eq!(ordered(&d, 5, false), [1, 3, 2, 0, 4]);
        assert_eq!(ordered(&d, 5, true), [0, 4, 2, 1, 3]);
    }

    #[test]
    fn a_partial_sort_picks_among_equals_as_redis_pqsort_does() {
        // Redis 7.0.15's pqsort over 40-byte points, compared by distance.
        let d = [5.0, 3.0, 3.0, 1.0, 9.0, 3.0, 1.0, 0.0, 3.0, 2.0];
        assert_eq!(ordered(&d, 3, false), [7, 6, 3]);
        let many: Vec<f64> = (0..60).map(|i| f64::from((i * 7) % 5)).collect();
        assert_eq!(
            ordered(&many, 7, false),
            [30, 35, 50, 15, 5, 55, 20],
            "ties over the median-of-medians path"
        );
        assert_eq!(ordered(&many, 4, true), [27, 22, 17, 52]);
    }

    #[test]
    fn a_partial_sort_orders_the_kept_ones_like_a_full_sort_without_ties() {
        let d: Vec<f64> = (0..100).map(|i| f64::from((i * 37) % 101)).collect();
        for keep in [1, 6, 7, 8, 41, 99] {
            let full = ordered(&d, 100, false);
            assert_eq!(ordered(&d, keep, false), full[..keep], "{keep}");
        }
    }
}
