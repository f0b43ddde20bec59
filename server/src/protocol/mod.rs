//! The RESP wire protocol: decoding client requests and encoding replies.
//!
//! Requests are always arrays of bulk strings (or inline lines), so the decoder is
//! specialised for that shape: it never allocates per argument, resumes where it
//! stopped when a request spans several reads, and reports Redis's exact
//! `Protocol error: ...` texts. Replies are written straight into the connection's
//! output buffer in RESP2 or RESP3, chosen per connection by `HELLO`.
//! Uses nothing else of the crate.

mod inline;
pub mod number;
mod output_limit;
mod reply;
mod request;

pub use output_limit::OutputLimit;
pub use reply::{Protocol, Reply};
pub use request::{
    encode_command, Args, BigArg, Decoded, Detach, ProtocolError, RequestDecoder, RequestLimits,
    BIG_ARG,
};
