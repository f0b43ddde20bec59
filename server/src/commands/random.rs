//! Random picks for `HRANDFIELD`, `SRANDMEMBER` and `ZRANDMEMBER`.

use super::CommandError;

/// Positions to return from a collection of `len` elements for Redis's `count`
/// argument: none given, one; positive, that many distinct ones (all, if fewer);
/// negative, that many with repeats allowed.
pub fn picks(len: usize, count: Option<i64>) -> Result<Vec<usize>, CommandError> {
    let Some(count) = count else {
        return Ok(if len == 0 {
            Vec::new()
        } else {
            vec![rand::random_range(0..len)]
        });
    };
    if count < -(i64::MAX / 2) {
        return Err(CommandError::err("value is out of range"));
    }
    if len == 0 || count == 0 {
        return Ok(Vec::new());
    }
    if count < 0 {
        return Ok((0..count.unsigned_abs())
            .map(|_| rand::random_range(0..len))
            .collect());
    }
    let count = (count as u64).min(len as u64) as usize;
    let mut rng = rand::rng();
    Ok(rand::seq::index::sample(&mut rng, len, count).into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_redis_rules() {
        assert_eq!(picks(0, None).unwrap(), Vec::<usize>::new());
        assert_eq!(picks(5, None).unwrap().len(), 1);
        let mut all = picks(5, Some(10)).unwrap();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4]);
        let distinct = picks(100, Some(10)).unwrap();
        let mut dedup = distinct.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 10);
        let repeats = picks(2, Some(-50)).unwrap();
        assert_eq!(repeats.len(), 50);
        assert!(repeats.iter().all(|&i| i < 2));
        assert!(picks(3, Some(i64::MIN)).is_err());
    }
}
