//! `cmsgpack`: the MessagePack library Redis gives Lua scripts.
//!
//! A rewrite of lua-cmsgpack 0.4.0 as Redis vendors it. Everything a script
//! can observe follows the C library: which MessagePack type each Lua value
//! packs as, the Lua values unpacking builds, the offsets `unpack_one` and
//! `unpack_limit` return, and the error messages (raised as
//! `mlua::Error::RuntimeError`, prefixed like `luaL_error` with the calling
//! script's position).
//!
//! Packing recurses, at most `MAX_NESTING` tables deep. Unpacking keeps its
//! own stack, so deeply nested input cannot exhaust the Rust stack.

use mlua::{Error, Lua, LuaString, MultiValue, Result, Table, Value};

use super::{arg_error, runtime_error, type_error};

/// Stack slots a C function may use (Lua 5.1's `LUAI_MAXCSTACK`). The C
/// library fails with a "stack overflow" error when unpacking would hold more
/// (each returned value, and one or two per nesting level, take a slot).
const LUA_MAX_C_STACK: usize = 8000;

/// Tables nested deeper than this pack as nil (`LUACMSGPACK_MAX_NESTING`),
/// which also stops a table that contains itself.
const MAX_NESTING: usize = 16;

/// Registers the global `cmsgpack` table.
pub fn register(lua: &Lua) -> Result<()> {
    let module = lua.create_table()?;
    module.set("pack", lua.create_function(pack)?)?;
    module.set("unpack", lua.create_function(unpack)?)?;
    module.set("unpack_one", lua.create_function(unpack_one)?)?;
    module.set("unpack_limit", lua.create_function(unpack_limit)?)?;
    module.set("_NAME", "cmsgpack")?;
    module.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    module.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    module.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    lua.globals().set("cmsgpack", module)
}

/// `cmsgpack.pack(...)`: every argument packed, one after the other.
fn pack(lua: &Lua, args: MultiValue) -> Result<LuaString> {
    if args.is_empty() {
        return Err(arg_error(lua, 0, "MessagePack pack needs input."));
    }
    // The C asks for one more slot per argument, on top of the arguments.
    if 2 * args.len() > LUA_MAX_C_STACK {
        return Err(arg_error(
            lua,
            0,
            "Too many arguments for MessagePack pack.",
        ));
    }
    let mut out = Vec::new();
    for value in &args {
        pack_value(&mut out, value, 0)?;
    }
    lua.create_string(&out)
}

/// Appends one value; `level` counts the tables it is inside.
fn pack_value(out: &mut Vec<u8>, value: &Value, level: usize) -> Result<()> {
    match value {
        Value::Table(table) if level < MAX_NESTING => pack_table(out, table, level)?,
        Value::String(text) => pack_bytes(out, &text.as_bytes()),
        Value::Boolean(true) => out.push(0xc3),
        Value::Boolean(false) => out.push(0xc2),
        Value::Integer(i) => pack_number(out, *i as f64),
        Value::Number(n) => pack_number(out, *n),
        // Nil, and what MessagePack has no type for: functions, userdata...
        _ => out.push(0xc0),
    }
    Ok(())
}

/// A table whose keys are exactly 1..n packs as an array, any other as a
/// map (an empty table is an empty array).
fn pack_table(out: &mut Vec<u8>, table: &Table, level: usize) -> Result<()> {
    if is_array(table)? {
        let len = table.raw_len();
        pack_header(out, len, 0x90, 0xdc);
        for index in 1..=len {
            pack_value(out, &table.raw_get(index)?, level + 1)?;
        }
        return Ok(());
    }
    // Values read as booleans: counting needs no references to them.
    let mut len = 0;
    for pair in table.pairs::<Value, bool>() {
        pair?;
        len += 1;
    }
    pack_header(out, len, 0x80, 0xde);
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair?;
        pack_value(out, &key, level + 1)?;
        pack_value(out, &value, level + 1)?;
    }
    Ok(())
}

/// `table_is_an_array`: every key a positive integer that fits a C `int`,
/// the largest equal to the count (so no holes).
fn is_array(table: &Table) -> Result<bool> {
    let (mut max, mut count) = (0i64, 0i64);
    for pair in table.pairs::<Value, bool>() {
        let index = match pair?.0 {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(false),
        };
        if !(index > 0.0 && index.fract() == 0.0 && index <= f64::from(i32::MAX)) {
            return Ok(false);
        }
        max = max.max(index as i64);
        count += 1;
    }
    Ok(max == count)
}

