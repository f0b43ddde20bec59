//! `cjson`: the JSON library Redis gives Lua scripts.
//!
//! A rewrite of lua-cjson 2.1.0 as Redis configures it. Everything a script
//! can observe follows the C library: the text `encode` writes (numbers as
//! `%.14g`, `/` escaped, empty tables as `{}`), the values `decode` builds
//! (numbers as doubles, `null` as the `NULL` light userdata `cjson.null`), the
//! configuration functions and what they return, and the error messages.
//!
//! Errors are raised as `mlua::Error::RuntimeError` with the C library's
//! messages, prefixed like `luaL_error` with the calling script's position
//! (`user_script:3: `).
//!
//! Redis 8's `cjson.decode_array_with_array_mt(true)` is here too: decoded
//! arrays then carry the read-only metatable `cjson.array_mt`, and any table
//! whose metatable is marked `__is_cjson_array` encodes as an array, so `[]`
//! round-trips.
//!
//! Encoding and decoding keep their own stacks instead of recursing, so a
//! script that raises the depth limits cannot exhaust the Rust stack.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Error, Function, Lua, LuaString, MultiValue, Result, Table, Value};

use super::{arg_error, runtime_error, type_error, type_name};

/// Stack slots a C function may use (Lua 5.1's `LUAI_MAXCSTACK`). The C
/// decoder holds one or two per nesting level and fails with its nesting
/// error past this, whatever the configured depth limit says.
const LUA_MAX_C_STACK: usize = 8000;

/// Stack slots the encoder may use. The C encoder's limit is also
/// `LUAI_MAXCSTACK`, but here each slot is an mlua reference, Lua 5.1 gives
/// a state only about 8000 of those, shared with the host, and mlua panics
/// in `Table::metatable` when they run out: so stop at half. This only
/// matters once a script raises `encode_max_depth` past about 2000.
const ENCODE_STACK_SLOTS: usize = LUA_MAX_C_STACK / 2;

/// The marker a metatable carries when its tables must encode as arrays.
const ARRAY_MARKER: &str = "__is_cjson_array";

/// Names of the two states of an on/off option, in setting order.
const ON_OFF: &[&str] = &["off", "on"];

/// Registers the global `cjson` table.
pub fn register(lua: &Lua) -> Result<()> {
    let globals = lua.globals();
    // Kept from now on: a script may replace the global later.
    let next: Function = globals.raw_get("next")?;
    let shared = Rc::new(Shared {
        array_mt: array_metatable(lua)?,
        next,
    });
    globals.set("cjson", new_module(lua, shared)?)
}

/// What every module instance uses.
struct Shared {
    /// Shared so that any instance encodes another's decoded arrays as
    /// arrays.
    array_mt: Table,
    /// Lua's `next`, to walk an object across the encoder's own stack.
    next: Function,
}

/// One module instance's settings. `cjson.new()` makes an instance with its
/// own copy, so a script can tune one without touching the global table.
#[derive(Clone, Copy)]
struct Config {
    sparse_convert: bool,
    /// 0 allows any sparseness; otherwise the largest index may be at most
    /// this many times the number of items.
    sparse_ratio: i32,
    /// Arrays whose largest index is at most this are never too sparse.
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 refuses NaN and Inf, 1 writes them (`nan`, `inf`), 2 writes `null`.
    encode_invalid_numbers: u8,
    /// Accept what `strtod` reads but JSON does not: hex, `inf`, `nan`, `+1`,
    /// leading zeros.
    decode_invalid_numbers: bool,
    /// Significant digits written for a number, 1 to 14.
    number_precision: i32,
    /// Only reported back: buffer reuse has no observable effect here.
    keep_buffer: bool,
    decode_array_with_array_mt: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            number_precision: 14,
            keep_buffer: true,
            decode_array_with_array_mt: false,
        }
    }
}

/// Builds a module table with fresh settings.
fn new_module(lua: &Lua, shared: Rc<Shared>) -> Result<Table> {
    let cfg = Rc::new(Cell::new(Config::default()));
    let module = lua.create_table()?;

    let (encode_cfg, encode_shared) = (Rc::clone(&cfg), Rc::clone(&shared));
    let encode = lua.create_function(move |lua, args: MultiValue| {
        let [value] = one_argument(lua, args)?;
        let mut encoder = Encoder {
            lua,
            cfg: encode_cfg.get(),
            shared: &encode_shared,
            out: Vec::new(),
        };
        encoder.encode(value)?;
        lua.create_string(&encoder.out)
    })?;
    module.set("encode", encode)?;

    let (decode_cfg, decode_shared) = (Rc::clone(&cfg), Rc::clone(&shared));
    let decode = lua.create_function(move |lua, args: MultiValue| {
        let [value] = one_argument(lua, args)?;
        let text = check_string(lua, &value, 1)?;
        let bytes = text.as_bytes();
        // Only the first two bytes can tell: a JSON text may be a lone number.
        if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
            return Err(runtime_error(
                lua,
                "JSON parser does not support UTF-16 or UTF-32",
            ));
        }
        // The C parser walks a NUL-terminated buffer: a NUL ends the text.
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let cfg = decode_cfg.get();
        let parser = Parser {
            lua,
            data: &bytes[..end],
            pos: 0,
            cfg,
            array_mt: cfg
                .decode_array_with_array_mt
                .then_some(&decode_shared.array_mt),
        };
        parser.parse()
    })?;
    module.set("decode", decode)?;

    let options: [(&str, usize, ApplyOptions); 8] = [
        ("encode_sparse_array", 3, |lua, args, cfg| {
            let convert = bool_option(lua, args, 1, &mut cfg.sparse_convert)?;
            let ratio = integer_option(lua, args, 2, &mut cfg.sparse_ratio, 0, i32::MAX)?;
            let safe = integer_option(lua, args, 3, &mut cfg.sparse_safe, 0, i32::MAX)?;
            Ok(vec![convert, ratio, safe])
        }),
        ("encode_max_depth", 1, |lua, args, cfg| {
            let depth = integer_option(lua, args, 1, &mut cfg.encode_max_depth, 1, i32::MAX)?;
            Ok(vec![depth])
        }),
        ("decode_max_depth", 1, |lua, args, cfg| {
            let depth = integer_option(lua, args, 1, &mut cfg.decode_max_depth, 1, i32::MAX)?;
            Ok(vec![depth])
        }),
        ("encode_number_precision", 1, |lua, args, cfg| {
            let precision = integer_option(lua, args, 1, &mut cfg.number_precision, 1, 14)?;
            Ok(vec![precision])
        }),
        ("encode_keep_buffer", 1, |lua, args, cfg| {
            Ok(vec![bool_option(lua, args, 1, &mut cfg.keep_buffer)?])
        }),
        ("encode_invalid_numbers", 1, |lua, args, cfg| {
            let names = &["off", "on", "null"];
            let setting = enum_option(lua, args, 1, &mut cfg.encode_invalid_numbers, names)?;
            Ok(vec![setting])
        }),
        ("decode_invalid_numbers", 1, |lua, args, cfg| {
            let setting = bool_option(lua, args, 1, &mut cfg.decode_invalid_numbers)?;
            Ok(vec![setting])
        }),
        ("decode_array_with_array_mt", 1, |lua, args, cfg| {
            let setting = bool_option(lua, args, 1, &mut cfg.decode_array_with_array_mt)?;
            Ok(vec![setting])
        }),
    ];
    for (name, nargs, apply) in options {
        module.set(name, option_function(lua, &cfg, nargs, apply)?)?;
    }

    let new_shared = Rc::clone(&shared);
    let new = lua.create_function(move |lua, ()| new_module(lua, Rc::clone(&new_shared)))?;
    module.set("new", new)?;
    module.set("null", Value::NULL)?;
    module.set("array_mt", shared.array_mt.clone())?;
    module.set("_NAME", "cjson")?;
    module.set("_VERSION", "2.1.0")?;
    Ok(module)
}

/// The metatable `decode` puts on arrays when `decode_array_with_array_mt`
/// is on. Redis makes it read-only, so it is an empty proxy: the marker is
/// read through `__index`, and writes fail as Redis's read-only tables do
/// (`rawset` still gets through; plain Lua has no way to stop it).
fn array_metatable(lua: &Lua) -> Result<Table> {
    let fields = lua.create_table()?;
    fields.raw_set(ARRAY_MARKER, true)?;
    // A Lua function, so that the error is a string positioned at the
    // script line doing the assignment, like Redis's.
    let refuse = lua
        .load("error('Attempt to modify a readonly table', 2)")
        .set_name("=cjson")
        .into_function()?;
    let guard = lua.create_table()?;
    guard.raw_set("__index", fields)?;
    guard.raw_set("__newindex", refuse)?;
    guard.raw_set("__metatable", false)?;
    let array_mt = lua.create_table()?;
    array_mt.set_metatable(Some(guard))?;
    Ok(array_mt)
}

/// Reads and updates settings for one configuration function, returning
/// what it returns.
type ApplyOptions = fn(&Lua, &[Value], &mut Config) -> Result<Vec<Value>>;

/// Wraps a configuration function: at most `nargs` arguments, missing ones
/// read as nil (`json_arg_init`).
fn option_function(
    lua: &Lua,
    cfg: &Rc<Cell<Config>>,
    nargs: usize,
    apply: ApplyOptions,
) -> Result<Function> {
    let cfg = Rc::clone(cfg);
    lua.create_function(move |lua, args: MultiValue| {
        if args.len() > nargs {
            return Err(arg_error(lua, nargs + 1, "found too many arguments"));
        }
        let mut args = args.into_vec();
        args.resize(nargs, Value::Nil);
        let mut settings = cfg.get();
        let result = apply(lua, &args, &mut settings);
        // Options before a bad argument stay applied, as in the C.
        cfg.set(settings);
        result.map(MultiValue::from_vec)
    })
}

