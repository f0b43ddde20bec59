//! The `struct` library Redis gives Lua scripts: Roberto Ierusalimschy's lstruct (struct.c
//! 1.7 with Redis's security fixes), which packs numbers and strings into binary strings.
//!
//! A format is a sequence of options, some followed by a decimal count:
//! `>`/`<` big/little endian (native by default), `!n` maximum alignment `n` (default 8,
//! initially 1), `x` a zero byte, `b`/`B` `h`/`H` `l`/`L` `T` signed/unsigned char, short,
//! long and size_t integers (1, 2, 8 and 8 bytes), `i`/`In` integers of `n` bytes (default 4,
//! at most 32), `f`/`d` float/double, `s` a zero-terminated string, `cn` `n` chars (`c0`:
//! the whole string when packing, as many as the previous unpacked number when unpacking);
//! spaces are ignored. Items are aligned to their own size, capped by the `!` alignment.
//!
//! The C library's behaviour on x86-64 Linux is kept, including where C leaves it undefined:
//! out-of-range numbers convert to integers as the SSE instructions do, and integers wider
//! than 8 bytes keep only their low 8 bytes.

use super::{arg_error, runtime_error, type_error};
use mlua::{Lua, LuaString, MultiValue, Result, Value};

/// The largest `i`/`I` size (lstruct's `MAXINTSIZE`).
const MAX_INT_SIZE: usize = 32;
/// The default of `!`: the alignment of `double`, the strictest basic C type on 64-bit Linux.
const MAX_ALIGN: usize = 8;
/// The largest count a format may hold (C's `INT_MAX`).
const MAX_COUNT: usize = i32::MAX as usize;
/// Lua 5.1's `LUAI_MAXCSTACK`: the stack slots a C function may use, which limits how many
/// values `unpack` can return.
const MAX_C_STACK: usize = 8000;
/// 2^63 as a double.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Registers the global table `struct` with `pack`, `unpack` and `size`.
///
/// Errors raise `mlua::Error::RuntimeError` with the text lstruct's `luaL_error` and
/// `luaL_argerror` calls would produce, e.g.
/// `user_script:1: bad argument #1 to 'pack' (invalid format option 'y')`.
pub fn register(lua: &Lua) -> Result<()> {
    let table = lua.create_table()?;
    table.set("pack", lua.create_function(pack)?)?;
    table.set("unpack", lua.create_function(unpack)?)?;
    table.set("size", lua.create_function(size)?)?;
    lua.globals().set("struct", table)
}

/// Byte order and maximum alignment, changed by `<`, `>` and `!` as the format goes on.
#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            little: cfg!(target_endian = "little"),
            align: 1,
        }
    }
}

/// The rest of a format string, read one option at a time.
struct Format<'a>(&'a [u8]);

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8]) -> Self {
        // C reads the format as a C string, so it ends at the first NUL.
        Format(fmt.split(|&b| b == 0).next().unwrap_or_default())
    }

    fn next_option(&mut self) -> Option<u8> {
        let (&opt, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(opt)
    }

    /// The decimal count at the front of the format, or `default` if there is none.
    fn count(&mut self, lua: &Lua, default: usize) -> Result<usize> {
        let digits = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Ok(default);
        }
        let (number, rest) = self.0.split_at(digits);
        self.0 = rest;
        number.iter().try_fold(0, |count: usize, &digit| {
            let digit = usize::from(digit - b'0');
            if count > MAX_COUNT / 10 || count * 10 > MAX_COUNT - digit {
                return Err(runtime_error(lua, "integral size overflow"));
            }
            Ok(count * 10 + digit)
        })
    }

    /// The size in bytes of option `opt`'s item, reading its count if it takes one; 0 for
    /// options that are not items or whose size depends on the data.
    fn item_size(&mut self, lua: &Lua, opt: u8) -> Result<usize> {
        Ok(match opt {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'f' => 4,
            // `long` and `size_t` on 64-bit Linux, like `double`.
            b'l' | b'L' | b'T' | b'd' => 8,
            b'c' => self.count(lua, 1)?,
            b'i' | b'I' => {
                let size = self.count(lua, 4)?;
                if size > MAX_INT_SIZE {
                    let msg =
                        format!("integral size {size} is larger than limit of {MAX_INT_SIZE}");
                    return Err(runtime_error(lua, msg));
                }
                size
            }
            _ => 0,
        })
    }

    /// Applies a control option; any other option is invalid.
    fn control(&mut self, lua: &Lua, opt: u8, header: &mut Header) -> Result<()> {
        match opt {
            b' ' => {}
            b'>' => header.little = false,
            b'<' => header.little = true,
            b'!' => {
                let align = self.count(lua, MAX_ALIGN)?;
                if !align.is_power_of_two() {
                    let msg = format!("alignment {align} is not a power of 2");
                    return Err(runtime_error(lua, msg));
                }
                header.align = align;
            }
            _ => {
                // A byte that is not ASCII cannot go into the message as such.
                let opt = String::from_utf8_lossy(&[opt]).into_owned();
                let msg = format!("invalid format option '{opt}'");
                return Err(arg_error(lua, 1, &msg));
            }
        }
        Ok(())
    }
}

