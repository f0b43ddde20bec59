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
    /// The server answered something this client does not understand.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// The loader of `get_or_load` failed.
    #[error("loader failed: {0}")]
    Load(String),
}
