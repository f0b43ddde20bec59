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

/// Turns one reply (RESP2 or RESP3, as the command wrote it) into a Lua
/// value: integers to numbers, bulk strings to strings, arrays to tables,
/// a null bulk or array to `false` (RESP3 null to `nil`), a status to
/// `{ok = ...}`, an error to `{err = ...}`, and RESP3's map, set, double,
/// big number and verbatim string to `{map = ...}`, `{set = ...}`,
/// `{double = ...}`, `{big_number = ...}` and `{verbatim_string = ...}`.
pub fn reply_to_lua(lua: &Lua, reply: &[u8]) -> mlua::Result<Value> {
    let mut reader = Reader { buf: reply, at: 0 };
    reader.value(lua)
}

struct Reader<'r> {
    buf: &'r [u8],
    at: usize,
}

impl<'r> Reader<'r> {
    fn line(&mut self) -> mlua::Result<&'r [u8]> {
        let rest = &self.buf[self.at..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
        self.at += end + 2;
        Ok(&rest[..end])
    }

    fn number(&mut self) -> mlua::Result<i64> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| mlua::Error::runtime("bad number in reply"))
    }

    fn bytes(&mut self, len: usize) -> mlua::Result<&'r [u8]> {
        let end = self.at + len;
        let data = self
            .buf
            .get(self.at..end)
            .ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
        self.at = end + 2;
        Ok(data)
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        let kind = *self
            .buf
            .get(self.at)
            .ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
        self.at += 1;
        Ok(match kind {
            b':' => Value::Number(self.number()? as f64),
            b'$' => match self.number()? {
                len if len < 0 => Value::Boolean(false),
                len => Value::String(lua.create_string(self.bytes(len as usize)?)?),
            },
            b'+' => Value::Table(single_field(lua, "ok", lua.create_string(self.line()?)?)?),
            b'-' => {
                let line = self.line()?;
                Value::Table(error_table(lua, &[b"-".as_slice(), line].concat())?)
            }
            b'*' => match self.number()? {
                len if len < 0 => Value::Boolean(false),
                len => {
                    let table = lua.create_table_with_capacity(len as usize, 0)?;
                    for i in 1..=len {
                        table.raw_set(i, self.value(lua)?)?;
                    }
                    Value::Table(table)
                }
            },
            b'%' => {
                let len = self.number()?;
                let map = lua.create_table()?;
                for _ in 0..len {
                    let key = self.value(lua)?;
                    let value = self.value(lua)?;
                    map.raw_set(key, value)?;
                }
                Value::Table(single_field(lua, "map", map)?)
            }
            b'~' => {
                let len = self.number()?;
                let set = lua.create_table()?;
                for _ in 0..len {
                    set.raw_set(self.value(lua)?, true)?;
                }
                Value::Table(single_field(lua, "set", set)?)
            }
            b'_' => {
                self.line()?;
                Value::Nil
            }
            b'#' => Value::Boolean(self.line()? == b"t"),
            b',' => {
                let line = self.line()?;
                let number = match line {
                    b"inf" => f64::INFINITY,
                    b"-inf" => f64::NEG_INFINITY,
                    other => std::str::from_utf8(other)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(f64::NAN),
                };
                Value::Table(single_field(lua, "double", number)?)
            }
            b'(' => {
                let digits = lua.create_string(self.line()?)?;
                Value::Table(single_field(lua, "big_number", digits)?)
            }
            b'=' => {
                let len = self.number()?.max(4) as usize;
                let data = self.bytes(len)?;
                let (format, text) = data.split_at(4.min(data.len()));
                let verbatim = lua.create_table()?;
                verbatim.raw_set("format", lua.create_string(&format[..format.len().min(3)])?)?;
                verbatim.raw_set("string", lua.create_string(text)?)?;
                Value::Table(single_field(lua, "verbatim_string", verbatim)?)
            }
            _ => return Err(mlua::Error::runtime("unknown reply type")),
        })
    }
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