/// `struct.pack(fmt, ...)`: the values packed into a string.
fn pack(lua: &Lua, mut args: MultiValue) -> Result<LuaString> {
    let fmt = check_string(lua, &args, 1)?.as_bytes();
    // C pushes a nil after the arguments, so a missing value reads as nil (values are taken
    // in order, so only the first missing one is ever reported).
    args.push_back(Value::Nil);
    let mut format = Format::new(&fmt);
    let mut header = Header::default();
    let mut out = Vec::new();
    let mut arg = 2;
    while let Some(opt) = format.next_option() {
        let size = format.item_size(lua, opt)?;
        out.resize(out.len() + padding(out.len(), header, opt, size), 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let value = double_to_ulong(check_number(lua, &args, arg)?);
                arg += 1;
                // C shifts its 8-byte value out, so any bytes past the eighth are zero.
                let mut le = [0; MAX_INT_SIZE];
                le[..8].copy_from_slice(&value.to_le_bytes());
                put_bytes(&mut out, &le[..size], header.little);
            }
            b'x' => out.push(0),
            b'f' => {
                let value = check_number(lua, &args, arg)? as f32;
                arg += 1;
                put_bytes(&mut out, &value.to_le_bytes(), header.little);
            }
            b'd' => {
                let value = check_number(lua, &args, arg)?;
                arg += 1;
                put_bytes(&mut out, &value.to_le_bytes(), header.little);
            }
            b'c' | b's' => {
                let s = check_string(lua, &args, arg)?.as_bytes();
                arg += 1;
                let len = if size == 0 { s.len() } else { size };
                // lstruct names the argument after the string in this error.
                let chars = s
                    .get(..len)
                    .ok_or_else(|| arg_error(lua, arg, "string too short"))?;
                out.extend_from_slice(chars);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => format.control(lua, opt, &mut header)?,
        }
    }
    lua.create_string(out)
}

/// `struct.unpack(fmt, s [, init])`: the values packed in `s` from position `init`, then the
/// position after them.
fn unpack(lua: &Lua, args: MultiValue) -> Result<MultiValue> {
    let fmt = check_string(lua, &args, 1)?.as_bytes();
    let data = check_string(lua, &args, 2)?.as_bytes();
    let init = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(_) => check_integer(lua, &args, 3)?,
    };
    // Positions are C's size_t: a negative `init` wraps around to a huge offset, which then
    // fails the bounds check of the first option.
    let mut pos = init as usize;
    if pos == 0 {
        return Err(arg_error(lua, 3, "offset must be 1 or greater"));
    }
    pos -= 1;
    let mut format = Format::new(&fmt);
    let mut header = Header::default();
    let mut values = Vec::new();
    while let Some(opt) = format.next_option() {
        let mut size = format.item_size(lua, opt)?;
        pos = pos.wrapping_add(padding(pos, header, opt, size));
        let mut item =
            field(&data, pos, size).ok_or_else(|| arg_error(lua, 2, "data string too short"))?;
        // lstruct wants two free slots before each option; mlua needs one more than C to
        // return the values, so check for three and fail with lstruct's error, not mlua's.
        if args.len() + values.len() + 3 > MAX_C_STACK {
            return Err(runtime_error(lua, "stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                values.push(Value::Number(get_integer(item, header.little, signed)));
            }
            b'x' => {}
            b'f' => {
                let value = f32::from_le_bytes(le_bytes(item, header.little));
                values.push(Value::Number(value.into()));
            }
            b'd' => {
                let value = f64::from_le_bytes(le_bytes(item, header.little));
                values.push(Value::Number(value));
            }
            b'c' => {
                if size == 0 {
                    // `c0` takes its length from the previous value, which it replaces.
                    let previous = match values.pop() {
                        Some(value) => lua.coerce_number(value)?,
                        None => None,
                    };
                    let len = previous
                        .ok_or_else(|| runtime_error(lua, "format 'c0' needs a previous size"))?;
                    size = double_to_ulong(len) as usize;
                    item = field(&data, pos, size)
                        .ok_or_else(|| arg_error(lua, 2, "data string too short"))?;
                }
                values.push(Value::String(lua.create_string(item)?));
            }
            b's' => {
                // The bounds check above made `pos` a valid offset.
                let rest = data.get(pos..).unwrap_or_default();
                let len = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| runtime_error(lua, "unfinished string in data"))?;
                values.push(Value::String(lua.create_string(&rest[..len])?));
                size = len + 1;
            }
            _ => format.control(lua, opt, &mut header)?,
        }
        pos = pos.wrapping_add(size);
    }
    values.push(Value::Number(lua_integer(pos.wrapping_add(1))));
    Ok(MultiValue::from_vec(values))
}

