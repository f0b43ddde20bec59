//! Conversions between Lua values and the protocol, by Redis's rules: a
//! command's reply becomes a Lua value for `redis.call`, a script's result
//! becomes the reply, and `redis.call`'s arguments become a request.

use mlua::{Lua, Table, Value};

use crate::protocol::{Protocol, Reply};

/// Deepest nesting of a script's result that is turned into a reply (a
/// table that holds itself would otherwise recurse for ever).
const MAX_DEPTH: usize = 1000;

/// The table `{field = value}` (`{err = ...}`, `{ok = ...}`).
pub fn single_field(lua: &Lua, field: &str, value: impl mlua::IntoLua) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(0, 1)?;
    table.raw_set(field, value)?;
    Ok(table)
}

/// A Redis error's text as Lua sees it (`CODE message`): a message starting
/// with `-` carries its own code, any other gets `ERR`; no line end.
pub fn error_text(message: &[u8]) -> Vec<u8> {
    let mut text = match message.strip_prefix(b"-") {
        Some(rest) if rest.contains(&b' ') => rest.to_vec(),
        Some(rest) => [b"ERR ".as_slice(), rest].concat(),
        None => [b"ERR ".as_slice(), message].concat(),
    };
    let end = text
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    text.truncate(end);
    text
}

/// An error table for `redis.pcall` (`{err = "CODE message"}`), of the
/// message's [`error_text`].
pub fn error_table(lua: &Lua, message: &[u8]) -> mlua::Result<Table> {
    single_field(lua, "err", lua.create_string(error_text(message))?)
}

/// Writes a script's result as the reply, by Redis's rules: numbers are
/// integers (truncated), strings bulk strings, `true` `1` and `false` a null
/// (with `redis.setresp(3)`, booleans), `nil` a null, a table with a string
/// `err` an error, with a string `ok` a status, with `double`, `big_number`,
/// `verbatim_string`, `map` or `set` that RESP3 type, and any other table an
/// array of its elements up to the first `nil`. `resp` is the script's own
/// protocol (`redis.setresp`).
pub fn lua_to_reply(value: &Value, resp: Protocol, out: &mut Reply) {
    write_value(value, resp, out, 0);
}

fn write_value(value: &Value, resp: Protocol, out: &mut Reply, depth: usize) {
    match value {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => match (resp, b) {
            (Protocol::Resp2, true) => out.int(1),
            (Protocol::Resp2, false) => out.null(),
            (Protocol::Resp3, b) => out.bool(*b),
        },
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(*n as i64),
        Value::Table(table) if depth >= MAX_DEPTH => {
            let _ = table;
            out.error("ERR reached lua stack limit");
        }
        Value::Table(table) => write_table(table, resp, out, depth),
        _ => out.null(),
    }
}

fn write_table(table: &Table, resp: Protocol, out: &mut Reply, depth: usize) {
    let field = |name: &str| table.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(err) = field("err") {
        let text = err.to_string_lossy();
        out.error(text.strip_prefix('-').unwrap_or(&text));
        return;
    }
    if let Value::String(ok) = field("ok") {
        out.simple(&ok.to_string_lossy().replace(['\r', '\n'], " "));
        return;
    }
    match field("double") {
        Value::Number(n) => return out.double(n),
        Value::Integer(n) => return out.double(n as f64),
        _ => {}
    }
    if let Value::String(digits) = field("big_number") {
        out.big_number(&digits.to_string_lossy().replace(['\r', '\n'], " "));
        return;
    }
    if let Value::Table(verbatim) = field("verbatim_string") {
        let format = verbatim.raw_get::<Value>("format");
        let text = verbatim.raw_get::<Value>("string");
        if let (Ok(Value::String(format)), Ok(Value::String(text))) = (format, text) {
            out.verbatim_as(&format.as_bytes(), &text.as_bytes());
            return;
        }
    }
    if let Value::Table(map) = field("map") {
        let pairs: Vec<(Value, Value)> = map.pairs().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (key, value) in &pairs {
            write_value(key, resp, out, depth + 1);
            write_value(value, resp, out, depth + 1);
        }
        return;
    }
    if let Value::Table(set) = field("set") {
        let members: Vec<Value> = set
            .pairs::<Value, Value>()
            .filter_map(|pair| pair.ok().map(|(member, _)| member))
            .collect();
        out.set(members.len());
        for member in &members {
            write_value(member, resp, out, depth + 1);
        }
        return;
    }
    let mut items = Vec::new();
    for i in 1.. {
        match table.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(value) => items.push(value),
        }
    }
    out.array(items.len());
    for item in &items {
        write_value(item, resp, out, depth + 1);
    }
}

/// Why `redis.call`'s arguments are not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsError {
    /// No arguments.
    Empty,
    /// An argument that is neither a string nor a number.
    Type,
}

impl ArgsError {
    /// Redis's text.
    pub fn message(self) -> &'static str {
        match self {
            ArgsError::Empty => "Please specify at least one argument for this redis lib call",
            ArgsError::Type => "Lua redis lib command arguments must be strings or integers",
        }
    }
}

/// Appends the words of a command named from Lua (`redis.acl_check_cmd`'s
/// arguments) to `src`, one span each: strings as they are, numbers as
/// [`format_number`] writes them.
pub fn request_args(
    args: &[Value],
    src: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize)>,
) -> Result<(), ArgsError> {
    if args.is_empty() {
        return Err(ArgsError::Empty);
    }
    for arg in args {
        let start = src.len();
        match arg {
            Value::String(s) => src.extend_from_slice(&s.as_bytes()),
            // Lua 5.1's numbers are all doubles (mlua shows integral ones as integers).
            Value::Integer(n) => format_number(*n as f64, src),
            Value::Number(n) => format_number(*n, src),
            _ => return Err(ArgsError::Type),
        }
        spans.push((start, src.len()));
    }
    Ok(())
}