/// Appends `redis.call`'s arguments to `src`, one span each: strings as
/// they are, integral numbers as integers, other numbers in their shortest
/// exact form.
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
            Value::Integer(n) => src.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Number(n) => format_number(*n, src),
            _ => return Err(ArgsError::Type),
        }
        spans.push((start, src.len()));
    }
    Ok(())
}

/// A Lua number as Redis sends it: an integer when it is one, else the
/// shortest text that reads back the same (`%.17g`-like exponents).
pub fn format_number(n: f64, out: &mut Vec<u8>) {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        out.extend_from_slice(itoa::Buffer::new().format(n as i64).as_bytes());
        return;
    }
    let exponent = if n == 0.0 || !n.is_finite() {
        0
    } else {
        n.abs().log10().floor() as i32
    };
    let text = if n.is_nan() {
        "nan".to_owned()
    } else if n.is_infinite() {
        if n > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else if !(-5..17).contains(&exponent) {
        let text = format!("{n:e}");
        // Rust writes `1e21` and `1.5e-7`; C writes `1e+21` and `1.5e-07`.
        match text.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => text,
        }
    } else {
        format!("{n}")
    };
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua_of(reply: &str) -> String {
        let lua = Lua::new();
        let value = reply_to_lua(&lua, reply.as_bytes()).unwrap();
        lua.globals().set("v", value).unwrap();
        lua.load(
            r#"
            local function show(v)
                if type(v) ~= 'table' then return type(v) .. ':' .. tostring(v) end
                local keys = {}
                for k in pairs(v) do keys[#keys + 1] = k end
                table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
                local parts = {}
                for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. '=' .. show(v[k]) end
                return '{' .. table.concat(parts, ',') .. '}'
            end
            return show(v)
        "#,
        )
        .eval()
        .unwrap()
    }

    #[test]
    fn replies_become_lua_values_by_redis_rules() {
        assert_eq!(lua_of(":42\r\n"), "number:42");
        assert_eq!(lua_of("$3\r\nfoo\r\n"), "string:foo");
        assert_eq!(lua_of("$-1\r\n"), "boolean:false");
        assert_eq!(lua_of("*-1\r\n"), "boolean:false");
        assert_eq!(lua_of("+OK\r\n"), "{ok=string:OK}");
        assert_eq!(lua_of("-WRONGTYPE bad\r\n"), "{err=string:WRONGTYPE bad}");
        assert_eq!(lua_of("-oops\r\n"), "{err=string:ERR oops}");
        assert_eq!(
            lua_of("*3\r\n:1\r\n$1\r\na\r\n*1\r\n$-1\r\n"),
            "{1=number:1,2=string:a,3={1=boolean:false}}"
        );
        assert_eq!(lua_of("_\r\n"), "nil:nil");
        assert_eq!(lua_of("#t\r\n"), "boolean:true");
        assert_eq!(lua_of(",1.5\r\n"), "{double=number:1.5}");
        assert_eq!(
            lua_of("(123456789012345678901\r\n"),
            "{big_number=string:123456789012345678901}"
        );
        assert_eq!(lua_of("%1\r\n$1\r\nk\r\n:1\r\n"), "{map={k=number:1}}");
        assert_eq!(
            lua_of("~2\r\n$1\r\na\r\n$1\r\nb\r\n"),
            "{set={a=boolean:true,b=boolean:true}}"
        );
        assert_eq!(
            lua_of("=8\r\ntxt:text\r\n"),
            "{verbatim_string={format=string:txt,string=string:text}}"
        );
    }

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
            .load("return 'set', 10, 3.5, -0.25, 1e21, 1.5e-7")
            .eval()
            .unwrap();
        let args: Vec<Value> = args.into_iter().collect();
        let (mut src, mut spans) = (Vec::new(), Vec::new());
        request_args(&args, &mut src, &mut spans).unwrap();
        let words: Vec<&str> = spans
            .iter()
            .map(|&(a, b)| std::str::from_utf8(&src[a..b]).unwrap())
            .collect();
        assert_eq!(words, ["set", "10", "3.5", "-0.25", "1e+21", "1.5e-07"]);
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
