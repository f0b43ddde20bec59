//! Command errors and their Redis reply texts: the one place where internal errors
//! become `-ERR ...`, `-WRONGTYPE ...` and friends.

/// Why a command failed. `Display` is the reply text without the leading `-`; the
/// first word is the error code Redis clients dispatch on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Malformed options.
    #[error("ERR syntax error")]
    Syntax,
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// An argument or stored value is not a 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument or stored value is not a float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// Integer arithmetic left the 64-bit range.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// The key does not exist (where that is an error).
    #[error("ERR no such key")]
    NoSuchKey,
    /// An expire time that is not positive or overflows.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    /// A database other than 0.
    #[error("ERR DB index is out of range")]
    DbOutOfRange,
    /// A string would grow beyond `proto-max-bulk-len`.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
    /// Wrong number of arguments for the named command.
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    /// An unknown subcommand of a container command.
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand {
        /// The container command, upper case.
        cmd: String,
        /// The subcommand as given.
        sub: String,
    },
    /// A write needs memory that eviction could not free.
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
    /// The reply passed the client's output buffer limit (or, where the
    /// client's class has none, `client-query-buffer-limit`); the connection
    /// closes after this error.
    #[error("ERR reply exceeds the client output buffer limit (client-output-buffer-limit); closing the connection")]
    ReplyTooLarge,
    /// Authentication is required first.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// Any other `ERR` error, with its message.
    #[error("ERR {0}")]
    Other(String),
    /// An error with its own code, e.g. `WRONGPASS ...` or `BUSYKEY ...`.
    #[error("{0}")]
    Coded(String),
}

impl CommandError {
    /// An `ERR` error with `message`.
    pub fn err(message: impl Into<String>) -> Self {
        CommandError::Other(message.into())
    }

    /// An error whose text starts with its own code.
    pub fn coded(text: impl Into<String>) -> Self {
        CommandError::Coded(text.into())
    }
}

/// The result of a command.
pub type CommandResult = Result<(), CommandError>;

/// The error code of an error reply text (its first word), for `INFO errorstats`.
pub fn error_code(text: &str) -> &str {
    text.split(' ').next().unwrap_or("ERR")
}
