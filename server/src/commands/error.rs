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
    /// A subcommand called with arguments it does not take, where Redis
    /// answers with its generic subcommand error (`PUBSUB CHANNELS a b`).
    #[error("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {cmd} HELP.")]
    SubcommandArity {
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
    /// Credentials that match no enabled user.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// `HELLO` from an unauthenticated client without `AUTH`.
    #[error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
         select the RESP protocol version at the same time"
    )]
    HelloNoAuth,
    /// `HELLO` with a protocol version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// `RESTORE` without `REPLACE` onto an existing key.
    #[error("BUSYKEY Target key name already exists.")]
    BusyKey,
    /// `EXEC` of a transaction in which a command was refused while queueing.
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    /// `EXEC` itself refused (its arity, authentication): the transaction is
    /// discarded, with the refusal's reason.
    #[error("EXECABORT Transaction discarded because of: {0}")]
    ExecAbortBecause(String),
    /// In cluster mode, the keys' slot belongs to another node.
    #[error("MOVED {slot} {addr}")]
    Moved {
        /// The keys' hash slot.
        slot: u16,
        /// The owner's client address, `ip:port`.
        addr: String,
    },
    /// The keys' slot is migrating and they are not here (docs/CLUSTER.md,
    /// M2): ask the target, after `ASKING`.
    #[error("ASK {slot} {addr}")]
    Ask {
        /// The keys' hash slot.
        slot: u16,
        /// The target's client address, `ip:port`.
        addr: String,
    },
    /// A multi-key command over a slot split between two nodes by a
    /// migration (M2, M3).
    #[error("TRYAGAIN Multiple keys request during rehashing of slot")]
    TryAgain,
    /// In cluster mode, the keys of one request (or transaction) are in
    /// different slots.
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// In cluster mode, nobody serves the keys' slot.
    #[error("CLUSTERDOWN Hash slot not served")]
    SlotNotServed,
    /// In cluster mode, the cluster is down (`cluster_state:fail`).
    #[error("CLUSTERDOWN The cluster is down")]
    ClusterDown,
    /// The cluster is down and `cluster-allow-reads-when-down` lets only reads run.
    #[error("CLUSTERDOWN The cluster is down and only accepts read commands")]
    ClusterDownReadOnly,
    /// A master that has not heard a majority of masters lately (L3).
    #[error(
        "CLUSTERDOWN This master has not heard a majority of masters within half the node timeout"
    )]
    MinorityMaster,
    /// A write on a read-only replica.
    #[error("READONLY You can't write against a read only replica.")]
    ReadOnlyReplica,
    /// A replica is loading its master's full sync.
    #[error("LOADING Redis is loading the dataset in memory")]
    Loading,
    /// A replica's link is down and it may not serve stale data.
    #[error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")]
    MasterDown,
    /// Too few replicas acknowledged lately (`min-replicas-to-write`).
    #[error("NOREPLICAS Not enough good replicas to write.")]
    NoReplicas,
    /// A replica asked to sync from a node that cannot serve it now.
    #[error("NOMASTERLINK Can't SYNC while not connected with my master")]
    NoMasterLink,
    /// A lock change the lock gate refused (too few in-sync replicas, or the
    /// node's lock-delay).
    #[error("{0}")]
    Lock(crate::write::LockRefusal),
    /// A lock change its in-sync replicas did not acknowledge in time: it
    /// was undone (`restored`), or left where the lock changed since.
    #[error(
        "NOREPLICAS Lock change not acknowledged by {replicas} replica(s) within {timeout_ms} ms; {}",
        if *.restored { "undone" } else { "not undone: the lock changed since" }
    )]
    LockNotAcknowledged {
        /// Replicas that had to acknowledge.
        replicas: usize,
        /// `lock-ack-timeout` when the change ran.
        timeout_ms: u64,
        /// Every changed lock was put back.
        restored: bool,
    },
    /// `MIGRATE` could not connect to, write to or read from its target
    /// (`connecting to the client`, `writing to target instance`, ...).
    #[error("IOERR error or timeout {0}")]
    Io(&'static str),
    /// `SCRIPT KILL` with no script running.
    #[error("NOTBUSY No scripts in execution right now.")]
    NotBusy,
    /// A script runs past `busy-reply-threshold`; `eval`: run by `EVAL`
    /// (else `FCALL`), which names the command that kills it.
    #[error("BUSY Redis is busy running a script. You can only call {} or SHUTDOWN NOSAVE.", if *.eval { "SCRIPT KILL" } else { "FUNCTION KILL" })]
    Busy {
        /// The busy script was run by `EVAL`.
        eval: bool,
    },
    /// `SCRIPT KILL` of a script that wrote already.
    #[error("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")]
    Unkillable,
    /// `EVALSHA` of a script this node does not know.
    #[error("NOSCRIPT No matching script. Please use EVAL.")]
    NoScript,
    /// A script that may write, on a read-only replica.
    #[error("READONLY Can not run script with write flag on readonly replica")]
    ScriptOnReadOnlyReplica,
    /// A string that is not a HyperLogLog, or a corrupted one.
    #[error("{0}")]
    Hll(#[from] crate::keyspace::types::hll::HllError),
    /// A stream command's own error (NOGROUP, BUSYGROUP, a bad id).
    #[error("{0}")]
    Stream(#[from] super::stream_groups::StreamError),
    /// A self test found a fault (`PFSELFTEST`).
    #[error("TESTFAILED {0}")]
    TestFailed(String),
    /// Any other `ERR` error, with its message.
    #[error("ERR {0}")]
    Other(String),
}

impl CommandError {
    /// An `ERR` error with `message`.
    pub fn err(message: impl Into<String>) -> Self {
        CommandError::Other(message.into())
    }

    /// The error code: the first word of the reply text, which clients dispatch
    /// on and `INFO errorstats` counts by.
    pub fn code(&self) -> &'static str {
        use CommandError::*;
        match self {
            Syntax
            | NotInteger
            | NotFloat
            | Overflow
            | NoSuchKey
            | InvalidExpire(_)
            | DbOutOfRange
            | TooLarge
            | Arity(_)
            | UnknownSubcommand { .. }
            | SubcommandArity { .. }
            | ReplyTooLarge
            | Other(_) => "ERR",
            WrongType => "WRONGTYPE",
            OutOfMemory => "OOM",
            NoAuth | HelloNoAuth => "NOAUTH",
            WrongPass => "WRONGPASS",
            NoProto => "NOPROTO",
            BusyKey => "BUSYKEY",
            ExecAbort | ExecAbortBecause(_) => "EXECABORT",
            Moved { .. } => "MOVED",
            Ask { .. } => "ASK",
            TryAgain => "TRYAGAIN",
            CrossSlot => "CROSSSLOT",
            SlotNotServed | ClusterDown | ClusterDownReadOnly | MinorityMaster => "CLUSTERDOWN",
            ReadOnlyReplica | ScriptOnReadOnlyReplica => "READONLY",
            NoScript => "NOSCRIPT",
            NotBusy => "NOTBUSY",
            Busy { .. } => "BUSY",
            Unkillable => "UNKILLABLE",
            Loading => "LOADING",
            MasterDown => "MASTERDOWN",
            NoReplicas | LockNotAcknowledged { .. } => "NOREPLICAS",
            Lock(refusal) => refusal.code(),
            Hll(err) => err.code(),
            Stream(err) => err.code(),
            TestFailed(_) => "TESTFAILED",
            NoMasterLink => "NOMASTERLINK",
            Io(_) => "IOERR",
        }
    }
}

/// The result of a command.
pub type CommandResult = Result<(), CommandError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each kind; the match (no wildcard) fails to compile when a
    /// kind is added without an example here.
    fn examples() -> Vec<CommandError> {
        use CommandError::*;
        let all = vec![
            Syntax,
            WrongType,
            NotInteger,
            NotFloat,
            Overflow,
            NoSuchKey,
            InvalidExpire("set".into()),
            DbOutOfRange,
            TooLarge,
            Arity("get".into()),
            UnknownSubcommand {
                cmd: "CLIENT".into(),
                sub: "x".into(),
            },
            SubcommandArity {
                cmd: "PUBSUB".into(),
                sub: "channels".into(),
            },
            OutOfMemory,
            ReplyTooLarge,
            NoAuth,
            WrongPass,
            HelloNoAuth,
            NoProto,
            BusyKey,
            ExecAbort,
            ExecAbortBecause("wrong number of arguments for 'exec' command".into()),
            Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into(),
            },
            Ask {
                slot: 3999,
                addr: "127.0.0.1:6381".into(),
            },
            TryAgain,
            CrossSlot,
            SlotNotServed,
            ClusterDown,
            ClusterDownReadOnly,
            MinorityMaster,
            ReadOnlyReplica,
            Loading,
            MasterDown,
            NoReplicas,
            NoMasterLink,
            Lock(crate::write::LockRefusal::NoReplicas {
                in_sync: 0,
                wanted: 1,
            }),
            Lock(crate::write::LockRefusal::Delay { left: 100 }),
            LockNotAcknowledged {
                replicas: 1,
                timeout_ms: 1000,
                restored: true,
            },
            Io("reading to target instance"),
            NoScript,
            NotBusy,
            Busy { eval: true },
            Busy { eval: false },
            Unkillable,
            ScriptOnReadOnlyReplica,
            Hll(crate::keyspace::types::hll::HllError::NotHll),
            Hll(crate::keyspace::types::hll::HllError::Corrupted),
            Stream(crate::commands::stream_groups::StreamError::BusyGroup),
            Stream(crate::commands::stream_groups::StreamError::NoKey),
            Stream(crate::commands::stream_groups::StreamError::NoGroup {
                key: "k".into(),
                group: "g".into(),
            }),
            Stream(crate::commands::stream_groups::StreamError::NoReadGroup {
                key: "k".into(),
                group: "g".into(),
            }),
            TestFailed("dense/sparse disagree".into()),
            Other("message".into()),
        ];
        for e in &all {
            match e {
                Syntax
                | WrongType
                | NotInteger
                | NotFloat
                | Overflow
                | NoSuchKey
                | InvalidExpire(_)
                | DbOutOfRange
                | TooLarge
                | Arity(_)
                | UnknownSubcommand { .. }
                | SubcommandArity { .. }
                | OutOfMemory
                | ReplyTooLarge
                | NoAuth
                | WrongPass
                | HelloNoAuth
                | NoProto
                | BusyKey
                | ExecAbort
                | ExecAbortBecause(_)
                | Moved { .. }
                | Ask { .. }
                | TryAgain
                | CrossSlot
                | SlotNotServed
                | ClusterDown
                | ClusterDownReadOnly
                | MinorityMaster
                | ReadOnlyReplica
                | Loading
                | MasterDown
                | NoReplicas
                | NoMasterLink
                | Lock(_)
                | LockNotAcknowledged { .. }
                | Io(_)
                | NoScript
                | NotBusy
                | Busy { .. }
                | Unkillable
                | ScriptOnReadOnlyReplica
                | Hll(_)
                | Stream(_)
                | TestFailed(_)
                | Other(_) => {}
            }
        }
        all
    }

    #[test]
    fn the_code_is_the_first_word_of_every_reply_text() {
        for e in examples() {
            let text = e.to_string();
            assert_eq!(text.split(' ').next(), Some(e.code()), "{text}");
        }
    }

    #[test]
    fn lock_errors_say_what_to_do() {
        let late = CommandError::LockNotAcknowledged {
            replicas: 2,
            timeout_ms: 1000,
            restored: false,
        };
        assert_eq!(
            late.to_string(),
            "NOREPLICAS Lock change not acknowledged by 2 replica(s) within 1000 ms; not undone: the lock changed since"
        );
        let delay = CommandError::Lock(crate::write::LockRefusal::Delay { left: 250 });
        assert!(delay.to_string().ends_with("retry in 250 ms"));
    }

    #[test]
    fn cluster_errors_have_redis_texts() {
        let moved = CommandError::Moved {
            slot: 3999,
            addr: "127.0.0.1:6381".into(),
        };
        assert_eq!(moved.to_string(), "MOVED 3999 127.0.0.1:6381");
        assert_eq!(
            CommandError::CrossSlot.to_string(),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
    }
}