/// An on/off `enum_option`.
fn bool_option(lua: &Lua, args: &[Value], arg: usize, setting: &mut bool) -> Result<Value> {
    let mut state = u8::from(*setting);
    let value = enum_option(lua, args, arg, &mut state, ON_OFF)?;
    *setting = state == 1;
    Ok(value)
}

/// `json_enum_option`: a boolean or one of `names` sets the option (nil
/// leaves it); returns what the C pushes for the setting: a boolean for the
/// first two states, the name for the others.
fn enum_option(
    lua: &Lua,
    args: &[Value],
    arg: usize,
    setting: &mut u8,
    names: &[&str],
) -> Result<Value> {
    match nth(args, arg) {
        Value::Nil => {}
        Value::Boolean(on) => *setting = on.into(),
        other => {
            let name = check_string(lua, &other, arg)?;
            let found = names
                .iter()
                .position(|n| n.as_bytes() == &name.as_bytes()[..])
                .and_then(|index| u8::try_from(index).ok());
            let Some(index) = found else {
                let message = format!("invalid option '{}'", name.to_string_lossy());
                return Err(arg_error(lua, arg, &message));
            };
            *setting = index;
        }
    }
    Ok(match names.get(usize::from(*setting)) {
        Some(name) if *setting > 1 => Value::String(lua.create_string(name)?),
        _ => Value::Boolean(*setting == 1),
    })
}

/// `json_integer_option`: an integer in `min..=max` sets `setting` (nil
/// leaves it); returns the setting.
fn integer_option(
    lua: &Lua,
    args: &[Value],
    arg: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> Result<Value> {
    let value = nth(args, arg);
    if !value.is_nil() {
        // The C stores `luaL_checkinteger`'s result in an `int`: it wraps.
        let number = check_integer(lua, &value, arg)? as i32;
        if !(min..=max).contains(&number) {
            // The C blames argument 1 whichever argument it was.
            let message = format!("expected integer between {min} and {max}");
            return Err(arg_error(lua, 1, &message));
        }
        *setting = number;
    }
    Ok(Value::Integer((*setting).into()))
}

/// Exactly one argument, or the C library's argument error.
fn one_argument(lua: &Lua, args: MultiValue) -> Result<[Value; 1]> {
    <[Value; 1]>::try_from(args.into_vec()).map_err(|_| arg_error(lua, 1, "expected 1 argument"))
}

/// Argument `arg` (1-based), nil when absent.
fn nth(args: &[Value], arg: usize) -> Value {
    arg.checked_sub(1)
        .and_then(|index| args.get(index))
        .cloned()
        .unwrap_or(Value::Nil)
}

/// `luaL_checklstring`: a string, or a number converted as Lua does.
fn check_string(lua: &Lua, value: &Value, arg: usize) -> Result<LuaString> {
    match lua.coerce_string(value.clone())? {
        Some(text) => Ok(text),
        None => Err(type_error(lua, arg, "string", Some(value))),
    }
}

/// `luaL_checkinteger`: a number (or numeric string) truncated to an integer.
fn check_integer(lua: &Lua, value: &Value, arg: usize) -> Result<i64> {
    match lua.coerce_number(value.clone())? {
        Some(number) => Ok(number as i64),
        None => Err(type_error(lua, arg, "number", Some(value))),
    }
}

/// Whether a value counts as true in Lua.
fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Nil | Value::Boolean(false))
}

/// A table being written out.
enum OpenTable {
    /// Indexes `next..=len` are still to be written.
    Array { table: Table, next: i64, len: i64 },
    /// Pairs after `key` (nil: all of them) are still to be written.
    Object { table: Table, key: Value },
}

impl OpenTable {
    /// Stack slots the C encoder holds while inside this table: the element
    /// for an array, the key and value for an object.
    fn slots(&self) -> usize {
        match self {
            OpenTable::Array { .. } => 1,
            OpenTable::Object { .. } => 2,
        }
    }
}

/// Serialises one Lua value to JSON text.
struct Encoder<'a> {
    lua: &'a Lua,
    cfg: Config,
    shared: &'a Shared,
    out: Vec<u8>,
}

impl Encoder<'_> {
    fn encode(&mut self, value: Value) -> Result<()> {
        let mut open: Vec<OpenTable> = Vec::new();
        // The value being encoded is the first slot on the C stack.
        let mut slots = 1;
        let mut pending = Some(value);
        loop {
            match pending.take() {
                Some(Value::Table(table)) => {
                    let table = self.open_table(table, open.len() + 1, slots)?;
                    slots += table.slots();
                    open.push(table);
                }
                Some(scalar) => self.scalar(&scalar)?,
                None => {}
            }
            let Some(top) = open.last_mut() else {
                return Ok(());
            };
            pending = match top {
                OpenTable::Array { table, next, len } if *next <= *len => {
                    if *next > 1 {
                        self.out.push(b',');
                    }
                    *next += 1;
                    Some(table.raw_get(*next - 1)?)
                }
                OpenTable::Array { .. } => None,
                OpenTable::Object { table, key } => {
                    let (next_key, value): (Value, Value) =
                        self.shared.next.call((table.clone(), key.clone()))?;
                    if next_key.is_nil() {
                        None
                    } else {
                        if !key.is_nil() {
                            self.out.push(b',');
                        }
                        self.key(&next_key)?;
                        *key = next_key;
                        Some(value)
                    }
                }
            };
            if pending.is_none() {
                if let Some(done) = open.pop() {
                    slots -= done.slots();
                    self.out.push(match done {
                        OpenTable::Array { .. } => b']',
                        OpenTable::Object { .. } => b'}',
                    });
                }
            }
        }
    }

    /// Starts writing a table found at `depth` while the C encoder would
    /// hold `slots` stack slots.
    fn open_table(&mut self, table: Table, depth: usize, slots: usize) -> Result<OpenTable> {
        let max_depth = usize::try_from(self.cfg.encode_max_depth).unwrap_or(0);
        // The C checks for three free slots: the key, the value and an error
        // message.
        if depth > max_depth || slots + 3 > ENCODE_STACK_SLOTS {
            let message = format!("Cannot serialise, excessive nesting ({depth})");
            return Err(runtime_error(self.lua, message));
        }
        if self.is_marked_array(&table) {
            self.out.push(b'[');
            let len = i64::try_from(table.raw_len()).unwrap_or(i64::MAX);
            return Ok(OpenTable::Array {
                table,
                next: 1,
                len,
            });
        }
        match self.array_length(&table)? {
            Some(len) if len > 0 => {
                self.out.push(b'[');
                Ok(OpenTable::Array {
                    table,
                    next: 1,
                    len: len.into(),
                })
            }
            _ => {
                self.out.push(b'{');
                Ok(OpenTable::Object {
                    table,
                    key: Value::Nil,
                })
            }
        }
    }

    /// Whether the table's metatable says it is an array (`cjson.array_mt`
    /// or any metatable with a true `__is_cjson_array`). Raw reads, so no
    /// script code runs.
    fn is_marked_array(&self, table: &Table) -> bool {
        table.metatable().is_some_and(|mt| {
            mt.to_pointer() == self.shared.array_mt.to_pointer()
                || mt.raw_get::<Value>(ARRAY_MARKER).is_ok_and(|v| truthy(&v))
        })
    }

    /// `lua_array_length`: the largest index when every key is a positive
    /// integer (holes are written as null), `None` for an object. Fails on
    /// an excessively sparse array unless conversion to an object is on.
    fn array_length(&self, table: &Table) -> Result<Option<i32>> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        for pair in table.pairs::<Value, bool>() {
            let index = match pair?.0 {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(None),
            };
            if index < 1.0 || index.floor() != index {
                return Ok(None);
            }
            if index > f64::from(max) {
                max = c_int(index);
            }
            items = items.wrapping_add(1);
        }
        let cfg = &self.cfg;
        if cfg.sparse_ratio > 0
            && max > items.wrapping_mul(cfg.sparse_ratio)
            && max > cfg.sparse_safe
        {
            if !cfg.sparse_convert {
                let message = "Cannot serialise table: excessively sparse array";
                return Err(runtime_error(self.lua, message));
            }
            return Ok(None);
        }
        Ok(Some(max))
    }

    fn key(&mut self, key: &Value) -> Result<()> {
        match key {
            Value::String(text) => {
                self.string(&text.as_bytes());
                self.out.push(b':');
            }
            Value::Integer(_) | Value::Number(_) => {
                self.out.push(b'"');
                self.scalar(key)?;
                self.out.extend_from_slice(b"\":");
            }
            other => {
                let message = format!(
                    "Cannot serialise {}: table key must be a number or string",
                    type_name(Some(other))
                );
                return Err(runtime_error(self.lua, message));
            }
        }
        Ok(())
    }

    fn scalar(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(pointer) if pointer.0.is_null() => {
                self.out.extend_from_slice(b"null")
            }
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Integer(i) => self.number(*i as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::String(text) => self.string(&text.as_bytes()),
            other => {
                let message = format!(
                    "Cannot serialise {}: type not supported",
                    type_name(Some(other))
                );
                return Err(runtime_error(self.lua, message));
            }
        }
        Ok(())
    }

    fn number(&mut self, number: f64) -> Result<()> {
        match self.cfg.encode_invalid_numbers {
            0 if !number.is_finite() => {
                let message = "Cannot serialise number: must not be NaN or Inf";
                return Err(runtime_error(self.lua, message));
            }
            // Written by hand: printf may write a NaN as "-nan".
            1 if number.is_nan() => self.out.extend_from_slice(b"nan"),
            2 if !number.is_finite() => self.out.extend_from_slice(b"null"),
            _ => {
                let precision = usize::try_from(self.cfg.number_precision).unwrap_or(14);
                write_g(&mut self.out, number, precision);
            }
        }
        Ok(())
    }

    fn string(&mut self, bytes: &[u8]) {
        self.out.reserve(bytes.len() + 2);
        self.out.push(b'"');
        for &byte in bytes {
            match byte {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\x08' => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\x0c' => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(byte >> 4)]);
                    self.out.push(HEX[usize::from(byte & 0xf)]);
                }
                // Other bytes, UTF-8 or not, go out as they are.
                _ => self.out.push(byte),
            }
        }
        self.out.push(b'"');
    }
}