/// An array or map header: `fix` holds up to 15 entries in its low bits,
/// `wide` is the 16-bit form and `wide + 1` the 32-bit one.
fn pack_header(out: &mut Vec<u8>, len: usize, fix: u8, wide: u8) {
    if len <= 15 {
        out.push(fix | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(wide);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(wide + 1);
        // The C writes the low 32 bits of larger lengths.
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// A string as str (fixstr, str8, str16 or str32), whatever its bytes.
fn pack_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[0xd9, len]);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xda);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// An integral number in the smallest integer type that holds it, any
/// other as a float32 when that is exact, else a float64.
fn pack_number(out: &mut Vec<u8>, number: f64) {
    // The C's `(int64_t)n == n`: integral and in range (so -0 packs as 0).
    let integral = number.fract() == 0.0 && (-(2f64.powi(63))..2f64.powi(63)).contains(&number);
    if integral {
        pack_integer(out, number as i64);
    } else if f64::from(number as f32) == number {
        out.push(0xca);
        out.extend_from_slice(&(number as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&number.to_be_bytes());
    }
}

fn pack_integer(out: &mut Vec<u8>, n: i64) {
    match n {
        // Positive and negative fixints are the value itself.
        -32..=0x7f => out.push(n as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        -128..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2_147_483_648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// `cmsgpack.unpack(s)`: every value in `s`.
fn unpack(lua: &Lua, args: MultiValue) -> Result<MultiValue> {
    // Unlike the other two, the C leaves all its arguments on the stack.
    let slots = args.len();
    unpack_values(lua, args.front(), 0, 0, slots)
}

/// `cmsgpack.unpack_one(s [, offset])`: the next offset and the value there.
fn unpack_one(lua: &Lua, args: MultiValue) -> Result<MultiValue> {
    let offset = opt_integer(lua, args.get(1), 2)?;
    unpack_values(lua, args.front(), 1, offset, 1)
}

/// `cmsgpack.unpack_limit(s, limit [, offset])`: the next offset and up to
/// `limit` values from `offset` on.
fn unpack_limit(lua: &Lua, args: MultiValue) -> Result<MultiValue> {
    let limit = check_integer(lua, args.get(1), 2)?;
    let offset = opt_integer(lua, args.get(2), 3)?;
    unpack_values(lua, args.front(), limit, offset, 1)
}

/// `mp_unpack_full`: up to `limit` values from `offset` on, after the next
/// offset (-1 at the end) unless both are 0, which means "all values, no
/// offset" (also for `unpack_limit(s, 0)`). `slots` is what the C stack holds
/// before the first value.
fn unpack_values(
    lua: &Lua,
    input: Option<&Value>,
    limit: i64,
    offset: i64,
    slots: usize,
) -> Result<MultiValue> {
    let text = check_string(lua, input, 1)?;
    let bytes = text.as_bytes();
    let len = bytes.len();
    if offset < 0 || limit < 0 {
        // Sic: the C reports the input length as the limit.
        let message = format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        );
        return Err(runtime_error(lua, message));
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start > len {
        let message = format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        );
        return Err(runtime_error(lua, message));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut reader = Reader {
        lua,
        bytes: &bytes[..],
        pos: start,
    };
    let mut values = Vec::new();
    while reader.pos < len && (values.len() as i64) < limit {
        values.push(reader.value(slots + values.len())?);
    }
    if !decode_all {
        if slots + values.len() + 1 > LUA_MAX_C_STACK {
            return Err(stack_overflow(lua, "in function mp_unpack_full"));
        }
        let next = if reader.pos == len {
            -1
        } else {
            reader.pos as i64
        };
        values.insert(0, Value::Integer(next));
    }
    Ok(MultiValue::from_vec(values))
}

/// What a type byte starts.
enum Item {
    Value(Value),
    Array(u32),
    Map(u32),
}

/// A table being filled while unpacking.
enum Open {
    /// `left` elements to go, the next at index `next`.
    Array { table: Table, next: i64, left: u32 },
    /// `left` pairs to go; `key` is set while its value is read.
    Map {
        table: Table,
        left: u32,
        key: Option<Value>,
    },
}

impl Open {
    /// Stack slots the C holds while reading inside this table: the table,
    /// plus the index (arrays) or the key once read (maps).
    fn slots(&self) -> usize {
        match self {
            Open::Array { .. } => 2,
            Open::Map { key: None, .. } => 1,
            Open::Map { key: Some(_), .. } => 2,
        }
    }

    fn into_table(self) -> Table {
        match self {
            Open::Array { table, .. } | Open::Map { table, .. } => table,
        }
    }
}

/// Reads MessagePack values from `bytes` at `pos`.
struct Reader<'a> {
    lua: &'a Lua,
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// One whole value, with `slots` already used on the C stack.
    fn value(&mut self, slots: usize) -> Result<Value> {
        let mut open: Vec<Open> = Vec::new();
        let mut inner_slots = 0;
        loop {
            let used = slots + inner_slots;
            let mut value = match self.item(used)? {
                Item::Value(value) => value,
                Item::Array(len) => {
                    let table = self.lua.create_table()?;
                    // The C checks for one more slot above the new table.
                    if used + 2 > LUA_MAX_C_STACK {
                        return Err(stack_overflow(
                            self.lua,
                            "in function mp_decode_to_lua_array",
                        ));
                    }
                    if len == 0 {
                        Value::Table(table)
                    } else {
                        let array = Open::Array {
                            table,
                            next: 1,
                            left: len,
                        };
                        inner_slots += array.slots();
                        open.push(array);
                        continue;
                    }
                }
                Item::Map(len) => {
                    let table = self.lua.create_table()?;
                    if len == 0 {
                        Value::Table(table)
                    } else {
                        let map = Open::Map {
                            table,
                            left: len,
                            key: None,
                        };
                        inner_slots += map.slots();
                        open.push(map);
                        continue;
                    }
                }
            };
            // Store the value, closing every table it completes.
            loop {
                let Some(mut top) = open.pop() else {
                    return Ok(value);
                };
                inner_slots -= top.slots();
                let done = match &mut top {
                    Open::Array { table, next, left } => {
                        table.raw_set(*next, value)?;
                        *next += 1;
                        *left -= 1;
                        *left == 0
                    }
                    Open::Map {
                        key: key @ None, ..
                    } => {
                        *key = Some(value);
                        false
                    }
                    Open::Map { table, left, key } => {
                        set_field(table, key.take(), value)?;
                        *left -= 1;
                        *left == 0
                    }
                };
                if !done {
                    inner_slots += top.slots();
                    open.push(top);
                    break;
                }
                value = Value::Table(top.into_table());
            }
        }
    }

    /// Reads a type byte and, for scalars, the value it starts.
    fn item(&mut self, used: usize) -> Result<Item> {
        let [tag] = self.take::<1>()?;
        if used + 1 > LUA_MAX_C_STACK {
            let message = "too many return values at once; use unpack_one or unpack_limit instead.";
            return Err(stack_overflow(self.lua, message));
        }
        let number = |n: f64| Ok(Item::Value(Value::Number(n)));
        match tag {
            0x00..=0x7f => number(f64::from(tag)),
            0x80..=0x8f => Ok(Item::Map(u32::from(tag & 0x0f))),
            0x90..=0x9f => Ok(Item::Array(u32::from(tag & 0x0f))),
            0xa0..=0xbf => self.string(usize::from(tag & 0x1f)),
            0xc0 => Ok(Item::Value(Value::Nil)),
            0xc2 => Ok(Item::Value(Value::Boolean(false))),
            0xc3 => Ok(Item::Value(Value::Boolean(true))),
            0xca => number(f64::from(f32::from_be_bytes(self.take()?))),
            0xcb => number(f64::from_be_bytes(self.take()?)),
            0xcc => number(f64::from(u8::from_be_bytes(self.take()?))),
            0xcd => number(f64::from(u16::from_be_bytes(self.take()?))),
            0xce => number(f64::from(u32::from_be_bytes(self.take()?))),
            // The C pushes it as a signed 64-bit integer: the top half wraps.
            0xcf => number(i64::from_be_bytes(self.take()?) as f64),
            0xd0 => number(f64::from(i8::from_be_bytes(self.take()?))),
            0xd1 => number(f64::from(i16::from_be_bytes(self.take()?))),
            0xd2 => number(f64::from(i32::from_be_bytes(self.take()?))),
            0xd3 => number(i64::from_be_bytes(self.take()?) as f64),
            0xd9 => {
                let len = u8::from_be_bytes(self.take()?);
                self.string(usize::from(len))
            }
            0xda => {
                let len = u16::from_be_bytes(self.take()?);
                self.string(usize::from(len))
            }
            0xdb => {
                let len = u32::from_be_bytes(self.take()?);
                self.string(usize::try_from(len).unwrap_or(usize::MAX))
            }
            0xdc => Ok(Item::Array(u16::from_be_bytes(self.take()?).into())),
            0xdd => Ok(Item::Array(u32::from_be_bytes(self.take()?))),
            0xde => Ok(Item::Map(u16::from_be_bytes(self.take()?).into())),
            0xdf => Ok(Item::Map(u32::from_be_bytes(self.take()?))),
            0xe0..=0xff => number(f64::from(tag as i8)),
            // 0xc1, and the bin, ext and fixext types the library predates.
            _ => Err(runtime_error(self.lua, "Bad data format in input.")),
        }
    }

    fn string(&mut self, len: usize) -> Result<Item> {
        let start = self.pos;
        self.skip(len)?;
        let text = self.lua.create_string(&self.bytes[start..self.pos])?;
        Ok(Item::Value(Value::String(text)))
    }

    /// The next `N` bytes.
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let start = self.pos;
        self.skip(N)?;
        let mut bytes = [0; N];
        bytes.copy_from_slice(&self.bytes[start..self.pos]);
        Ok(bytes)
    }

    fn skip(&mut self, len: usize) -> Result<()> {
        if self.bytes.len() - self.pos < len {
            return Err(runtime_error(self.lua, "Missing bytes in input."));
        }
        self.pos += len;
        Ok(())
    }
}

/// Stores a map entry as `lua_settable` does: a nil value removes the key,
/// a nil or NaN key is an error.
fn set_field(table: &Table, key: Option<Value>, value: Value) -> Result<()> {
    match key.unwrap_or(Value::Nil) {
        // Raised by Lua itself, which adds no position for a C function.
        Value::Nil => Err(Error::runtime("table index is nil")),
        Value::Number(n) if n.is_nan() => Err(Error::runtime("table index is NaN")),
        key => table.raw_set(key, value),
    }
}

/// `luaL_checkstack`'s error.
fn stack_overflow(lua: &Lua, message: &str) -> Error {
    runtime_error(lua, format!("stack overflow ({message})"))
}

/// `luaL_checklstring`: a string, or a number converted as Lua does.
fn check_string(lua: &Lua, value: Option<&Value>, arg: usize) -> Result<LuaString> {
    let text = match value {
        Some(value) => lua.coerce_string(value.clone())?,
        None => None,
    };
    text.ok_or_else(|| type_error(lua, arg, "string", value))
}

/// `luaL_checkinteger`: a number (or numeric string) truncated to an integer.
fn check_integer(lua: &Lua, value: Option<&Value>, arg: usize) -> Result<i64> {
    let number = match value {
        Some(value) => lua.coerce_number(value.clone())?,
        None => None,
    };
    number
        .map(|number| number as i64)
        .ok_or_else(|| type_error(lua, arg, "number", value))
}

/// `luaL_optinteger` with a default of 0.
fn opt_integer(lua: &Lua, value: Option<&Value>, arg: usize) -> Result<i64> {
    match value {
        None | Some(Value::Nil) => Ok(0),
        value => check_integer(lua, value, arg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh state with `cmsgpack` registered, and `hex(s)` to read packed
    /// bytes.
    fn lua() -> Lua {
        let lua = Lua::new();
        register(&lua).expect("register cmsgpack");
        lua.load(
            "function hex(s)
                 return (string.gsub(s, '.', function(c) return string.format('%02x', c:byte()) end))
             end",
        )
        .exec()
        .expect("define hex");
        lua
    }

    /// Runs `code` as Redis names scripts (so errors start `user_script:1: `).
    fn run<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> Result<T> {
        lua.load(code).set_name("@user_script").eval()
    }

    fn eval<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> T {
        run(lua, code).unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    /// The message of the error `code` raises.
    fn error(lua: &Lua, code: &str) -> String {
        match run::<()>(lua, code) {
            Ok(()) => panic!("{code}: no error"),
            Err(e) => message(&e),
        }
    }

    fn message(e: &Error) -> String {
        match e {
            Error::CallbackError { cause, .. } => message(cause),
            Error::RuntimeError(m) => m.clone(),
            other => other.to_string(),
        }
    }

    fn assert_packs(lua: &Lua, cases: &[(&str, &str)]) {
        for (args, hex) in cases {
            let packed: String = eval(lua, &format!("return hex(cmsgpack.pack({args}))"));
            assert_eq!(packed, *hex, "pack({args})");
        }
    }

    fn assert_errors(lua: &Lua, cases: &[(&str, &str)]) {
        for (code, expected) in cases {
            assert_eq!(error(lua, code), *expected, "{code}");
        }
    }

    /// What `cmsgpack.unpack(bytes)` returns, each value shown by `show`.
    fn unpack(lua: &Lua, bytes: &[u8]) -> Vec<String> {
        let unpack: mlua::Function = eval(lua, "return cmsgpack.unpack");
        let values: MultiValue = unpack.call(lua.create_string(bytes).unwrap()).unwrap();
        values.iter().map(show).collect()
    }

    /// A value as text, table keys sorted.
    fn show(value: &Value) -> String {
        match value {
            Value::Nil => "nil".into(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => format!("{n:?}"),
            Value::String(s) => format!("{:?}", s.to_string_lossy()),
            Value::Table(t) => {
                let mut pairs: Vec<String> = t
                    .pairs::<Value, Value>()
                    .map(|pair| {
                        let (k, v) = pair.unwrap();
                        format!("{}={}", show(&k), show(&v))
                    })
                    .collect();
                pairs.sort();
                format!("{{{}}}", pairs.join(","))
            }
            other => other.type_name().into(),
        }
    }

    #[test]
    fn module_fields() {
        let lua = lua();
        let fields: (String, String, String, String) = eval(
            &lua,
            "return cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION",
        );
        assert_eq!(
            fields,
            (
                "cmsgpack".into(),
                "lua-cmsgpack 0.4.0".into(),
                "Copyright (C) 2012, Salvatore Sanfilippo".into(),
                "MessagePack C implementation for Lua".into()
            )
        );
        for name in ["pack", "unpack", "unpack_one", "unpack_limit"] {
            let kind: String = eval(&lua, &format!("return type(cmsgpack.{name})"));
            assert_eq!(kind, "function");
        }
    }

    #[test]
    fn packs_integers_in_the_smallest_type() {
        let lua = lua();
        assert_packs(
            &lua,
            &[
                ("0", "00"),
                ("-0", "00"),
                ("1", "01"),
                ("127", "7f"),
                ("128", "cc80"),
                ("255", "ccff"),
                ("256", "cd0100"),
                ("65535", "cdffff"),
                ("65536", "ce00010000"),
                ("4294967295", "ceffffffff"),
                ("4294967296", "cf0000000100000000"),
                ("2^53", "cf0020000000000000"),
                ("-1", "ff"),
                ("-32", "e0"),
                ("-33", "d0df"),
                ("-128", "d080"),
                ("-129", "d1ff7f"),
                ("-32768", "d18000"),
                ("-32769", "d2ffff7fff"),
                ("-2147483648", "d280000000"),
                ("-2147483649", "d3ffffffff7fffffff"),
                ("-1099511627776", "d3ffffff0000000000"),
                ("-2^63", "d38000000000000000"),
                ("16777217", "ce01000001"),
            ],
        );
    }

    #[test]
    fn packs_other_numbers_as_float32_when_exact() {
        let lua = lua();
        assert_packs(
            &lua,
            &[
                ("0.5", "ca3f000000"),
                ("-1.5", "cabfc00000"),
                ("123456.75", "ca47f12060"),
                ("2^-149", "ca00000001"),
                ("3.4028234663852886e38", "ca7f7fffff"),
                // Integral but out of int64 range.
                ("2^63", "ca5f000000"),
                ("2^64", "ca5f800000"),
                ("1/0", "ca7f800000"),
                ("-1/0", "caff800000"),
                ("0.1", "cb3fb999999999999a"),
                ("1/3", "cb3fd5555555555555"),
                ("1e300", "cb7e37e43c8800759c"),
                ("2^-150", "cb3690000000000000"),
                ("16777216.5", "cb4170000008000000"),
                ("3.4028235677973366e38", "cb47effffff0000000"),
            ],
        );
        let nan: String = eval(&lua, "return hex(cmsgpack.pack(0/0)):sub(1, 2)");
        assert_eq!(nan, "cb");
    }

    #[test]
    fn packs_strings_and_scalars() {
        let lua = lua();
        assert_packs(
            &lua,
            &[
                ("nil", "c0"),
                ("true", "c3"),
                ("false", "c2"),
                ("''", "a0"),
                ("'a'", "a161"),
                (r"'\0\1\255'", "a30001ff"),
                ("string.rep('x', 31):sub(1, 1)", "a178"),
                // What MessagePack has no type for packs as nil.
                ("function() end", "c0"),
                ("coroutine.create(function() end)", "c0"),
                ("{function() end}", "91c0"),
            ],
        );
        let headers: Vec<String> = [31, 32, 255, 256, 65535, 65536]
            .iter()
            .map(|len| {
                let code = format!("return hex(cmsgpack.pack(string.rep('x', {len})):sub(1, 5))");
                eval(&lua, &code)
            })
            .collect();
        assert_eq!(
            headers,
            [
                "bf78787878",
                "d920787878",
                "d9ff787878",
                "da01007878",
                "daffff7878",
                "db00010000"
            ]
        );
    }

    #[test]
    fn packs_tables_as_arrays_or_maps() {
        let lua = lua();
        assert_packs(
            &lua,
            &[
                ("{}", "90"),
                ("{1, 2, 3}", "93010203"),
                ("{{{}}}", "919190"),
                ("{a = 1}", "81a16101"),
                ("{1, nil, 3}", "8201010303"),
                ("{[1] = 1, [3] = 3}", "8201010303"),
                ("{[0] = 1}", "810001"),
                ("{[2] = 2}", "810202"),
                ("{[-1] = 1}", "81ff01"),
                ("{[1.5] = 1}", "81ca3fc0000001"),
                ("{[2^31] = 1}", "81ce8000000001"),
                ("{[{}] = 1}", "819001"),
                ("{[true] = false}", "81c3c2"),
                ("{f = function() end}", "81a166c0"),
            ],
        );
        // Pairs in `next` order: the array part first.
        assert_packs(&lua, &[("{1, x = 2}", "820101a17802")]);
        let sizes: Vec<String> = [
            "local t = {} for i = 1, 15 do t[i] = i end",
            "local t = {} for i = 1, 16 do t[i] = i end",
            "local t = {} for i = 1, 65536 do t[i] = 1 end",
            "local t = {} for i = 1, 16 do t['k' .. i] = 1 end",
            "local t = {} for i = 1, 65536 do t['k' .. i] = 1 end",
        ]
        .iter()
        .map(|setup| {
            eval(
                &lua,
                &format!("{setup} return hex(cmsgpack.pack(t):sub(1, 5))"),
            )
        })
        .collect();
        assert_eq!(
            sizes,
            [
                "9f01020304",
                "dc00100102",
                "dd00010000",
                "de0010a36b",
                "df00010000"
            ]
            .map(|prefix| prefix.to_string())
        );
    }

    #[test]
    fn nesting_past_sixteen_packs_nil() {
        let lua = lua();
        // Redis's "cmsgpack can pack and unpack circular references?".
        let (hex, deep, y): (String, bool, bool) = eval(
            &lua,
            "local a = {x = nil, y = 5}
             local b = {x = a}
             a['x'] = b
             local encoded = cmsgpack.pack(a)
             local re = cmsgpack.unpack(encoded)
             assert(re.x.x.y == re.y)
             assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.y == re.y)
             assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x)
             assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x == nil)
             return hex(encoded), re.x.x.x.x.x.x.x.x.y == re.y, re.y == 5",
        );
        assert_eq!(
            hex,
            "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905\
             a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0"
        );
        assert!(deep && y);
        assert_packs(
            &lua,
            &[
                (
                    "(function() local t = {} t[1] = t return t end)()",
                    "91919191919191919191919191919191c0",
                ),
                (
                    "{[(function() local k = {} k[1] = k return k end)()] = 1}",
                    "81919191919191919191919191919191c001",
                ),
            ],
        );
    }

    #[test]
    fn pack_concatenates_its_arguments() {
        let lua = lua();
        assert_packs(&lua, &[("1, 'a', {2}, nil, true", "01a1619102c0c3")]);
        let len: usize = eval(
            &lua,
            "local t = {} for i = 1, 4000 do t[i] = i end return #cmsgpack.pack(unpack(t))",
        );
        assert_eq!(len, 11618);
        assert_errors(
            &lua,
            &[
                (
                    "cmsgpack.pack()",
                    "user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ),
                (
                    "local t = {} for i = 1, 4001 do t[i] = i end cmsgpack.pack(unpack(t))",
                    "user_script:1: bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)",
                ),
            ],
        );
    }

    #[test]
    fn unpacks_every_type() {
        let lua = lua();
        let cases: &[(&[u8], &[&str])] = &[
            (b"", &[]),
            (b"\x00\x7f\xe0\xff", &["0", "127", "-32", "-1"]),
            (
                b"\xcc\xc8\xcd\x01\x00\xce\xff\xff\xff\xff",
                &["200", "256", "4294967295"],
            ),
            // uint64 goes through a signed 64-bit integer in the C.
            (b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", &["-1"]),
            (b"\xcf\x00\x00\x00\x00\x00\x00\x00\x01", &["1"]),
            (
                b"\xd0\x80\xd1\xff\x01\xd1\x80\x00",
                &["-128", "-255", "-32768"],
            ),
            (b"\xd2\x80\x00\x00\x00", &["-2147483648"]),
            (b"\xd3\xff\xff\xff\x00\x00\x00\x00\x00", &["-1099511627776"]),
            (b"\xca\x3f\xc0\x00\x00", &["1.5"]),
            (b"\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", &["0.1"]),
            (b"\xc0\xc2\xc3", &["nil", "false", "true"]),
            (
                b"\xa0\xa1a\xd9\x02ab\xda\x00\x02ab\xdb\x00\x00\x00\x02ab",
                &["\"\"", "\"a\"", "\"ab\"", "\"ab\"", "\"ab\""],
            ),
            (b"\x90\x80", &["{}", "{}"]),
            (b"\x91\x01\x81\x01\x02", &["{1=1}", "{1=2}"]),
            (
                b"\xdc\x00\x02\x01\x02\xdd\x00\x00\x00\x01\x05",
                &["{1=1,2=2}", "{1=5}"],
            ),
            (
                b"\xde\x00\x01\x01\x02\xdf\x00\x00\x00\x01\x01\x02",
                &["{1=2}", "{1=2}"],
            ),
            // Nil values leave holes, or remove a key set before.
            (b"\x93\x01\xc0\x03", &["{1=1,3=3}"]),
            (b"\x82\xa1a\x01\xa1a\xc0", &["{}"]),
            (b"\x82\xa1a\x01\xa1a\x02", &["{\"a\"=2}"]),
            // Tables as keys.
            (b"\x81\x91\x01\x02", &["{{1=1}=2}"]),
        ];
        for (bytes, expected) in cases {
            assert_eq!(unpack(&lua, bytes), *expected, "{bytes:?}");
        }
        let nan: bool = eval(
            &lua,
            r"local n = cmsgpack.unpack('\202\127\192\0\0') return n ~= n",
        );
        assert!(nan);
        assert_eq!(eval::<f64>(&lua, "return cmsgpack.unpack(5)"), 53.0);
    }

    #[test]
    fn unpack_errors() {
        let lua = lua();
        let missing = "user_script:1: Missing bytes in input.";
        let bad = "user_script:1: Bad data format in input.";
        for input in [
            r"\143",
            r"\145",
            r"\146\1",
            r"\129",
            r"\129\1",
            r"\162a",
            r"\202\0",
            r"\205\1",
            r"\217",
            r"\217\3ab",
            r"\218\0",
            r"\220\0",
            r"\220\0\3\1\2",
            r"\221\0\0\0",
            r"\219\255\255\255\255ab",
        ] {
            assert_eq!(
                error(&lua, &format!("cmsgpack.unpack('{input}')")),
                missing,
                "{input}"
            );
        }
        // Unused, bin, ext and fixext types.
        for input in [
            r"\193",
            r"\196\1a",
            r"\197\0\1a",
            r"\199\1\1a",
            r"\212\1\1",
            r"\216\1",
            r"\1\193",
        ] {
            assert_eq!(
                error(&lua, &format!("cmsgpack.unpack('{input}')")),
                bad,
                "{input}"
            );
        }
        assert_errors(
            &lua,
            &[
                // Raised by Lua's table code, which adds no position.
                (r"cmsgpack.unpack('\129\192\1')", "table index is nil"),
                (
                    r"cmsgpack.unpack('\129\203\255\248\0\0\0\0\0\0\1')",
                    "table index is NaN",
                ),
                (
                    "cmsgpack.unpack()",
                    "user_script:1: bad argument #1 to 'unpack' (string expected, got no value)",
                ),
                (
                    "cmsgpack.unpack({})",
                    "user_script:1: bad argument #1 to 'unpack' (string expected, got table)",
                ),
            ],
        );
    }

    #[test]
    fn unpack_one_and_unpack_limit_return_the_next_offset() {
        let lua = lua();
        let call = |code: &str| -> Vec<String> {
            let values: MultiValue = eval(&lua, &format!("return {code}"));
            values.iter().map(show).collect()
        };
        let s = r"'\1\2\3'";
        assert_eq!(call(&format!("cmsgpack.unpack_one({s})")), ["1", "1"]);
        assert_eq!(call(&format!("cmsgpack.unpack_one({s}, 1)")), ["2", "2"]);
        assert_eq!(call(&format!("cmsgpack.unpack_one({s}, '1')")), ["2", "2"]);
        assert_eq!(call(&format!("cmsgpack.unpack_one({s}, 1.7)")), ["2", "2"]);
        assert_eq!(call(&format!("cmsgpack.unpack_one({s}, 2)")), ["-1", "3"]);
        assert_eq!(call(&format!("cmsgpack.unpack_one({s}, 3)")), ["-1"]);
        assert_eq!(call(&format!("cmsgpack.unpack_one({s}, nil)")), ["1", "1"]);
        assert_eq!(call("cmsgpack.unpack_one('')"), ["-1"]);
        assert_eq!(call(&format!("cmsgpack.unpack_limit({s}, 1)")), ["1", "1"]);
        assert_eq!(
            call(&format!("cmsgpack.unpack_limit({s}, 2)")),
            ["2", "1", "2"]
        );
        assert_eq!(
            call(&format!("cmsgpack.unpack_limit({s}, 5)")),
            ["-1", "1", "2", "3"]
        );
        assert_eq!(
            call(&format!("cmsgpack.unpack_limit({s}, 2, 1)")),
            ["-1", "2", "3"]
        );
        assert_eq!(
            call(&format!("cmsgpack.unpack_limit({s}, '2', '1')")),
            ["-1", "2", "3"]
        );
        assert_eq!(call(&format!("cmsgpack.unpack_limit({s}, 1, 3)")), ["-1"]);
        // A limit of 0 from offset 0 means all values, without an offset.
        assert_eq!(
            call(&format!("cmsgpack.unpack_limit({s}, 0)")),
            ["1", "2", "3"]
        );
        assert_eq!(call(&format!("cmsgpack.unpack_limit({s}, 0, 1)")), ["1"]);
        assert_errors(
            &lua,
            &[
                (
                    &format!("cmsgpack.unpack_one({s}, 4)"),
                    "user_script:1: Start offset 4 greater than input length 3.",
                ),
                (
                    // Sic: the C reports the input length as the limit.
                    &format!("cmsgpack.unpack_one({s}, -1)"),
                    "user_script:1: Invalid request to unpack with offset of -1 and limit of 3.",
                ),
                (
                    &format!("cmsgpack.unpack_limit({s}, -1)"),
                    "user_script:1: Invalid request to unpack with offset of 0 and limit of 3.",
                ),
                (
                    "cmsgpack.unpack_one('\\1', 2^32 + 1)",
                    "user_script:1: Start offset 1 greater than input length 1.",
                ),
                (
                    &format!("cmsgpack.unpack_one({s}, 'x')"),
                    "user_script:1: bad argument #2 to 'unpack_one' (number expected, got string)",
                ),
                (
                    // The offset is checked before the input.
                    "cmsgpack.unpack_one(nil, 'x')",
                    "user_script:1: bad argument #2 to 'unpack_one' (number expected, got string)",
                ),
                (
                    "cmsgpack.unpack_one(nil)",
                    "user_script:1: bad argument #1 to 'unpack_one' (string expected, got nil)",
                ),
                (
                    &format!("cmsgpack.unpack_limit({s})"),
                    "user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)",
                ),
                (
                    &format!("cmsgpack.unpack_limit({s}, 1, 'x')"),
                    "user_script:1: bad argument #3 to 'unpack_limit' (number expected, got string)",
                ),
                ("cmsgpack.unpack_one('\\145')", "user_script:1: Missing bytes in input."),
            ],
        );
    }

    #[test]
    fn unpack_is_limited_like_the_c_stack() {
        let lua = lua();
        let count = |code: &str| eval::<usize>(&lua, &format!("return select('#', {code})"));
        assert_eq!(count(r"cmsgpack.unpack(string.rep('\1', 7000))"), 7000);
        assert_eq!(
            count(r"cmsgpack.unpack(string.rep('\145', 3999) .. '\1')"),
            1
        );
        assert_eq!(
            count(r"cmsgpack.unpack(string.rep('\129\1', 3999) .. '\1')"),
            1
        );
        let overflow = "user_script:1: stack overflow (too many return values at once; \
                        use unpack_one or unpack_limit instead.)";
        let array_overflow = "user_script:1: stack overflow (in function mp_decode_to_lua_array)";
        assert_errors(
            &lua,
            &[
                (r"cmsgpack.unpack(string.rep('\1', 8000))", overflow),
                (r"cmsgpack.unpack(string.rep('\1', 8000), 'x')", overflow),
                (
                    r"cmsgpack.unpack_limit(string.rep('\1', 8000), 7999)",
                    "user_script:1: stack overflow (in function mp_unpack_full)",
                ),
                (
                    r"cmsgpack.unpack(string.rep('\145', 4000) .. '\1')",
                    array_overflow,
                ),
                (
                    r"cmsgpack.unpack(string.rep('\145', 3999) .. '\144')",
                    array_overflow,
                ),
                (
                    r"cmsgpack.unpack(string.rep('\145', 100000))",
                    array_overflow,
                ),
                (
                    r"cmsgpack.unpack(string.rep('\129', 7000) .. '\1')",
                    "user_script:1: Missing bytes in input.",
                ),
            ],
        );
    }

    #[test]
    fn round_trips() {
        let lua = lua();
        let values: MultiValue = eval(
            &lua,
            "return cmsgpack.unpack(cmsgpack.pack({1, 2, {3, {4}}}, 'x', 2.5, -7, 0.1, 1e300, \
             2^63, -2^63, 2^64))",
        );
        let shown: Vec<String> = values.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                "{1=1,2=2,3={1=3,2={1=4}}}",
                "\"x\"",
                "2.5",
                "-7",
                "0.1",
                "1e300",
                "9.223372036854776e18",
                "-9223372036854775808",
                "1.8446744073709552e19",
            ]
        );
        // Redis's "cmsgpack pack/unpack smoke test".
        eval::<()>(
            &lua,
            r#"
            local str_lt_32 = string.rep("x", 30)
            local str_lt_255 = string.rep("x", 250)
            local str_lt_65535 = string.rep("x", 65530)
            local str_long = string.rep("x", 100000)
            local array_big = {}
            for i = 1, 100000 do array_big[i] = i end
            local map_big = {}
            for i = 1, 100000 do map_big[tostring(i)] = i end
            local some_map = {s1 = str_lt_32, s2 = str_lt_255, s3 = str_lt_65535, s4 = str_long,
                d1 = 0.1, i1 = 1, i2 = 250, i3 = 65530, i4 = 100000, i5 = 2^40, i6 = -1,
                i7 = -120, i8 = -32000, i9 = -100000, i10 = -3147483648, a1 = {1, 2, 3, 4, 5},
                a2 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
                a3 = array_big, m1 = {a = 1, b = 2}, m2 = map_big, b1 = false, b2 = true, n = nil}
            local encoded = cmsgpack.pack(some_map)
            local decoded = cmsgpack.unpack(encoded)
            assert(table.concat(some_map) == table.concat(decoded))
            for k, v in pairs(some_map) do
                if type(v) ~= 'table' then assert(decoded[k] == v, k) end
            end
            assert(#decoded.a3 == 100000 and decoded.m2['77777'] == 77777)
            local offset, decoded_one = cmsgpack.unpack_one(encoded, 0)
            assert(decoded_one.s4 == str_long)
            assert(offset == -1)
            local encoded_multiple = cmsgpack.pack(str_lt_32, str_lt_255, str_lt_65535, str_long)
            local offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, 0)
            assert(obj == str_lt_32 and offset == 31)
            offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
            assert(obj == str_lt_255 and offset == 283)
            offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
            assert(obj == str_lt_65535 and offset == 65816)
            offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
            assert(obj == str_long)
            assert(offset == -1)
            "#,
        );
    }

    #[test]
    fn garbage_input_raises_errors_not_panics() {
        let lua = lua();
        let unpack: mlua::Function = eval(&lua, "return cmsgpack.unpack");
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..3000 {
            let len = round % 40;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = unpack.call::<MultiValue>(lua.create_string(&bytes).unwrap());
        }
    }
}