/// `struct.size(fmt)`: the length of the string `struct.pack(fmt, ...)` makes.
fn size(lua: &Lua, args: MultiValue) -> Result<f64> {
    let fmt = check_string(lua, &args, 1)?.as_bytes();
    let mut format = Format::new(&fmt);
    let mut header = Header::default();
    let mut total: usize = 0;
    while let Some(opt) = format.next_option() {
        let size = format.item_size(lua, opt)?;
        total = total.wrapping_add(padding(total, header, opt, size));
        if opt == b's' {
            return Err(arg_error(lua, 1, "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, "option 'c0' has no fixed size"));
        }
        // Unlike pack and unpack, size ignores letters and digits that are not options.
        if !opt.is_ascii_alphanumeric() {
            format.control(lua, opt, &mut header)?;
        }
        total = total.wrapping_add(size);
    }
    Ok(lua_integer(total))
}

/// The zero bytes to put before an item of `size` bytes at `offset` so that it is aligned to
/// its size, capped by the `!` alignment. Chars are never aligned.
fn padding(offset: usize, header: Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let align = size.min(header.align);
    (align - (offset & (align - 1))) & (align - 1)
}

/// The `size` bytes of `data` at `pos`, if it has them.
fn field(data: &[u8], pos: usize, size: usize) -> Option<&[u8]> {
    data.get(pos..)?.get(..size)
}

/// Appends little-endian `bytes` in the format's byte order.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8], little: bool) {
    if little {
        out.extend_from_slice(bytes);
    } else {
        out.extend(bytes.iter().rev());
    }
}

/// `field`, stored in the format's byte order, as little-endian bytes.
fn le_bytes<const N: usize>(field: &[u8], little: bool) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(field);
    if !little {
        bytes.reverse();
    }
    bytes
}

/// The integer stored in `field` as a Lua number. Like C's 8-byte `unsigned long`, only the
/// low 8 bytes of wider fields count.
fn get_integer(field: &[u8], little: bool, signed: bool) -> f64 {
    let push_byte = |value: u64, &byte: &u8| (value << 8) | u64::from(byte);
    let value = if little {
        field.iter().rev().fold(0, push_byte)
    } else {
        field.iter().fold(0, push_byte)
    };
    if !signed {
        return value as f64;
    }
    // Sign-extend from the field's top bit. For fields wider than 8 bytes (and `i0`) C shifts
    // by 64 or more, which x86-64 takes modulo 64, as `wrapping_shl` does.
    let width = u32::try_from(field.len() * 8).unwrap_or(u32::MAX);
    let mask = u64::MAX.wrapping_shl(width.wrapping_sub(1));
    let value = if value & mask != 0 {
        value | mask
    } else {
        value
    };
    value as i64 as f64
}

/// C's `(long)n` as x86-64 computes it: truncation toward zero, with NaN and out-of-range
/// values (undefined in C) giving `i64::MIN`, the "integer indefinite" of `cvttsd2si`.
fn double_to_long(n: f64) -> i64 {
    if n.is_nan() || n >= TWO_POW_63 {
        i64::MIN
    } else {
        // Saturates to i64::MIN below -2^63, as the instruction does.
        n as i64
    }
}