/// C's `(int)` conversion of a double as x86-64 does it: values out of
/// range become `INT_MIN`.
fn c_int(number: f64) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&number) {
        number as i32
    } else {
        i32::MIN
    }
}

/// Appends `number` as C's `printf("%.{precision}g")` writes it.
fn write_g(out: &mut Vec<u8>, number: f64, precision: usize) {
    if !number.is_finite() {
        if number.is_sign_negative() {
            out.push(b'-');
        }
        out.extend_from_slice(if number.is_nan() { b"nan" } else { b"inf" });
        return;
    }
    let precision = precision.clamp(1, 17);
    if number.is_sign_negative() {
        out.push(b'-');
    }
    let number = number.abs();
    // Integers with at most `precision` digits print as they are: the
    // common case, and much cheaper than rounding.
    if number.fract() == 0.0 && number < 10f64.powi(precision as i32) {
        out.extend_from_slice((number as u64).to_string().as_bytes());
        return;
    }
    // Round to `precision` significant digits (exactly, ties to even, as
    // glibc does); %g picks its style from the exponent after rounding.
    let scientific = format!("{:.*e}", precision - 1, number);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits = mantissa.replace('.', "");
    let point = usize::try_from(exponent + 1).unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        write_digits(out, &digits, 1);
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        out.extend_from_slice(format!("{:02}", exponent.unsigned_abs()).as_bytes());
    } else if exponent >= 0 {
        write_digits(out, &digits, point);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-exponent - 1) as usize, b'0');
        out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
    }
}

/// Appends `digits` with a decimal point after the first `point` of them,
/// dropping trailing zeros after the point, and the point if bare.
fn write_digits(out: &mut Vec<u8>, digits: &str, point: usize) {
    let (whole, fraction) = digits.split_at_checked(point).unwrap_or((digits, ""));
    out.extend_from_slice(whole.as_bytes());
    let fraction = fraction.trim_end_matches('0');
    if !fraction.is_empty() {
        out.push(b'.');
        out.extend_from_slice(fraction.as_bytes());
    }
}

/// A JSON token and where it starts.
struct Token {
    kind: TokenKind,
    /// Byte offset of the token, or of the error for `Error`.
    index: usize,
}

enum TokenKind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    String(Vec<u8>),
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl TokenKind {
    /// What a parse error says it found: the C's token type names.
    fn describe(&self) -> &'static str {
        match self {
            TokenKind::ObjBegin => "T_OBJ_BEGIN",
            TokenKind::ObjEnd => "T_OBJ_END",
            TokenKind::ArrBegin => "T_ARR_BEGIN",
            TokenKind::ArrEnd => "T_ARR_END",
            TokenKind::String(_) => "T_STRING",
            TokenKind::Number(_) => "T_NUMBER",
            TokenKind::Boolean(_) => "T_BOOLEAN",
            TokenKind::Null => "T_NULL",
            TokenKind::Colon => "T_COLON",
            TokenKind::Comma => "T_COMMA",
            TokenKind::End => "T_END",
            TokenKind::Error(message) => message,
        }
    }
}

/// A container being filled while decoding.
enum OpenContainer {
    Array {
        table: Table,
        next: i64,
    },
    /// `key` is the key whose value is being parsed, kept as bytes so that
    /// nesting costs one mlua reference per level.
    Object {
        table: Table,
        key: Vec<u8>,
    },
}

impl OpenContainer {
    /// Stack slots the C parser holds while inside: the table, and for an
    /// object the pending key.
    fn slots(&self) -> usize {
        match self {
            OpenContainer::Array { .. } => 1,
            OpenContainer::Object { .. } => 2,
        }
    }

    fn into_table(self) -> Table {
        match self {
            OpenContainer::Array { table, .. } | OpenContainer::Object { table, .. } => table,
        }
    }
}

/// Decodes one JSON text, token by token as the C parser does, so that
/// errors name the same token and position.
struct Parser<'a> {
    lua: &'a Lua,
    /// The text up to its first NUL.
    data: &'a [u8],
    pos: usize,
    cfg: Config,
    /// Set on decoded arrays, when `decode_array_with_array_mt` is on.
    array_mt: Option<&'a Table>,
}

