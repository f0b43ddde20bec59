//! The client's errors.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server or the connection failed.
    #[error("server error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A request got no reply in time.
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The lock was not acquired within the wait.
    #[error("lock '{0}' not acquired")]
    NotAcquired(String),
    /// The lease ran out or someone else took the lock: the guard no longer
    /// protects anything.
    #[error("lock '{0}' was lost")]
    LockLost(String),
    /// A held lock's shard moved, went down or could not be reached, and the
    /// server could not be asked yet whether the lock is still this guard's:
    /// act as if it were lost until a renewal succeeds.
    #[error("lock '{name}' may have been lost: {cause}")]
    LockMaybeLost {
        /// The lock.
        name: String,
        /// What happened (the redirect, outage or connection error).
        cause: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// The loader of `get_or_load` failed.
    #[error("loader failed: {0}")]
    Load(String),
}

/// Error codes worth another attempt within a lock's wait besides the ones the
/// `redis` crate retries itself: too few replicas to acknowledge a lock change
/// (`NOREPLICAS`, as `min-replicas-to-write` refuses writes in Redis), and a
/// node refusing new grants for its `lock-delay` after a start or a promotion
/// (`LOCKDELAY ...; retry in N ms`).
const TRANSIENT_CODES: &[&str] = &["NOREPLICAS", "LOCKDELAY"];

impl Error {
    /// A failure that may pass: a redirect, a cluster outage (`CLUSTERDOWN`,
    /// `TRYAGAIN`, `MASTERDOWN`, `LOADING`, `READONLY`), a lost or refused
    /// connection, a timeout.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::Redis(err) => {
                !matches!(err.retry_method(), redis::RetryMethod::NoRetry)
                    || err.is_io_error()
                    || err
                        .code()
                        .is_some_and(|code| TRANSIENT_CODES.contains(&code))
            }
            _ => false,
        }
    }

    /// How long the server asked to wait before trying again (`LOCKDELAY
    /// ...; retry in N ms`).
    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        let Error::Redis(err) = self else {
            return None;
        };
        let detail = err.detail()?;
        let ms = detail.rsplit_once("retry in ")?.1.strip_suffix(" ms")?;
        ms.parse().ok().map(std::time::Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(text: &str) -> Error {
        let reply = redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
        Error::Redis(reply.extract_error().unwrap_err())
    }

    #[test]
    fn cluster_outages_and_redirects_are_transient_but_refusals_are_not() {
        assert!(server_error("CLUSTERDOWN The cluster is down").is_transient());
        assert!(
            server_error("TRYAGAIN Multiple keys request during rehashing of slot").is_transient()
        );
        assert!(server_error("MOVED 3999 127.0.0.1:6381").is_transient());
        assert!(server_error("NOREPLICAS Not enough good replicas to write.").is_transient());
        assert!(
            !server_error("WRONGTYPE Operation against a key holding the wrong kind of value")
                .is_transient()
        );
        assert!(!server_error("ERR syntax error").is_transient());
        assert!(Error::Timeout(std::time::Duration::from_secs(1)).is_transient());
        assert!(!Error::NotAcquired("l".into()).is_transient());
    }

    #[test]
    fn a_lock_delay_is_transient_and_says_when_to_try_again() {
        let delay = server_error("LOCKDELAY This node may have lost lock grants (it started or was promoted without acknowledged replication); new grants are refused for lock-delay, retry in 1234 ms");
        assert!(delay.is_transient());
        assert_eq!(
            delay.retry_after(),
            Some(std::time::Duration::from_millis(1234))
        );
        assert_eq!(server_error("NOREPLICAS Not enough").retry_after(), None);
    }
}