/// C's `(unsigned long)n` as GCC computes it on x86-64: from 2^63 up it converts `n - 2^63`
/// as a `long` and flips the top bit, so 2^64 and above come out as 0; below 2^63 it is
/// `(long)n`.
fn double_to_ulong(n: f64) -> u64 {
    if n >= 2.0 * TWO_POW_63 {
        0
    } else if n >= TWO_POW_63 {
        n as u64
    } else {
        double_to_long(n) as u64
    }
}

/// A `size_t` as `lua_pushinteger` shows it: reinterpreted as `ptrdiff_t`, then a double.
fn lua_integer(n: usize) -> f64 {
    n as i64 as f64
}

/// Argument `n` (1-based) as `luaL_checknumber` reads it: a number or a numeric string.
fn check_number(lua: &Lua, args: &MultiValue, n: usize) -> Result<f64> {
    let value = args.get(n - 1);
    let number = match value {
        Some(value) => lua.coerce_number(value.clone())?,
        None => None,
    };
    number.ok_or_else(|| type_error(lua, n, "number", value))
}

/// Argument `n` as `luaL_checkinteger` reads it: `luaL_checknumber`, then C's `(long)`.
fn check_integer(lua: &Lua, args: &MultiValue, n: usize) -> Result<i64> {
    check_number(lua, args, n).map(double_to_long)
}