impl Parser<'_> {
    fn parse(mut self) -> Result<Value> {
        let mut open: Vec<OpenContainer> = Vec::new();
        // The text being decoded is the first slot on the C stack.
        let mut slots = 1;
        let mut token = self.next_token();
        loop {
            // `token` starts a value.
            let mut value = match token.kind {
                TokenKind::String(text) => Value::String(self.lua.create_string(text)?),
                TokenKind::Number(number) => Value::Number(number),
                TokenKind::Boolean(boolean) => Value::Boolean(boolean),
                TokenKind::Null => Value::NULL,
                TokenKind::ObjBegin => {
                    self.descend(open.len() + 1, slots + 3)?;
                    let table = self.lua.create_table()?;
                    token = self.next_token();
                    if let TokenKind::ObjEnd = token.kind {
                        Value::Table(table)
                    } else {
                        let key = self.object_key(token)?;
                        let object = OpenContainer::Object { table, key };
                        slots += object.slots();
                        open.push(object);
                        token = self.next_token();
                        continue;
                    }
                }
                TokenKind::ArrBegin => {
                    self.descend(open.len() + 1, slots + 2)?;
                    let table = self.lua.create_table()?;
                    if let Some(mt) = self.array_mt {
                        table.set_metatable(Some(mt.clone()))?;
                    }
                    token = self.next_token();
                    if let TokenKind::ArrEnd = token.kind {
                        Value::Table(table)
                    } else {
                        let array = OpenContainer::Array { table, next: 1 };
                        slots += array.slots();
                        open.push(array);
                        continue;
                    }
                }
                _ => return Err(parse_error(self.lua, "value", &token)),
            };
            // Store the value and close every container it completes, up to
            // the token starting the next value.
            token = loop {
                let after = self.next_token();
                let Some(mut container) = open.pop() else {
                    if matches!(after.kind, TokenKind::End) {
                        return Ok(value);
                    }
                    return Err(parse_error(self.lua, "the end", &after));
                };
                let closes = match &mut container {
                    OpenContainer::Array { table, next } => {
                        table.raw_set(*next, value)?;
                        *next += 1;
                        match after.kind {
                            TokenKind::ArrEnd => true,
                            TokenKind::Comma => false,
                            _ => return Err(parse_error(self.lua, "comma or array end", &after)),
                        }
                    }
                    OpenContainer::Object { table, key } => {
                        table.raw_set(self.lua.create_string(&key)?, value)?;
                        match after.kind {
                            TokenKind::ObjEnd => true,
                            TokenKind::Comma => {
                                let next_key = self.next_token();
                                *key = self.object_key(next_key)?;
                                false
                            }
                            _ => return Err(parse_error(self.lua, "comma or object end", &after)),
                        }
                    }
                };
                if !closes {
                    open.push(container);
                    break self.next_token();
                }
                // The completed container is the value to store next.
                slots -= container.slots();
                value = Value::Table(container.into_table());
            };
        }
    }

    /// Enters a container at `depth` needing `slots` stack slots in all.
    fn descend(&self, depth: usize, slots: usize) -> Result<()> {
        let max_depth = usize::try_from(self.cfg.decode_max_depth).unwrap_or(0);
        if depth <= max_depth && slots <= LUA_MAX_C_STACK {
            return Ok(());
        }
        let message = format!(
            "Found too many nested data structures ({depth}) at character {}",
            self.pos
        );
        Err(runtime_error(self.lua, message))
    }

    /// A key and its colon; `token` should be the key.
    fn object_key(&mut self, token: Token) -> Result<Vec<u8>> {
        let TokenKind::String(key) = token.kind else {
            return Err(parse_error(self.lua, "object key string", &token));
        };
        let colon = self.next_token();
        if !matches!(colon.kind, TokenKind::Colon) {
            return Err(parse_error(self.lua, "colon", &colon));
        }
        Ok(key)
    }

    /// The byte `offset` bytes ahead; 0 (the C's terminator) past the end.
    fn peek(&self, offset: usize) -> u8 {
        self.rest(offset).first().copied().unwrap_or(0)
    }

    /// The text from `offset` bytes ahead on.
    fn rest(&self, offset: usize) -> &[u8] {
        self.data.get(self.pos + offset..).unwrap_or_default()
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.peek(0), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let kind = match self.peek(0) {
            b'{' => TokenKind::ObjBegin,
            b'}' => TokenKind::ObjEnd,
            b'[' => TokenKind::ArrBegin,
            b']' => TokenKind::ArrEnd,
            b',' => TokenKind::Comma,
            b':' => TokenKind::Colon,
            0 => TokenKind::End,
            b'"' => return self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.cfg.decode_invalid_numbers && self.is_invalid_number() {
                    return self.error("invalid number");
                }
                return self.number_token();
            }
            b't' | b'f' | b'n' | b'i' | b'I' | b'N' | b'+' => return self.word_token(),
            _ => return self.error("invalid token"),
        };
        // A one-byte token; the end stays where it is.
        if !matches!(kind, TokenKind::End) {
            self.pos += 1;
        }
        Token { kind, index }
    }

    /// `true`, `false`, `null`, or (when allowed) a number `strtod` reads,
    /// like `inf`, `NaN` or `+1`.
    fn word_token(&mut self) -> Token {
        let index = self.pos;
        let rest = self.rest(0);
        for (word, kind) in [
            (&b"true"[..], TokenKind::Boolean(true)),
            (b"false", TokenKind::Boolean(false)),
            (b"null", TokenKind::Null),
        ] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Token { kind, index };
            }
        }
        if self.cfg.decode_invalid_numbers && self.is_invalid_number() {
            return self.number_token();
        }
        self.error("invalid token")
    }

    /// `json_is_invalid_number`: whether the number here is one `strtod`
    /// accepts but JSON does not (`+1`, hex, leading zeros, `inf`, `nan`).
    fn is_invalid_number(&self) -> bool {
        let mut offset = 0;
        match self.peek(0) {
            b'+' => return true,
            b'-' => offset = 1,
            _ => {}
        }
        match self.peek(offset) {
            b'0' => {
                let second = self.peek(offset + 1);
                second | 0x20 == b'x' || second.is_ascii_digit()
            }
            first if first <= b'9' => false,
            _ => {
                let rest = self.rest(offset);
                starts_with_ignore_case(rest, b"inf") || starts_with_ignore_case(rest, b"nan")
            }
        }
    }

    fn number_token(&mut self) -> Token {
        let index = self.pos;
        match strtod(self.rest(0)) {
            Some((number, len)) => {
                self.pos += len;
                Token {
                    kind: TokenKind::Number(number),
                    index,
                }
            }
            None => self.error("invalid number"),
        }
    }

    fn string_token(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let mut text = Vec::new();
        loop {
            match self.peek(0) {
                b'"' => break,
                0 => return self.error("unexpected end of string"),
                b'\\' => {
                    let unescaped = match self.peek(1) {
                        b'u' => {
                            if !self.unicode_escape(&mut text) {
                                return self.error("invalid unicode escape code");
                            }
                            continue;
                        }
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => b'\x08',
                        b'f' => b'\x0c',
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        _ => return self.error("invalid escape code"),
                    };
                    text.push(unescaped);
                    self.pos += 2;
                }
                byte => {
                    text.push(byte);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        Token {
            kind: TokenKind::String(text),
            index,
        }
    }

    /// Decodes the `\uXXXX` here (with its low surrogate for a high one)
    /// into UTF-8 and moves past it; false if it is malformed.
    fn unicode_escape(&mut self, text: &mut Vec<u8>) -> bool {
        let Some(mut code) = self.hex4(2) else {
            return false;
        };
        let mut len = 6;
        if code & 0xf800 == 0xd800 {
            // A low surrogate first, or a high one without its low one.
            if code & 0x400 != 0 || self.peek(6) != b'\\' || self.peek(7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(8).filter(|low| low & 0xfc00 == 0xdc00) else {
                return false;
            };
            code = (((code & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000;
            len = 12;
        }
        let Some(decoded) = char::from_u32(code) else {
            return false;
        };
        text.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes());
        self.pos += len;
        true
    }

    /// The four hex digits at `offset` from here.
    fn hex4(&self, offset: usize) -> Option<u32> {
        (0..4).try_fold(0, |code, i| {
            let digit = char::from(self.peek(offset + i)).to_digit(16)?;
            Some(code << 4 | digit)
        })
    }

    /// An error token at the current position.
    fn error(&self, message: &'static str) -> Token {
        Token {
            kind: TokenKind::Error(message),
            index: self.pos,
        }
    }
}

/// `json_throw_parse_error`'s message (positions count from 1).
fn parse_error(lua: &Lua, expected: &str, token: &Token) -> Error {
    runtime_error(
        lua,
        format!(
            "Expected {expected} but found {} at character {}",
            token.kind.describe(),
            token.index + 1
        ),
    )
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// C's `strtod` in the C locale: the number at the start of `text` and the
/// bytes it spans, or `None` when there is none. Reads decimal and hex
/// floats, `inf`, `infinity` and `nan(chars)`, with an optional sign.
fn strtod(text: &[u8]) -> Option<(f64, usize)> {
    let sign_len = usize::from(matches!(text.first(), Some(b'+' | b'-')));
    let negative = text.first() == Some(&b'-');
    let body = &text[sign_len..];
    let (magnitude, len) = if starts_with_ignore_case(body, b"inf") {
        let len = if starts_with_ignore_case(body, b"infinity") {
            8
        } else {
            3
        };
        (f64::INFINITY, len)
    } else if starts_with_ignore_case(body, b"nan") {
        (f64::NAN, 3 + nan_payload_len(&body[3..]))
    } else if starts_with_ignore_case(body, b"0x") {
        hex_float(&body[2..]).map_or((0.0, 1), |(number, len)| (number, len + 2))
    } else {
        let len = decimal_len(body)?;
        let number = std::str::from_utf8(&body[..len]).ok()?.parse().ok()?;
        (number, len)
    };
    let number = if negative { -magnitude } else { magnitude };
    Some((number, sign_len + len))
}

/// Length of the `(chars)` after `nan` that `strtod` consumes, if closed.
fn nan_payload_len(text: &[u8]) -> usize {
    if text.first() != Some(&b'(') {
        return 0;
    }
    let chars = text[1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if text.get(1 + chars) == Some(&b')') {
        chars + 2
    } else {
        0
    }
}

/// Length of the decimal number at the start of `text`: digits with an
/// optional point (at least one digit) and an optional exponent.
fn decimal_len(text: &[u8]) -> Option<usize> {
    let digits = |from: usize| {
        text[from.min(text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let whole = digits(0);
    let mut len = whole;
    let mut fraction = 0;
    if text.get(len) == Some(&b'.') {
        fraction = digits(len + 1);
        len += 1 + fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(text.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(text.get(len + 1), Some(b'+' | b'-')));
        let exponent = digits(len + 1 + sign);
        if exponent > 0 {
            len += 1 + sign + exponent;
        }
    }
    Some(len)
}

/// A hex float after its `0x`: hex digits with an optional point (at least
/// one digit) and an optional binary exponent `p[+-]digits`, correctly
/// rounded. `None` when there are no digits.
fn hex_float(text: &[u8]) -> Option<(f64, usize)> {
    let mut mantissa: u64 = 0;
    // Nonzero digits that did not fit in the mantissa.
    let mut sticky = false;
    let mut exponent: i64 = 0;
    let mut digits = 0;
    let mut seen_point = false;
    let mut len = 0;
    for &byte in text {
        let Some(digit) = char::from(byte).to_digit(16) else {
            if byte == b'.' && !seen_point {
                seen_point = true;
                len += 1;
                continue;
            }
            break;
        };
        digits += 1;
        len += 1;
        if mantissa >> 60 == 0 {
            mantissa = mantissa << 4 | u64::from(digit);
            if seen_point {
                exponent -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !seen_point {
                exponent += 4;
            }
        }
    }
    if digits == 0 {
        return None;
    }
    if matches!(text.get(len), Some(b'p' | b'P')) {
        let sign = usize::from(matches!(text.get(len + 1), Some(b'+' | b'-')));
        let power: Vec<u8> = text[(len + 1 + sign).min(text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if !power.is_empty() {
            // Saturate: past a few thousand the result is 0 or infinity.
            let value = power
                .iter()
                .fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(1 << 20));
            exponent += if text.get(len + 1) == Some(&b'-') {
                -value
            } else {
                value
            };
            len += 1 + sign + power.len();
        }
    }
    Some((scale_binary(mantissa, sticky, exponent), len))
}

/// `mantissa * 2^exponent` (plus a nonzero fraction below the mantissa when
/// `sticky`), rounded to the nearest double, ties to even.
fn scale_binary(mantissa: u64, sticky: bool, exponent: i64) -> f64 {
    if mantissa == 0 {
        return 0.0;
    }
    let shift_in = mantissa.leading_zeros();
    let mantissa = u128::from(mantissa << shift_in);
    let exponent = exponent - i64::from(shift_in);
    // The value is in [2^top, 2^(top+1)).
    let top = exponent + 63;
    if top > 1023 {
        return f64::INFINITY;
    }
    // Weight of the last bit kept: 53 bits, fewer once subnormal.
    let last = (top - 52).max(-1074);
    let dropped = last - exponent;
    if dropped > 65 {
        return 0.0;
    }
    let dropped = dropped as u32;
    let kept = mantissa >> dropped;
    let rest = mantissa & ((1 << dropped) - 1);
    let half = 1 << (dropped - 1);
    let round_up = rest > half || (rest == half && (sticky || kept & 1 == 1));
    let kept = kept + u128::from(round_up);
    let weight = if last >= -1022 {
        f64::from_bits(((last + 1023) as u64) << 52)
    } else {
        f64::from_bits(1 << (last + 1074))
    };
    // Exact: `kept` has at most 54 bits and the product is representable
    // (or overflows to infinity, which is the right rounding).
    kept as f64 * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh state with `cjson` registered.
    fn lua() -> Lua {
        let lua = Lua::new();
        register(&lua).expect("register cjson");
        lua
    }

    /// Runs `code` as Redis names scripts (so errors start `user_script:1: `).
    fn run<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> mlua::Result<T> {
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
            // mlua appends a traceback to errors raised by Lua code.
            Error::RuntimeError(m) => m
                .split("\nstack traceback:")
                .next()
                .unwrap_or(m)
                .to_string(),
            other => other.to_string(),
        }
    }

    /// `cjson.encode(lua_expr)` as bytes.
    fn encode(lua: &Lua, expr: &str) -> Vec<u8> {
        let text: LuaString = eval(lua, &format!("return cjson.encode({expr})"));
        text.as_bytes().to_vec()
    }

    fn assert_encodes(lua: &Lua, cases: &[(&str, &str)]) {
        for (expr, json) in cases {
            let out = encode(lua, expr);
            assert_eq!(String::from_utf8_lossy(&out), *json, "encode({expr})");
        }
    }

    fn assert_errors(lua: &Lua, cases: &[(&str, &str)]) {
        for (code, expected) in cases {
            assert_eq!(error(lua, code), *expected, "{code}");
        }
    }

    #[test]
    fn module_fields() {
        let lua = lua();
        let cjson: Table = lua.globals().get("cjson").unwrap();
        assert_eq!(cjson.get::<String>("_NAME").unwrap(), "cjson");
        assert_eq!(cjson.get::<String>("_VERSION").unwrap(), "2.1.0");
        assert!(cjson.get::<Value>("null").unwrap().is_null());
        for name in [
            "encode",
            "decode",
            "new",
            "encode_sparse_array",
            "encode_max_depth",
            "decode_max_depth",
            "encode_number_precision",
            "encode_keep_buffer",
            "encode_invalid_numbers",
            "decode_invalid_numbers",
            "decode_array_with_array_mt",
        ] {
            assert!(cjson.get::<Function>(name).is_ok(), "{name}");
        }
        assert!(eval::<bool>(&lua, "return type(cjson.array_mt) == 'table'"));
        assert!(eval::<bool>(&lua, "return type(cjson.null) == 'userdata'"));
    }

    #[test]
    fn encodes_scalars() {
        let lua = lua();
        assert_encodes(
            &lua,
            &[
                ("nil", "null"),
                ("true", "true"),
                ("false", "false"),
                ("cjson.null", "null"),
                ("'abc'", r#""abc""#),
                ("''", r#""""#),
            ],
        );
    }

    #[test]
    fn encodes_numbers_as_percent_14g() {
        let lua = lua();
        assert_encodes(
            &lua,
            &[
                ("0", "0"),
                ("-0", "-0"),
                ("1", "1"),
                ("-1", "-1"),
                ("100", "100"),
                ("0.1", "0.1"),
                ("0.1 + 0.2", "0.3"),
                ("1/3", "0.33333333333333"),
                ("-1/3", "-0.33333333333333"),
                ("2.5", "2.5"),
                ("123.456", "123.456"),
                ("-123456789.123", "-123456789.123"),
                ("3.14159265358979", "3.1415926535898"),
                ("12345678901234.5", "12345678901234"),
                ("99999999999999", "99999999999999"),
                ("999999999999999", "1e+15"),
                ("123456789012345", "1.2345678901234e+14"),
                ("1e14", "1e+14"),
                ("1e15", "1e+15"),
                ("2^53", "9.007199254741e+15"),
                ("2^63", "9.2233720368548e+18"),
                ("-2^63", "-9.2233720368548e+18"),
                ("1e21", "1e+21"),
                ("1e300", "1e+300"),
                ("0.0001", "0.0001"),
                ("0.0001234", "0.0001234"),
                ("1e-5", "1e-05"),
                ("1.5e-7", "1.5e-07"),
                ("0.000012345678901234567", "1.2345678901235e-05"),
                ("1e-300", "1e-300"),
                ("5e-324", "4.9406564584125e-324"),
                ("-1e-320", "-9.9998886718268e-321"),
            ],
        );
    }

    #[test]
    fn number_precision_is_configurable() {
        let lua = lua();
        eval::<()>(&lua, "cjson.encode_number_precision(3)");
        assert_encodes(
            &lua,
            &[(
                "{1/3, 12345, 0.0001234, 100, 1e-5, 123.5, 124.5}",
                "[0.333,1.23e+04,0.000123,100,1e-05,124,124]",
            )],
        );
        eval::<()>(&lua, "cjson.encode_number_precision(1)");
        assert_encodes(
            &lua,
            &[(
                "{1/3, 12345, 0.95, 9.5, 0.00001}",
                "[0.3,1e+04,0.9,1e+01,1e-05]",
            )],
        );
    }

    #[test]
    fn escapes_strings_as_lua_cjson() {
        let lua = lua();
        assert_encodes(
            &lua,
            &[
                ("'a/b'", r#""a\/b""#),
                (r#"'quote" back\\'"#, r#""quote\" back\\""#),
                (r"'\8\9\10\12\13'", r#""\b\t\n\f\r""#),
                (
                    r"'\0\1\11\14\31\127'",
                    r#""\u0000\u0001\u000b\u000e\u001f\u007f""#,
                ),
                ("' ~'", r#"" ~""#),
            ],
        );
        // Bytes from 0x80 up, UTF-8 or not, are written as they are.
        assert_eq!(encode(&lua, r"'\195\169\128\255'"), b"\"\xc3\xa9\x80\xff\"");
    }

    #[test]
    fn encodes_tables() {
        let lua = lua();
        assert_encodes(
            &lua,
            &[
                ("{}", "{}"),
                ("{1, 2, 3}", "[1,2,3]"),
                ("{'a', {'b', {'c'}}}", r#"["a",["b",["c"]]]"#),
                ("{a = 1}", r#"{"a":1}"#),
                ("{1, nil, 3}", "[1,null,3]"),
                ("{nil, nil, 3}", "[null,null,3]"),
                ("{[1] = 1, [2] = 2, [4] = 4}", "[1,2,null,4]"),
                (
                    "{[10] = 1}",
                    "[null,null,null,null,null,null,null,null,null,1]",
                ),
                ("{1, 2, [3.0] = 3}", "[1,2,3]"),
                ("{cjson.null, cjson.null}", "[null,null]"),
                // Any key that is not a positive integer makes an object,
                // number keys written as strings.
                ("{[0] = 1}", r#"{"0":1}"#),
                ("{[-1] = 1}", r#"{"-1":1}"#),
                ("{[1.5] = 1}", r#"{"1.5":1}"#),
                ("{[2^31] = 1}", r#"{"2147483648":1}"#),
                ("{[2^40] = 1}", r#"{"1099511627776":1}"#),
                ("{[1] = 1, x = 2}", r#"{"1":1,"x":2}"#),
                (
                    "{a = {1, 2, {b = cjson.null}}, ['x/y'] = '\\n'}",
                    r#"{"a":[1,2,{"b":null}],"x\/y":"\n"}"#,
                ),
                // Metatables are ignored.
                (
                    "setmetatable({}, {__index = function() return 1 end})",
                    "{}",
                ),
            ],
        );
        let object: String = eval(&lua, "return cjson.encode({[1] = 'a', ['1'] = 'b'})");
        assert!(object == r#"{"1":"a","1":"b"}"# || object == r#"{"1":"b","1":"a"}"#);
    }

    #[test]
    fn refuses_what_json_cannot_hold() {
        let lua = lua();
        assert_errors(
            &lua,
            &[
                (
                    "cjson.encode(function() end)",
                    "user_script:1: Cannot serialise function: type not supported",
                ),
                (
                    "cjson.encode({f = function() end})",
                    "user_script:1: Cannot serialise function: type not supported",
                ),
                (
                    "cjson.encode(coroutine.create(function() end))",
                    "user_script:1: Cannot serialise thread: type not supported",
                ),
                (
                    "cjson.encode({[true] = 1})",
                    "user_script:1: Cannot serialise boolean: table key must be a number or string",
                ),
                (
                    "cjson.encode({[{}] = 1})",
                    "user_script:1: Cannot serialise table: table key must be a number or string",
                ),
                (
                    "cjson.encode({[cjson.null] = 1})",
                    "user_script:1: Cannot serialise userdata: table key must be a number or string",
                ),
                (
                    "cjson.encode(0/0)",
                    "user_script:1: Cannot serialise number: must not be NaN or Inf",
                ),
                (
                    "cjson.encode({x = 1/0})",
                    "user_script:1: Cannot serialise number: must not be NaN or Inf",
                ),
                (
                    "cjson.encode({[-1/0] = 1})",
                    "user_script:1: Cannot serialise number: must not be NaN or Inf",
                ),
            ],
        );
        let userdata = lua.create_any_userdata(()).unwrap();
        lua.globals().set("ud", userdata).unwrap();
        assert_errors(
            &lua,
            &[(
                "cjson.encode({ud})",
                "user_script:1: Cannot serialise userdata: type not supported",
            )],
        );
    }

    #[test]
    fn invalid_numbers_can_be_written() {
        let lua = lua();
        assert!(eval::<bool>(
            &lua,
            "return cjson.encode_invalid_numbers(true)"
        ));
        assert_encodes(
            &lua,
            &[
                ("{0/0, 1/0, -1/0, 1}", "[nan,inf,-inf,1]"),
                ("{[1/0] = 1}", r#"{"inf":1}"#),
            ],
        );
        let setting: String = eval(&lua, "return cjson.encode_invalid_numbers('null')");
        assert_eq!(setting, "null");
        assert_encodes(
            &lua,
            &[
                ("{0/0, 1/0, -1/0, 1}", "[null,null,null,1]"),
                ("{[1/0] = 1}", r#"{"null":1}"#),
            ],
        );
        assert!(!eval::<bool>(
            &lua,
            "return cjson.encode_invalid_numbers('off')"
        ));
        assert_errors(
            &lua,
            &[(
                "cjson.encode(1/0)",
                "user_script:1: Cannot serialise number: must not be NaN or Inf",
            )],
        );
    }

    #[test]
    fn sparse_arrays() {
        let lua = lua();
        let sparse = "user_script:1: Cannot serialise table: excessively sparse array";
        assert_errors(
            &lua,
            &[
                ("cjson.encode({[1] = 1, [11] = 11})", sparse),
                ("cjson.encode({[11] = 1})", sparse),
                ("cjson.encode({[2147483647] = 1})", sparse),
                ("cjson.encode({1, 2, 3, 4, 5, 6, [20] = 20})", sparse),
            ],
        );
        // Sparse, but at most twice as many slots as items.
        let half: String = eval(
            &lua,
            "local t = {} for i = 1, 100 do t[i * 2] = i end return cjson.encode(t)",
        );
        assert!(half.starts_with("[null,1,null,2,") && half.ends_with(",null,100]"));
        // Convert: an object instead of an error.
        let values: (bool, i32, i32) = eval(&lua, "return cjson.encode_sparse_array(true)");
        assert_eq!(values, (true, 2, 10));
        assert_encodes(&lua, &[("{[1] = 1, [20] = 2}", r#"{"1":1,"20":2}"#)]);
        // Ratio 0 allows any sparseness.
        eval::<()>(&lua, "cjson.encode_sparse_array(false, 0)");
        assert_eq!(
            eval::<usize>(&lua, "return #cjson.encode({[1] = 1, [50] = 2})"),
            245
        );
        // Safe 0 and ratio 1: no holes at all.
        eval::<()>(&lua, "cjson.encode_sparse_array(false, 1, 0)");
        assert_encodes(&lua, &[("{[1] = 1, [2] = 2}", "[1,2]")]);
        assert_errors(&lua, &[("cjson.encode({[1] = 1, [3] = 2})", sparse)]);
    }

    #[test]
    fn encode_depth_is_limited() {
        let lua = lua();
        let nested = |depth: usize, key: &str| {
            format!("local t = {{}} local c = t for i = 1, {depth} do c{key} = {{}} c = c{key} end")
        };
        let ok: usize = eval(
            &lua,
            &format!("{} return #cjson.encode(t)", nested(999, "[1]")),
        );
        assert_eq!(ok, 2000);
        let too_deep = "user_script:1: Cannot serialise, excessive nesting (1001)";
        assert_errors(
            &lua,
            &[
                (
                    &format!("{} cjson.encode(t)", nested(1000, "[1]")),
                    too_deep,
                ),
                (&format!("{} cjson.encode(t)", nested(1000, ".a")), too_deep),
                // Tables that contain themselves stop at the limit too.
                ("local t = {} t[1] = t cjson.encode(t)", too_deep),
                ("local t = {} t.a = t cjson.encode(t)", too_deep),
            ],
        );
        eval::<()>(&lua, "cjson.encode_max_depth(2)");
        assert_encodes(&lua, &[("{{1}}", "[[1]]")]);
        assert_errors(
            &lua,
            &[(
                "cjson.encode({a = {b = {}}})",
                "user_script:1: Cannot serialise, excessive nesting (3)",
            )],
        );
        // Raised limits stop at the stack budget instead of the Rust stack.
        eval::<()>(&lua, "cjson.encode_max_depth(100000)");
        let deep: usize = eval(
            &lua,
            &format!("{} return #cjson.encode(t)", nested(3000, "[1]")),
        );
        assert_eq!(deep, 6002);
        assert_errors(
            &lua,
            &[
                (
                    &format!("{} cjson.encode(t)", nested(5000, "[1]")),
                    "user_script:1: Cannot serialise, excessive nesting (3998)",
                ),
                (
                    &format!("{} cjson.encode(t)", nested(5000, ".a")),
                    "user_script:1: Cannot serialise, excessive nesting (2000)",
                ),
            ],
        );
    }

    #[test]
    fn decodes_values() {
        let lua = lua();
        let check = |json: &str, expected: &str| {
            let code = format!("return cjson.encode(cjson.decode({json:?}))");
            assert_eq!(eval::<String>(&lua, &code), expected, "{json}");
        };
        check("[1,2,3]", "[1,2,3]");
        check("  [ 1 , 2 ]\n", "[1,2]");
        check("[1,\t\r\n2]", "[1,2]");
        check(
            r#"{"a":1,"b":[true,false,null]}"#,
            r#"{"a":1,"b":[true,false,null]}"#,
        );
        check(r#"{"a":1,"a":2}"#, r#"{"a":2}"#);
        check(r#"{"":1}"#, r#"{"":1}"#);
        check("[[[[[]]]]]", "[[[[{}]]]]");
        check("[1.]", "[1]");
        check("[-.5]", "[-0.5]");
        assert!(eval::<bool>(
            &lua,
            "return cjson.decode('null') == cjson.null"
        ));
        assert!(eval::<bool>(&lua, "return cjson.decode('true')"));
        assert!(!eval::<bool>(&lua, "return cjson.decode(' false ')"));
        assert_eq!(
            eval::<String>(&lua, r#"return cjson.decode('"abc"')"#),
            "abc"
        );
        // Keys stay strings.
        let two: f64 = eval(&lua, r#"return cjson.decode('{"1":1,"2":2}')['2']"#);
        assert_eq!(two, 2.0);
        // An empty array decodes to an empty table, so encodes as an object.
        check("[]", "{}");
        check(r#"{"a":[]}"#, r#"{"a":{}}"#);
    }

    #[test]
    fn decodes_numbers_as_strtod() {
        let lua = lua();
        let cases: &[(&str, f64)] = &[
            ("123", 123.0),
            ("-0", -0.0),
            ("1E2", 100.0),
            ("1e+2", 100.0),
            ("0.5e-1", 0.05),
            ("0.3e-3", 0.0003),
            ("12345678901234567890", 12345678901234567890.0),
            ("1.7976931348623157e308", f64::MAX),
            ("2.4703282292062328e-324", 5e-324),
            ("1e-400", 0.0),
            ("1e400", f64::INFINITY),
            ("-1e400", f64::NEG_INFINITY),
            // What strtod reads beyond JSON, accepted by default.
            ("0x10", 16.0),
            ("-0x1A", -26.0),
            ("0x1p4", 16.0),
            ("0x1.8p1", 3.0),
            ("0x1p-1074", 5e-324),
            ("0x1.fffffffffffff8p1023", f64::INFINITY),
            ("00012", 12.0),
            ("-007", -7.0),
            ("+5", 5.0),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("INF", f64::INFINITY),
        ];
        for (json, expected) in cases {
            let n: f64 = eval(&lua, &format!("return cjson.decode('{json}')"));
            assert_eq!(n.to_bits(), expected.to_bits(), "{json}");
        }
        for json in ["nan", "-nan", "NaN", "nan(123)"] {
            let n: f64 = eval(&lua, &format!("return cjson.decode('{json}')"));
            assert!(n.is_nan(), "{json}");
        }
        let numbers: String = eval(
            &lua,
            "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')",
        );
        assert_eq!(numbers, "0 -5000 -1 0.0003 1023.2 0");
    }

    #[test]
    fn strict_numbers_when_invalid_numbers_are_off() {
        let lua = lua();
        assert!(!eval::<bool>(
            &lua,
            "return cjson.decode_invalid_numbers(false)"
        ));
        assert_errors(
            &lua,
            &[
                (
                    "cjson.decode('0x10')",
                    "user_script:1: Expected value but found invalid number at character 1",
                ),
                (
                    "cjson.decode('[1, 012]')",
                    "user_script:1: Expected value but found invalid number at character 5",
                ),
                (
                    "cjson.decode('-inf')",
                    "user_script:1: Expected value but found invalid number at character 1",
                ),
                (
                    "cjson.decode('+1')",
                    "user_script:1: Expected value but found invalid token at character 1",
                ),
                (
                    "cjson.decode('inf')",
                    "user_script:1: Expected value but found invalid token at character 1",
                ),
                (
                    "cjson.decode('nan')",
                    "user_script:1: Expected value but found invalid token at character 1",
                ),
            ],
        );
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('-.5')"), -0.5);
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('0.5')"), 0.5);
    }

    #[test]
    fn decodes_string_escapes() {
        let lua = lua();
        let decode = |json: &str| -> Vec<u8> {
            let code = format!("return cjson.decode({json:?})");
            eval::<LuaString>(&lua, &code).as_bytes().to_vec()
        };
        assert_eq!(decode(r#""\/\b\f\n\r\t\"\\""#), b"/\x08\x0c\n\r\t\"\\");
        assert_eq!(decode(r#""\u00e9\u00E9""#), "éé".as_bytes());
        assert_eq!(decode(r#""\u0000""#), b"\0");
        assert_eq!(decode(r#""\u2603""#), "☃".as_bytes());
        assert_eq!(decode(r#""\ud83d\ude00""#), "😀".as_bytes());
        // Raw control characters and non-UTF-8 bytes pass through.
        assert_eq!(decode("\"a\nb\""), b"a\nb");
        let raw: LuaString = eval(&lua, r#"return cjson.decode('"\255\254"')"#);
        assert_eq!(&raw.as_bytes()[..], b"\xff\xfe");
    }

    #[test]
    fn decode_errors_name_token_and_position() {
        let lua = lua();
        let cases = [
            ("", "Expected value but found T_END at character 1"),
            ("   ", "Expected value but found T_END at character 4"),
            ("x", "Expected value but found invalid token at character 1"),
            ("[1,]", "Expected value but found T_ARR_END at character 4"),
            ("[,1]", "Expected value but found T_COMMA at character 2"),
            (
                "[1 2]",
                "Expected comma or array end but found T_NUMBER at character 4",
            ),
            (
                "[true false]",
                "Expected comma or array end but found T_BOOLEAN at character 7",
            ),
            (
                "[1",
                "Expected comma or array end but found T_END at character 3",
            ),
            ("[", "Expected value but found T_END at character 2"),
            (
                "{",
                "Expected object key string but found T_END at character 2",
            ),
            (
                "{1:2}",
                "Expected object key string but found T_NUMBER at character 2",
            ),
            (
                r#"{"a" 1}"#,
                "Expected colon but found T_NUMBER at character 6",
            ),
            (
                r#"{"a":}"#,
                "Expected value but found T_OBJ_END at character 6",
            ),
            (
                r#"{"a":1,}"#,
                "Expected object key string but found T_OBJ_END at character 8",
            ),
            (
                r#"{"a":1 "b":2}"#,
                "Expected comma or object end but found T_STRING at character 8",
            ),
            (
                "[1]]",
                "Expected the end but found T_ARR_END at character 4",
            ),
            ("1 2", "Expected the end but found T_NUMBER at character 3"),
            (
                "[\x0c1]",
                "Expected value but found invalid token at character 2",
            ),
            (
                "[1e]",
                "Expected comma or array end but found invalid token at character 3",
            ),
            (
                "[.5]",
                "Expected value but found invalid token at character 2",
            ),
            (
                "1e+",
                "Expected the end but found invalid token at character 2",
            ),
            (
                "0x",
                "Expected the end but found invalid token at character 2",
            ),
            (
                "+",
                "Expected value but found invalid number at character 1",
            ),
            (
                "-",
                "Expected value but found invalid number at character 1",
            ),
            (
                "tru",
                "Expected value but found invalid token at character 1",
            ),
            (
                "truex",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "nulll",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "nax",
                "Expected value but found invalid token at character 1",
            ),
            (
                "infinit",
                "Expected the end but found invalid token at character 4",
            ),
            (
                "nan(12",
                "Expected the end but found invalid token at character 4",
            ),
            (
                "\"abc",
                "Expected value but found unexpected end of string at character 5",
            ),
            (
                "\"\\\"",
                "Expected value but found unexpected end of string at character 4",
            ),
            (
                "\"\\",
                "Expected value but found invalid escape code at character 2",
            ),
            (
                "\"a\\qb\"",
                "Expected value but found invalid escape code at character 3",
            ),
            (
                "\"\\ude00\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "\"\\ud83d\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "\"\\ud83dx\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "\"\\ud83d\\u0041\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "\"\\u12\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "[\"\\u00zz\"]",
                "Expected value but found invalid unicode escape code at character 3",
            ),
            (
                "\u{ff}",
                "Expected value but found invalid token at character 1",
            ),
        ];
        for (json, expected) in cases {
            let code = format!("cjson.decode({json:?})");
            assert_eq!(
                error(&lua, &code),
                format!("user_script:1: {expected}"),
                "{json:?}"
            );
        }
    }

    #[test]
    fn decode_stops_at_nul() {
        let lua = lua();
        let first: f64 = eval(&lua, r"return cjson.decode('[1]\0garbage')[1]");
        assert_eq!(first, 1.0);
        let utf16 = "user_script:1: JSON parser does not support UTF-16 or UTF-32";
        assert_errors(
            &lua,
            &[
                (r"cjson.decode('\0[1]')", utf16),
                (r"cjson.decode('1\0')", utf16),
                (
                    r"cjson.decode('\0')",
                    "user_script:1: Expected value but found T_END at character 1",
                ),
                (
                    r#"cjson.decode('["abc\0"]')"#,
                    "user_script:1: Expected value but found unexpected end of string at character 6",
                ),
            ],
        );
    }

    #[test]
    fn decode_depth_is_limited() {
        let lua = lua();
        let ok: bool = eval(
            &lua,
            "return cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)) ~= nil",
        );
        assert!(ok);
        assert_errors(
            &lua,
            &[
                (
                    "cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))",
                    "user_script:1: Found too many nested data structures (1001) at character 1001",
                ),
                (
                    "cjson.decode(string.rep('[', 100000))",
                    "user_script:1: Found too many nested data structures (1001) at character 1001",
                ),
            ],
        );
        eval::<()>(&lua, "cjson.decode_max_depth(1)");
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('[1]')[1]"), 1.0);
        assert_errors(
            &lua,
            &[
                (
                    "cjson.decode('[[1]]')",
                    "user_script:1: Found too many nested data structures (2) at character 2",
                ),
                (
                    r#"cjson.decode('{"obj": {"array": [1,2,3,4]}}')"#,
                    "user_script:1: Found too many nested data structures (2) at character 9",
                ),
            ],
        );
        // Raised limits stop where the C library's Lua stack would run out.
        eval::<()>(&lua, "cjson.decode_max_depth(100000)");
        let deep: bool = eval(
            &lua,
            "return cjson.decode(string.rep('[', 7000) .. string.rep(']', 7000)) ~= nil",
        );
        assert!(deep);
        assert_errors(
            &lua,
            &[(
                r#"cjson.decode(string.rep('{"a":', 4000) .. '1' .. string.rep('}', 4000))"#,
                "user_script:1: Found too many nested data structures (4000) at character 19996",
            )],
        );
    }

    #[test]
    fn decode_argument_errors() {
        let lua = lua();
        assert_eq!(eval::<f64>(&lua, "return cjson.decode(7)"), 7.0);
        assert_eq!(eval::<f64>(&lua, "return cjson.decode(1e20)"), 1e20);
        assert_errors(
            &lua,
            &[
                (
                    "cjson.decode()",
                    "user_script:1: bad argument #1 to 'decode' (expected 1 argument)",
                ),
                (
                    "cjson.decode('1', 2)",
                    "user_script:1: bad argument #1 to 'decode' (expected 1 argument)",
                ),
                (
                    "cjson.decode(nil)",
                    "user_script:1: bad argument #1 to 'decode' (string expected, got nil)",
                ),
                (
                    "cjson.decode({})",
                    "user_script:1: bad argument #1 to 'decode' (string expected, got table)",
                ),
                (
                    "cjson.encode()",
                    "user_script:1: bad argument #1 to 'encode' (expected 1 argument)",
                ),
                (
                    "cjson.encode(1, 2)",
                    "user_script:1: bad argument #1 to 'encode' (expected 1 argument)",
                ),
                (
                    "cjson:encode(1)",
                    "user_script:1: calling 'encode' on bad self (expected 1 argument)",
                ),
                (
                    "local f = cjson.decode f()",
                    "user_script:1: bad argument #1 to 'f' (expected 1 argument)",
                ),
            ],
        );
        // Under pcall the function has no name, and the caller is C code.
        let (ok, message): (bool, String) = eval(
            &lua,
            "local ok, e = pcall(cjson.decode) return ok, tostring(e)",
        );
        assert!(!ok);
        assert!(message.contains("bad argument #1 to '?' (expected 1 argument)"));
    }

    #[test]
    fn configuration_functions() {
        let lua = lua();
        let defaults: (bool, i32, i32, i32, i32, i32, bool, bool, bool, bool) = eval(
            &lua,
            "local convert, ratio, safe = cjson.encode_sparse_array()
             return convert, ratio, safe, cjson.encode_max_depth(), cjson.decode_max_depth(),
                 cjson.encode_number_precision(), cjson.encode_keep_buffer(),
                 cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers(),
                 cjson.decode_array_with_array_mt()",
        );
        assert_eq!(
            defaults,
            (false, 2, 10, 1000, 1000, 14, true, false, true, false)
        );
        let set: (bool, i32, i32) = eval(&lua, "return cjson.encode_sparse_array('on', 3, 5)");
        assert_eq!(set, (true, 3, 5));
        assert_eq!(eval::<i32>(&lua, "return cjson.encode_max_depth('12')"), 12);
        assert_eq!(eval::<i32>(&lua, "return cjson.encode_max_depth(1.9)"), 1);
        // Stored in a C int.
        assert_eq!(
            eval::<i32>(&lua, "return cjson.encode_max_depth(2^32 + 7)"),
            7
        );
        assert!(!eval::<bool>(
            &lua,
            "return cjson.encode_keep_buffer(false)"
        ));
        assert!(eval::<bool>(&lua, "return cjson.encode_keep_buffer('on')"));
        assert_errors(
            &lua,
            &[
                (
                    "cjson.encode_max_depth(0)",
                    "user_script:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)",
                ),
                (
                    "cjson.decode_max_depth(-3)",
                    "user_script:1: bad argument #1 to 'decode_max_depth' (expected integer between 1 and 2147483647)",
                ),
                (
                    "cjson.encode_number_precision(15)",
                    "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)",
                ),
                (
                    // The C names argument 1 whichever was out of range.
                    "cjson.encode_sparse_array(nil, -1)",
                    "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)",
                ),
                (
                    "cjson.encode_sparse_array(nil, nil, 'x')",
                    "user_script:1: bad argument #3 to 'encode_sparse_array' (number expected, got string)",
                ),
                (
                    "cjson.encode_sparse_array(1, 2, 3, 4)",
                    "user_script:1: bad argument #4 to 'encode_sparse_array' (found too many arguments)",
                ),
                (
                    "cjson.decode_max_depth(1, 2)",
                    "user_script:1: bad argument #2 to 'decode_max_depth' (found too many arguments)",
                ),
                (
                    "cjson.encode_max_depth(cjson)",
                    "user_script:1: bad argument #1 to 'encode_max_depth' (number expected, got table)",
                ),
                (
                    "cjson.encode_invalid_numbers('bogus')",
                    "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'bogus')",
                ),
                (
                    "cjson.encode_invalid_numbers(5)",
                    "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option '5')",
                ),
                (
                    "cjson.encode_invalid_numbers({})",
                    "user_script:1: bad argument #1 to 'encode_invalid_numbers' (string expected, got table)",
                ),
                (
                    "cjson.encode_keep_buffer(0)",
                    "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option '0')",
                ),
            ],
        );
        // Options before the bad argument were applied, as in the C.
        eval::<()>(&lua, "pcall(cjson.encode_sparse_array, false, -1)");
        let after: (bool, i32, i32) = eval(&lua, "return cjson.encode_sparse_array()");
        assert_eq!(after, (false, 3, 5));
    }

    #[test]
    fn new_returns_an_independent_instance() {
        let lua = lua();
        let (same_null, limit, global): (bool, i32, String) = eval(
            &lua,
            "local c = cjson.new()
             c.encode_max_depth(1)
             return c.null == cjson.null, c.encode_max_depth(), cjson.encode({{}})",
        );
        assert!(same_null);
        assert_eq!(limit, 1);
        assert_eq!(global, "[{}]");
        assert_errors(
            &lua,
            &[(
                "local c = cjson.new() c.encode_max_depth(1) c.encode({{}})",
                "user_script:1: Cannot serialise, excessive nesting (2)",
            )],
        );
        let name: String = eval(&lua, "return cjson.new().new()._NAME");
        assert_eq!(name, "cjson");
    }

    #[test]
    fn arrays_can_keep_their_metatable() {
        let lua = lua();
        assert!(eval::<bool>(
            &lua,
            "return cjson.decode_array_with_array_mt(true)"
        ));
        assert_encodes(
            &lua,
            &[
                ("cjson.decode('[]')", "[]"),
                ("cjson.decode('{}')", "{}"),
                (r#"cjson.decode('{"a":[],"b":{},"c":[[],[1]]}').a"#, "[]"),
                (r#"cjson.decode('{"c":[[],[1]]}')"#, r#"{"c":[[],[1]]}"#),
                // Marked tables are arrays whatever else they hold.
                (
                    "(function() local t = cjson.decode('[1]') t.x = 2 return t end)()",
                    "[1]",
                ),
                ("setmetatable({}, cjson.array_mt)", "[]"),
                ("setmetatable({}, {__is_cjson_array = true})", "[]"),
                ("setmetatable({}, {__is_cjson_array = false})", "{}"),
            ],
        );
        let marked: bool = eval(
            &lua,
            "local t = cjson.decode('[1, 2]')
             return getmetatable(t) == cjson.array_mt and getmetatable(t).__is_cjson_array",
        );
        assert!(marked);
        // The marker cannot be changed, like Redis's read-only tables.
        assert_errors(
            &lua,
            &[(
                "local t = cjson.decode('[]')\ngetmetatable(t).__is_cjson_array = false",
                "user_script:2: Attempt to modify a readonly table",
            )],
        );
        // A new instance starts with the option off but knows the marker.
        assert_encodes(
            &lua,
            &[
                ("cjson.new().decode('[]')", "{}"),
                ("cjson.decode('[]')", "[]"),
            ],
        );
        let (fresh, encoded): (bool, String) = eval(
            &lua,
            "local c = cjson.new() return c.decode_array_with_array_mt(), c.encode(cjson.decode('[]'))",
        );
        assert!(!fresh);
        assert_eq!(encoded, "[]");
        assert!(!eval::<bool>(
            &lua,
            "return cjson.decode_array_with_array_mt(false)"
        ));
        assert_encodes(&lua, &[("cjson.decode('[]')", "{}")]);
    }

    #[test]
    fn errors_carry_the_callers_position_like_lual_error() {
        let lua = lua();
        assert_eq!(
            error(&lua, "\n\ncjson.decode('x')"),
            "user_script:3: Expected value but found invalid token at character 1"
        );
        // Called from Rust (or through pcall), there is no Lua caller.
        let decode: Function = eval(&lua, "return cjson.decode");
        let e = decode.call::<Value>("x").unwrap_err();
        assert_eq!(
            message(&e),
            "Expected value but found invalid token at character 1"
        );
    }

    #[test]
    fn round_trips_large_documents() {
        let lua = lua();
        let ok: bool = eval(
            &lua,
            "local t = {}
             for i = 1, 20000 do t['k' .. i] = {i, 'v' .. i, {x = i / 4}} end
             local back = cjson.decode(cjson.encode(t))
             for i = 1, 20000 do
                 local v = back['k' .. i]
                 if v[1] ~= i or v[2] ~= 'v' .. i or v[3].x ~= i / 4 then return false end
             end
             return true",
        );
        assert!(ok);
    }

    #[test]
    fn redis_smoke_test() {
        // Redis's "EVAL - JSON smoke test".
        let lua = lua();
        eval::<()>(
            &lua,
            r#"
            local some_map = {s1 = "Some string", n1 = 100, a1 = {"Some", "String", "Array"},
                nil1 = nil, b1 = true, b2 = false}
            local encoded = cjson.encode(some_map)
            local decoded = cjson.decode(encoded)
            assert(table.concat(some_map) == table.concat(decoded))
            cjson.encode_keep_buffer(false)
            encoded = cjson.encode(some_map)
            decoded = cjson.decode(encoded)
            assert(table.concat(some_map) == table.concat(decoded))
            local table1 = {one = "one", [1] = "one"}
            decoded = cjson.decode(cjson.encode(table1))
            assert(decoded["one"] == table1["one"])
            assert(decoded["1"] == table1[1])
            local array1 = {[1] = "one", [2] = "two"}
            decoded = cjson.decode(cjson.encode(array1))
            assert(table.concat(array1) == table.concat(decoded))
            local invalid_map = {}
            invalid_map[false] = "false"
            assert(pcall(cjson.encode, invalid_map) == false)
            cjson.encode_max_depth(1)
            assert(pcall(cjson.encode, some_map) == false)
            cjson.decode_max_depth(1)
            assert(pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}') == false)
            assert(pcall(cjson.encode, {num1 = 0/0}) == false)
            cjson.encode_invalid_numbers(true)
            assert(pcall(cjson.encode, {num1 = 0/0}) == true)
            "#,
        );
    }

    #[test]
    fn garbage_input_raises_errors_not_panics() {
        let lua = lua();
        let decode: Function = eval(&lua, "return cjson.decode");
        let alphabet = b"[]{}:,\"\\ 0123456789-+.eExXtrufalsnINi/u\n\0\xff";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..3000 {
            let text: Vec<u8> = (0..round % 30)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = decode.call::<Value>(lua.create_string(&text).unwrap());
        }
    }

    #[test]
    fn write_g_matches_printf() {
        let cases: &[(f64, usize, &str)] = &[
            (0.0, 14, "0"),
            (-0.0, 14, "-0"),
            (1e14, 14, "1e+14"),
            (99999999999999.5, 14, "1e+14"),
            (9.5, 1, "1e+01"),
            (0.95, 1, "0.9"),
            (0.00001, 1, "1e-05"),
            (0.0001, 3, "0.0001"),
            (123.5, 3, "124"),
            (124.5, 3, "124"),
            (f64::INFINITY, 14, "inf"),
            (f64::NEG_INFINITY, 14, "-inf"),
            (1.7976931348623157e308, 14, "1.7976931348623e+308"),
            (2.5e-310, 14, "2.5e-310"),
        ];
        for (number, precision, expected) in cases {
            let mut out = Vec::new();
            write_g(&mut out, *number, *precision);
            assert_eq!(
                String::from_utf8_lossy(&out),
                *expected,
                "{number} {precision}"
            );
        }
    }

    #[test]
    fn strtod_reads_what_glibc_reads() {
        let cases: &[(&str, Option<(f64, usize)>)] = &[
            ("1.5e3x", Some((1500.0, 5))),
            ("1e", Some((1.0, 1))),
            ("1e+", Some((1.0, 1))),
            ("-.5", Some((-0.5, 3))),
            (".", None),
            ("-", None),
            ("0x", Some((0.0, 1))),
            ("0x1P-2", Some((0.25, 6))),
            ("0x1p", Some((1.0, 3))),
            ("0x.8", Some((0.5, 4))),
            ("0x1.8.5", Some((1.5, 5))),
            ("infinity!", Some((f64::INFINITY, 8))),
            ("-infx", Some((f64::NEG_INFINITY, 4))),
            ("0x1p99999999999999999999", Some((f64::INFINITY, 24))),
            ("0x1p-99999999999999999999", Some((0.0, 25))),
            // Round to nearest even, with digits past the mantissa.
            ("0x1.00000000000008p0", Some((1.0, 20))),
            (
                "0x1.000000000000080000001p0",
                Some((1.0 + f64::EPSILON, 27)),
            ),
            ("0x1.00000000000018p0", Some((1.0 + 2.0 * f64::EPSILON, 20))),
            ("0x3p-1076", Some((5e-324, 9))),
        ];
        for (text, expected) in cases {
            let got = strtod(text.as_bytes());
            assert_eq!(
                got.map(|(n, len)| (n.to_bits(), len)),
                expected.map(|(n, len)| (n.to_bits(), len)),
                "{text}"
            );
        }
        let (nan, len) = strtod(b"nan(abc_1)x").unwrap();
        assert!(nan.is_nan() && len == 10);
        assert_eq!(strtod(b"nan(x").map(|(_, len)| len), Some(3));
    }
}
