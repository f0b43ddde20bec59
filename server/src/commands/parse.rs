//! A cursor over a request's arguments: the typed parse step of every command.

use super::error::CommandError;
use crate::clock::Millis;
use crate::keyspace::types::Str;
use crate::keyspace::Value;
use crate::protocol::number::{parse_f64, parse_i64};
use crate::protocol::{Args, BigArg};

/// An argument a command may store as a string value: a big one that arrived
/// in a buffer of its own is stored in that buffer, without a copy.
#[derive(Debug, Clone, Copy)]
pub struct ValueArg<'a> {
    bytes: &'a [u8],
    shared: Option<&'a BigArg>,
}

impl<'a> ValueArg<'a> {
    /// The bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The argument as a string value (sharing its buffer when it has one).
    pub fn to_value(&self) -> Value {
        match self.shared {
            Some(buf) => Value::Str(Str::shared(buf.clone())),
            None => Value::string(self.bytes),
        }
    }
}

/// Reads a command's arguments in order.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    args: Args<'a>,
    pos: usize,
    skip: usize,
}

impl<'a> Parser<'a> {
    /// A cursor positioned after the first `skip` arguments (the command name, or the
    /// name and subcommand).
    pub fn new(args: Args<'a>, skip: usize) -> Self {
        Parser {
            args,
            pos: skip,
            skip,
        }
    }

    /// The whole request, command name included (a command that replicates
    /// as its request).
    pub fn all(&self) -> Args<'a> {
        self.args
    }

    /// The command's name as sent, lower-cased, for commands whose arguments depend
    /// on the name they are called by (`ZRANGEBYSCORE` vs `ZRANGE`).
    pub fn command_name(&self) -> String {
        String::from_utf8_lossy(self.args.get(0).unwrap_or_default()).to_ascii_lowercase()
    }

    /// True if the command was called by a name starting with `prefix`
    /// (lower-case), in any case: for the forms of one command (`EVALSHA`
    /// of `EVAL`) without building the name.
    pub fn called_as(&self, prefix: &str) -> bool {
        let name = self.args.get(0).unwrap_or_default();
        name.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
    }

    /// The wrong-number-of-arguments error for this command, for arity rules the
    /// command table cannot express (pairs, optional trailing arguments).
    pub fn arity_error(&self) -> CommandError {
        let name: Vec<String> = self
            .args
            .iter()
            .take(self.skip)
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .collect();
        CommandError::Arity(name.join("|"))
    }

    /// Redis's generic error for a subcommand called with arguments it does not
    /// take, naming the subcommand as sent.
    pub fn subcommand_error(&self) -> CommandError {
        // At most 128 bytes of the subcommand, as Redis quotes it.
        let arg = |i| {
            let arg = self.args.get(i).unwrap_or_default();
            String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
        };
        CommandError::SubcommandArity {
            cmd: arg(0).to_ascii_uppercase(),
            sub: arg(1),
        }
    }

    /// The next argument; a syntax error when there is none.
    pub fn arg(&mut self) -> Result<&'a [u8], CommandError> {
        self.try_arg().ok_or(CommandError::Syntax)
    }

    /// The next argument, as a value to store.
    pub fn value(&mut self) -> Result<ValueArg<'a>, CommandError> {
        let shared = self.args.shared(self.pos);
        let bytes = self.arg()?;
        Ok(ValueArg { bytes, shared })
    }

    /// The next argument, if any.
    pub fn try_arg(&mut self) -> Option<&'a [u8]> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        Some(arg)
    }

    /// The next argument as an integer.
    pub fn next_i64(&mut self) -> Result<i64, CommandError> {
        parse_i64(self.arg()?).ok_or(CommandError::NotInteger)
    }

    /// The next argument as an integer; a non-integer gets `error` too, as in
    /// Redis, which gives a command's own range message for both.
    pub fn next_i64_or(&mut self, error: &str) -> Result<i64, CommandError> {
        parse_i64(self.arg()?).ok_or_else(|| CommandError::err(error))
    }

    /// The next argument as a non-negative integer (a token).
    pub fn next_u64(&mut self) -> Result<u64, CommandError> {
        u64::try_from(self.next_i64()?).map_err(|_| CommandError::NotInteger)
    }

    /// The next argument as a duration in milliseconds: positive, and small
    /// enough to add to a clock; `what` names it in the error.
    pub fn next_millis(&mut self, what: &str) -> Result<Millis, CommandError> {
        match self.next_i64()? {
            n if n > 0 && n < i64::MAX / 4 => Ok(n as Millis),
            _ => Err(CommandError::err(format!(
                "invalid {what}: expected milliseconds > 0"
            ))),
        }
    }

    /// The next argument as a float.
    pub fn next_f64(&mut self) -> Result<f64, CommandError> {
        parse_f64(self.arg()?).ok_or(CommandError::NotFloat)
    }

    /// Consumes the next argument if it equals `keyword` (ignoring case).
    pub fn eat(&mut self, keyword: &str) -> bool {
        match self.args.get(self.pos) {
            Some(arg) if arg.eq_ignore_ascii_case(keyword.as_bytes()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// The next argument, upper-cased, for matching options; `None` at the end.
    pub fn next_keyword(&mut self) -> Option<Keyword> {
        self.try_arg().map(Keyword::new)
    }

    /// Arguments not consumed yet.
    pub fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.pos)
    }

    /// All remaining arguments.
    pub fn rest(&mut self) -> Args<'a> {
        let rest = self.args.skip(self.pos);
        self.pos = self.args.len();
        rest
    }

    /// A syntax error if arguments are left over.
    pub fn finish(&self) -> Result<(), CommandError> {
        if self.remaining() > 0 {
            Err(CommandError::Syntax)
        } else {
            Ok(())
        }
    }
}