/// Argument `n` as `luaL_checklstring` reads it: a string, or a number made a string.
fn check_string(lua: &Lua, args: &MultiValue, n: usize) -> Result<LuaString> {
    let value = args.get(n - 1);
    let string = match value {
        Some(value) => lua.coerce_string(value.clone())?,
        None => None,
    };
    string.ok_or_else(|| type_error(lua, n, "string", value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Error;

    /// Renders values for comparison: numbers as `%.17g`, strings quoted with bytes other
    /// than letters, digits, punctuation and space as `\xNN`.
    const SHOW: &str = r##"
        function show(...)
            local out = {}
            for i = 1, select("#", ...) do
                local v = select(i, ...)
                if type(v) == "string" then
                    local escaped = v:gsub("[^%w%p ]", function(c)
                        return string.format("\\x%02x", c:byte())
                    end)
                    out[i] = '"' .. escaped .. '"'
                else
                    out[i] = string.format("%.17g", v)
                end
            end
            return table.concat(out, " ")
        end
    "##;

    /// A Lua state with `struct` and the `show` helper.
    fn lua() -> Lua {
        let lua = Lua::new();
        register(&lua).unwrap();
        lua.load(SHOW).exec().unwrap();
        lua
    }

    /// The values of the Lua expression list `src`, rendered by `show`.
    fn show(src: &str) -> String {
        lua().load(format!("return show({src})")).eval().unwrap()
    }

    /// The message of the error the chunk `src` (named "user_script") raises.
    fn error(src: &str) -> String {
        match lua().load(src).set_name("@user_script").exec() {
            Err(Error::CallbackError { cause, .. }) => match cause.as_ref() {
                Error::RuntimeError(msg) => msg.clone(),
                other => panic!("unexpected cause {other:?}"),
            },
            other => panic!("expected an error from {src:?}, got {other:?}"),
        }
    }

    #[test]
    fn integer_sizes_and_byte_order() {
        assert_eq!(show("struct.pack('>i2', -2)"), r#""\xff\xfe""#);
        assert_eq!(
            show("struct.pack('<I4', 0x01020304)"),
            r#""\x04\x03\x02\x01""#
        );
        assert_eq!(show("struct.pack('>i3', -2)"), r#""\xff\xff\xfe""#);
        assert_eq!(
            show("struct.pack('bBhH', -1, 255, -2, 65535)"),
            r#""\xff\xff\xfe\xff\xff\xff""#
        );
        // Native order (little endian here); `i` is 4 bytes, `l` and `T` are 8.
        assert_eq!(show("struct.pack('i', 1)"), r#""\x01\x00\x00\x00""#);
        assert_eq!(
            show("struct.pack('>l', -1)"),
            r#""\xff\xff\xff\xff\xff\xff\xff\xff""#
        );
        assert_eq!(
            show("struct.pack('<T', 258)"),
            r#""\x02\x01\x00\x00\x00\x00\x00\x00""#
        );
        assert_eq!(show("struct.size('bBhHlLTii3I7')"), "44");
    }

    #[test]
    fn integers_round_trip() {
        let src = "struct.unpack('<bBhHi3I3lLT', struct.pack('<bBhHi3I3lLT', \
                   -128, 255, -32768, 65535, -8388608, 16777215, -2^53, 2^53, 2^63))";
        assert_eq!(
            show(src),
            "-128 255 -32768 65535 -8388608 16777215 -9007199254740992 9007199254740992 \
             9.2233720368547758e+18 37"
        );
        assert_eq!(
            show(r#"struct.unpack('>I8', ("\255"):rep(8))"#),
            "1.8446744073709552e+19 9"
        );
        assert_eq!(show(r#"struct.unpack('>i8', ("\255"):rep(8))"#), "-1 9");
        assert_eq!(show(r#"struct.unpack('<i3', "\255\255\127")"#), "8388607 4");
        assert_eq!(show(r#"struct.unpack('<i3', "\0\0\128")"#), "-8388608 4");
    }

    #[test]
    fn numbers_convert_to_integers_as_in_c() {
        // Truncation toward zero, wrapping to the field size.
        assert_eq!(show("struct.pack('<b', 3.99)"), r#""\x03""#);
        assert_eq!(show("struct.pack('<b', -3.99)"), r#""\xfd""#);
        assert_eq!(show("struct.pack('<B', 263)"), r#""\x07""#);
        assert_eq!(show("struct.pack('<I2', -1)"), r#""\xff\xff""#);
        assert_eq!(
            show("struct.pack('>I8', 2^63)"),
            r#""\x80\x00\x00\x00\x00\x00\x00\x00""#
        );
        // Out of range for C: what x86-64 Redis produces.
        assert_eq!(
            show("struct.pack('>I8', 2^64)"),
            r#""\x00\x00\x00\x00\x00\x00\x00\x00""#
        );
        assert_eq!(
            show("struct.pack('>I8', 1/0)"),
            r#""\x00\x00\x00\x00\x00\x00\x00\x00""#
        );
        assert_eq!(
            show("struct.pack('>I8', 0/0)"),
            r#""\x80\x00\x00\x00\x00\x00\x00\x00""#
        );
        assert_eq!(
            show("struct.pack('>i8', -2^70)"),
            r#""\x80\x00\x00\x00\x00\x00\x00\x00""#
        );
        // Numeric strings are numbers.
        assert_eq!(show("struct.pack('<i', '0x10')"), r#""\x10\x00\x00\x00""#);
    }

    #[test]
    fn integers_wider_than_8_bytes_keep_the_low_8() {
        assert_eq!(
            show("struct.pack('<i16', -1)"),
            r#""\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00""#
        );
        let high = r#"("\0"):rep(8) .. "\1\2\3\4\5\6\7\8""#;
        assert_eq!(
            show(&format!("struct.unpack('>i16', {high})")),
            "72623859790382848 17"
        );
        // C sign-extends with a shift by 71 or 127 bits, which x86-64 takes modulo 64.
        assert_eq!(
            show(r#"struct.unpack('<i9', "\128" .. ("\0"):rep(8))"#),
            "-128 10"
        );
        assert_eq!(
            show(r#"struct.unpack('<i16', "\128" .. ("\255"):rep(15))"#),
            "-128 17"
        );
        assert_eq!(show("struct.unpack('<i0I0', '')"), "0 0 1");
        assert_eq!(show("struct.pack('i0I0', 1, 2)"), r#""""#);
    }

    #[test]
    fn floats() {
        assert_eq!(show("struct.pack('<f', 1.5)"), r#""\x00\x00\xc0?""#);
        assert_eq!(show("struct.pack('>f', 1e40)"), r#""\x7f\x80\x00\x00""#);
        assert_eq!(
            show("struct.pack('>d', -2)"),
            r#""\xc0\x00\x00\x00\x00\x00\x00\x00""#
        );
        assert_eq!(
            show("struct.unpack('<f', struct.pack('<f', 0.1))"),
            "0.10000000149011612 5"
        );
        assert_eq!(
            show("struct.unpack('>d', struct.pack('>d', 0.1))"),
            "0.10000000000000001 9"
        );
        assert_eq!(
            show("struct.unpack('>f<d', struct.pack('>f<d', -3, 2^-1074))"),
            "-3 4.9406564584124654e-324 13"
        );
    }

    #[test]
    fn strings() {
        assert_eq!(show(r#"struct.pack('s', "a\0b")"#), r#""a\x00b\x00""#);
        assert_eq!(show("struct.pack('c0', 'hello')"), r#""hello""#);
        assert_eq!(show("struct.pack('c3', 'hello')"), r#""hel""#);
        // Numbers are strings too, formatted as Lua does.
        assert_eq!(show("struct.pack('c2s', 123, 1.5)"), r#""121.5\x00""#);
        assert_eq!(
            show(r#"struct.unpack('sss', "a\0\0bc\0")"#),
            r#""a" "" "bc" 7"#
        );
        assert_eq!(show("struct.unpack('c3x c2', 'abc_de')"), r#""abc" "de" 7"#);
    }

    #[test]
    fn c0_in_unpack_takes_the_previous_number_as_length() {
        assert_eq!(show(r#"struct.unpack('bc0', "\3abcd")"#), r#""abc" 5"#);
        // A numeric string counts as a number, as in Lua.
        assert_eq!(show("struct.unpack('c1c0', '2abcd')"), r#""ab" 4"#);
        // 2^64 - 1 becomes the double 2^64, which C turns into length 0.
        assert_eq!(
            show(r#"struct.unpack('>I8c0', ("\255"):rep(8) .. "x")"#),
            r#""" 9"#
        );
        assert_eq!(
            error("struct.unpack('c0', 'abc')"),
            "user_script:1: format 'c0' needs a previous size"
        );
        assert_eq!(
            error("struct.unpack('c1c0', 'xabc')"),
            "user_script:1: format 'c0' needs a previous size"
        );
        assert_eq!(
            error(r#"struct.unpack('bc0', "\9abc")"#),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
    }

    #[test]
    fn alignment() {
        assert_eq!(
            show("struct.pack('!4 b i', 1, 2)"),
            r#""\x01\x00\x00\x00\x02\x00\x00\x00""#
        );
        // `!` alone aligns to 8; alignment is capped by `!n`; chars are not aligned.
        assert_eq!(
            show("struct.size('! b d'), struct.size('!2 b i8'), struct.size('!8 b c3 h')"),
            "16 10 6"
        );
        assert_eq!(
            show("struct.pack('!4 b x h', 1, 2)"),
            r#""\x01\x00\x02\x00""#
        );
        // A 3-byte integer is aligned with C's formula for powers of two.
        assert_eq!(
            show("struct.pack('!8 b i3', 1, 2)"),
            r#""\x01\x00\x00\x02\x00\x00""#
        );
        // Offsets are aligned from the start of the string, not from `init`.
        let packed = "struct.pack('!4 b i', 1, 2)";
        assert_eq!(
            show(&format!("struct.unpack('!4 b i', 'zzz' .. {packed}, 4)")),
            "1 33554432 9"
        );
        assert_eq!(
            error("struct.pack('!3')"),
            "user_script:1: alignment 3 is not a power of 2"
        );
        assert_eq!(
            error("struct.size('!0')"),
            "user_script:1: alignment 0 is not a power of 2"
        );
    }

    #[test]
    fn unpack_positions() {
        assert_eq!(show("struct.unpack('b', 'abc', 3)"), "99 4");
        assert_eq!(show("struct.unpack('b', 'abc', nil)"), "97 2");
        assert_eq!(
            show("struct.unpack('b', 'abc', 2.9), struct.unpack('b', 'abc', '2')"),
            "98 98 3"
        );
        assert_eq!(show("struct.unpack('', 'abc', 10)"), "10");
        // C's size_t arithmetic: -1 wraps around, and back.
        assert_eq!(show("struct.unpack('', 'abc', -1)"), "-1");
        assert_eq!(
            error("struct.unpack('b', 'abc', 4)"),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
        assert_eq!(
            error("struct.unpack('<', 'abc', 5)"),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
        assert_eq!(
            error("struct.unpack('b', 'abc', -1)"),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
        assert_eq!(
            error("struct.unpack('b', 'abc', 0)"),
            "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)"
        );
        assert_eq!(
            error("struct.unpack('b', 'abc', 0.5)"),
            "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)"
        );
    }

    #[test]
    fn size_ignores_letters_and_digits_that_are_not_options() {
        assert_eq!(
            show("struct.size('b5z'), struct.size('c10'), struct.size('')"),
            "1 10 0"
        );
        assert_eq!(
            error("struct.pack('b5', 1)"),
            "user_script:1: bad argument #1 to 'pack' (invalid format option '5')"
        );
        assert_eq!(
            error("struct.size('b?')"),
            "user_script:1: bad argument #1 to 'size' (invalid format option '?')"
        );
        assert_eq!(
            error("struct.size('s')"),
            "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)"
        );
        assert_eq!(
            error("struct.size('c0')"),
            "user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)"
        );
    }

    #[test]
    fn format_errors() {
        // `=` is not an option of this version of the library.
        assert_eq!(
            error("struct.pack('=i', 1)"),
            "user_script:1: bad argument #1 to 'pack' (invalid format option '=')"
        );
        assert_eq!(
            error("struct.unpack('y', 'a')"),
            "user_script:1: bad argument #1 to 'unpack' (invalid format option 'y')"
        );
        // C puts the raw byte in the message; a Rust string cannot hold it.
        assert_eq!(
            error(r#"struct.pack("\255")"#),
            "user_script:1: bad argument #1 to 'pack' (invalid format option '\u{fffd}')"
        );
        assert_eq!(
            error("struct.pack('i33', 1)"),
            "user_script:1: integral size 33 is larger than limit of 32"
        );
        assert_eq!(show("#struct.pack('I32', 1)"), "32");
        assert_eq!(
            error("struct.size('i2147483647')"),
            "user_script:1: integral size 2147483647 is larger than limit of 32"
        );
        assert_eq!(
            error("struct.size('c2147483648')"),
            "user_script:1: integral size overflow"
        );
        assert_eq!(
            error("struct.unpack('s', 'abc')"),
            "user_script:1: unfinished string in data"
        );
    }

    #[test]
    fn formats_end_at_nul() {
        assert_eq!(
            show(r#"struct.unpack("i\0garbage", "abcd")"#),
            "1684234849 5"
        );
        assert_eq!(show(r#"struct.size("i\0zzz")"#), "4");
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            error("struct.pack({})"),
            "user_script:1: bad argument #1 to 'pack' (string expected, got table)"
        );
        assert_eq!(
            error("struct.size()"),
            "user_script:1: bad argument #1 to 'size' (string expected, got no value)"
        );
        assert_eq!(
            error("struct.unpack('b')"),
            "user_script:1: bad argument #2 to 'unpack' (string expected, got no value)"
        );
        assert_eq!(
            error("struct.unpack('b', 'a', false)"),
            "user_script:1: bad argument #3 to 'unpack' (number expected, got boolean)"
        );
        assert_eq!(
            error("struct.pack('i', 'z')"),
            "user_script:1: bad argument #2 to 'pack' (number expected, got string)"
        );
        // pack reports a missing value as nil, as C does.
        assert_eq!(
            error("struct.pack('ii', 1)"),
            "user_script:1: bad argument #3 to 'pack' (number expected, got nil)"
        );
        assert_eq!(
            error("struct.pack('bs', 1)"),
            "user_script:1: bad argument #3 to 'pack' (string expected, got nil)"
        );
        // lstruct names the argument after the short string.
        assert_eq!(
            error("struct.pack('c5', 'ab')"),
            "user_script:1: bad argument #3 to 'pack' (string too short)"
        );
        assert_eq!(
            error("local p = struct.pack\np('c5', 'ab')"),
            "user_script:2: bad argument #3 to 'p' (string too short)"
        );
    }

    #[test]
    fn huge_counts_are_checked_before_allocating() {
        assert_eq!(
            error("struct.pack('c2147483647', 'x')"),
            "user_script:1: bad argument #3 to 'pack' (string too short)"
        );
        assert_eq!(
            error("struct.unpack('c2147483647', 'x')"),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
        assert_eq!(show("struct.size('c2147483647c2147483647')"), "4294967294");
        assert_eq!(show("struct.size('!1073741824 b d')"), "16");
    }

    #[test]
    fn unpack_results_are_limited_by_the_lua_stack() {
        assert_eq!(
            show("select('#', struct.unpack(('b'):rep(7900), ('a'):rep(8000)))"),
            "7901"
        );
        assert_eq!(
            error("struct.unpack(('b'):rep(8000), ('a'):rep(8000))"),
            "user_script:1: stack overflow (too many results)"
        );
        // Padding yields no values, so it is not limited.
        assert_eq!(
            show("struct.unpack(('x'):rep(9000), ('a'):rep(9000))"),
            "9001"
        );
    }
}