/// A Lua number as Redis's Lua writes it: `%.17g` (its `LUA_NUMBER_FMT`),
/// so integral values up to 17 digits print as integers.
pub fn format_number(n: f64, out: &mut Vec<u8>) {
    if n.fract() == 0.0 && n.abs() < 1e17 {
        out.extend_from_slice(itoa::Buffer::new().format(n as i64).as_bytes());
        return;
    }
    if !n.is_finite() {
        let text = match (n.is_nan(), n > 0.0) {
            (true, _) => "nan",
            (false, true) => "inf",
            (false, false) => "-inf",
        };
        out.extend_from_slice(text.as_bytes());
        return;
    }
    // The exponent of the value rounded to 17 digits picks the notation,
    // as in C; trailing zeros go.
    let scientific = format!("{n:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |text: &str| text.trim_end_matches('0').trim_end_matches('.').to_owned();
    let text = if !(-4..17).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        trim(&format!("{n:.*}", (16 - exponent) as usize))
    };
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(script: &str, resp: Protocol, client: Protocol) -> String {
        let lua = Lua::new();
        let value: Value = lua.load(script).eval().unwrap();
        let mut out = Reply::new(client);
        lua_to_reply(&value, resp, &mut out);
        String::from_utf8(out.into_vec()).unwrap()
    }

    #[test]
    fn results_become_replies_by_redis_rules() {
        let two = |s| reply_of(s, Protocol::Resp2, Protocol::Resp2);
        assert_eq!(two("return 3.99"), ":3\r\n");
        assert_eq!(two("return -3.99"), ":-3\r\n");
        assert_eq!(two("return 'x'"), "$1\r\nx\r\n");
        assert_eq!(two("return true"), ":1\r\n");
        assert_eq!(two("return false"), "$-1\r\n");
        assert_eq!(two("return nil"), "$-1\r\n");
        assert_eq!(two("return {1, 2, nil, 4}"), "*2\r\n:1\r\n:2\r\n");
        assert_eq!(two("return {ok = 'fine'}"), "+fine\r\n");
        assert_eq!(two("return {err = 'My Error'}"), "-My Error\r\n");
        assert_eq!(
            two("return {1, {'a', {ok = 'x'}}}"),
            "*2\r\n:1\r\n*2\r\n$1\r\na\r\n+x\r\n"
        );
        assert_eq!(two("return {double = 1.5}"), "$3\r\n1.5\r\n");
        assert_eq!(two("return {map = {a = 1}}"), "*2\r\n$1\r\na\r\n:1\r\n");
        let three = |s| reply_of(s, Protocol::Resp3, Protocol::Resp3);
        assert_eq!(three("return true"), "#t\r\n");
        assert_eq!(three("return false"), "#f\r\n");
        assert_eq!(three("return nil"), "_\r\n");
        assert_eq!(three("return {double = 1.5}"), ",1.5\r\n");
        assert_eq!(three("return {big_number = '123'}"), "(123\r\n");
        assert_eq!(three("return {map = {a = 1}}"), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(three("return {set = {a = true}}"), "~1\r\n$1\r\na\r\n");
        assert_eq!(
            three("return {verbatim_string = {format = 'txt', string = 'hi'}}"),
            "=6\r\ntxt:hi\r\n"
        );
        // setresp(3) but a RESP2 client: booleans as RESP2 writes them.
        assert_eq!(
            reply_of("return false", Protocol::Resp3, Protocol::Resp2),
            ":0\r\n"
        );
        // A table that holds itself stops at the depth limit.
        let deep = reply_of(
            "local t = {} t[1] = t return t",
            Protocol::Resp2,
            Protocol::Resp2,
        );
        assert!(
            deep.ends_with("-ERR reached lua stack limit\r\n"),
            "{}",
            &deep[deep.len() - 40..]
        );
    }

    #[test]
    fn arguments_become_request_words() {
        let lua = Lua::new();
        let args: mlua::MultiValue = lua
            .load("return 'set', 10, 3.5, -0.25, 1e21, 1.5e-7, 0.1, 1e16, 1e17, 123.456, 1e300, 2.5e-5")
            .eval()
            .unwrap();
        let args: Vec<Value> = args.into_iter().collect();
        let (mut src, mut spans) = (Vec::new(), Vec::new());
        request_args(&args, &mut src, &mut spans).unwrap();
        let words: Vec<&str> = spans
            .iter()
            .map(|&(a, b)| std::str::from_utf8(&src[a..b]).unwrap())
            .collect();
        // Redis 7.0.15's text for each.
        let expected = [
            "set",
            "10",
            "3.5",
            "-0.25",
            "1e+21",
            "1.4999999999999999e-07",
            "0.10000000000000001",
            "10000000000000000",
            "1e+17",
            "123.456",
            "1.0000000000000001e+300",
            "2.5000000000000001e-05",
        ];
        assert_eq!(words, expected);
        assert_eq!(
            request_args(&[], &mut src, &mut spans),
            Err(ArgsError::Empty)
        );
        let table = Value::Table(lua.create_table().unwrap());
        assert_eq!(
            request_args(&[table], &mut src, &mut spans),
            Err(ArgsError::Type)
        );
    }
}