/// The arguments of the multi-key pops (`LMPOP`, `ZMPOP` and their blocking
/// forms): `numkeys key [key ...] <end> [COUNT count]`.
pub struct MPopArgs<'a, E> {
    /// The keys, tried in order.
    pub keys: Vec<&'a [u8]>,
    /// Which end to pop from (`LEFT`/`RIGHT`, `MIN`/`MAX`).
    pub end: E,
    /// Most elements to pop.
    pub count: usize,
}

impl<'a, E> MPopArgs<'a, E> {
    /// Parses them, the end with `end`, with Redis's errors.
    pub fn parse(
        p: &mut Parser<'a>,
        end: impl FnOnce(&[u8]) -> Result<E, CommandError>,
    ) -> Result<Self, CommandError> {
        const NO_KEYS: &str = "numkeys should be greater than 0";
        let numkeys = p.next_i64_or(NO_KEYS)?;
        if numkeys <= 0 {
            return Err(CommandError::err(NO_KEYS));
        }
        if numkeys as usize > p.remaining() {
            return Err(CommandError::Syntax);
        }
        let keys = (0..numkeys)
            .map(|_| p.arg())
            .collect::<Result<Vec<_>, _>>()?;
        let end = end(p.arg()?)?;
        let mut count = 1;
        if p.eat("COUNT") {
            const NOT_POSITIVE: &str = "count should be greater than 0";
            let n = p.next_i64_or(NOT_POSITIVE)?;
            if n <= 0 {
                return Err(CommandError::err(NOT_POSITIVE));
            }
            count = n as usize;
        }
        Ok(MPopArgs { keys, end, count })
    }
}

/// An option name, upper-cased for comparison (options are short; longer
/// arguments never match a keyword).
#[derive(Debug, Clone, Copy)]
pub struct Keyword {
    buf: [u8; 24],
    len: usize,
}

impl Keyword {
    fn new(arg: &[u8]) -> Self {
        let mut buf = [0u8; 24];
        let len = if arg.len() <= buf.len() {
            buf[..arg.len()].copy_from_slice(arg);
            buf[..arg.len()].make_ascii_uppercase();
            arg.len()
        } else {
            0
        };
        Keyword { buf, len }
    }

    /// The upper-cased text ("" for arguments too long to be a keyword).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_arguments_and_reports_leftovers() {
        let src = b"SETkvEX10";
        let spans = [(0, 3), (3, 4), (4, 5), (5, 7), (7, 9)];
        let mut p = Parser::new(Args::new(src, &spans), 1);
        assert_eq!(p.arg().unwrap(), b"k");
        assert_eq!(p.arg().unwrap(), b"v");
        assert_eq!(p.next_keyword().unwrap().as_str(), "EX");
        assert_eq!(p.remaining(), 1);
        assert_eq!(p.finish(), Err(CommandError::Syntax));
        assert_eq!(p.next_i64().unwrap(), 10);
        assert!(p.finish().is_ok());
        assert_eq!(p.arg(), Err(CommandError::Syntax));
    }
}
