//! The `bit` library Redis gives Lua scripts: LuaBitOp 1.0.2's 32-bit operations.
//!
//! Every argument is normalised to 32 bits the way LuaBitOp does it on Lua 5.1: the number
//! (or numeric string) plus 2^52 + 2^51 has the value modulo 2^32, rounded to nearest-even,
//! in the low 32 bits of its mantissa. Results are signed 32-bit integers as Lua numbers.

use super::type_error;
use mlua::{Lua, MultiValue, Result};

/// An operation on one 32-bit value.
type Unary = fn(u32) -> u32;
/// An operation on a 32-bit value and a second one (another value or a shift count).
type Binary = fn(u32, u32) -> u32;

/// Registers the global table `bit` with `tobit`, `tohex`, `bnot`, `band`, `bor`, `bxor`,
/// `lshift`, `rshift`, `arshift`, `rol`, `ror` and `bswap`.
///
/// Bad arguments raise `mlua::Error::RuntimeError` with the text Lua's `luaL_argerror`
/// would produce, e.g. `user_script:1: bad argument #1 to 'band' (number expected, got nil)`.
pub fn register(lua: &Lua) -> Result<()> {
    let bit = lua.create_table()?;

    let unary: [(&str, Unary); 3] = [
        ("tobit", |b| b),
        ("bnot", |b| !b),
        ("bswap", u32::swap_bytes),
    ];
    for (name, op) in unary {
        let f =
            lua.create_function(move |lua, args: MultiValue| Ok(result(op(arg(lua, &args, 1)?))))?;
        bit.set(name, f)?;
    }

    let folds: [(&str, Binary); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        let f = lua.create_function(move |lua, args: MultiValue| {
            // LuaBitOp converts the first argument, then the others from the last one down;
            // the order decides which bad argument is reported.
            let first = arg(lua, &args, 1)?;
            let folded = (2..=args.len())
                .rev()
                .try_fold(first, |acc, n| arg(lua, &args, n).map(|b| op(acc, b)))?;
            Ok(result(folded))
        })?;
        bit.set(name, f)?;
    }

    let shifts: [(&str, Binary); 5] = [
        ("lshift", |b, n| b << n),
        ("rshift", |b, n| b >> n),
        ("arshift", |b, n| ((b as i32) >> n) as u32),
        ("rol", u32::rotate_left),
        ("ror", u32::rotate_right),
    ];
    for (name, op) in shifts {
        let f = lua.create_function(move |lua, args: MultiValue| {
            let b = arg(lua, &args, 1)?;
            // Only the low 5 bits of the count matter, so every count is a valid shift.
            let n = arg(lua, &args, 2)? & 31;
            Ok(result(op(b, n)))
        })?;
        bit.set(name, f)?;
    }

    bit.set("tohex", lua.create_function(tohex)?)?;
    lua.globals().set("bit", bit)
}

/// `bit.tohex(x [, n])`: the low `|n|` (at most 8, default 8) hex digits of `x`, upper case
/// when `n` is negative.
fn tohex(lua: &Lua, args: MultiValue) -> Result<String> {
    let b = arg(lua, &args, 1)?;
    // The default applies only when `n` is absent: an explicit nil is a bad argument.
    let n = if args.len() < 2 {
        8
    } else {
        arg(lua, &args, 2)? as i32
    };
    let digits = if n < 0 {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    // `unsigned_abs` copes with i32::MIN, which LuaBitOp clamps before negating.
    let width = n.unsigned_abs().min(8);
    Ok((0..width)
        .rev()
        .map(|i| char::from(digits[((b >> (4 * i)) & 15) as usize]))
        .collect())
}

/// Argument `n` (1-based) as 32 bits; like `lua_tonumber`, numeric strings are accepted.
fn arg(lua: &Lua, args: &MultiValue, n: usize) -> Result<u32> {
    let value = args.get(n - 1);
    let number = match value {
        Some(value) => lua.coerce_number(value.clone())?,
        None => None,
    };
    match number {
        // The sum's low 32 bits of mantissa are the value modulo 2^32 (LuaBitOp's trick).
        Some(x) => Ok((x + 6_755_399_441_055_744.0).to_bits() as u32),
        None => Err(type_error(lua, n, "number", value)),
    }
}

/// Lua's view of `bits`: a signed 32-bit integer.
fn result(bits: u32) -> f64 {
    f64::from(bits as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Error;

    /// A Lua state with `bit` registered.
    fn lua() -> Lua {
        let lua = Lua::new();
        register(&lua).unwrap();
        lua
    }

    /// The numbers the expression `src` evaluates to.
    fn numbers(src: &str) -> Vec<f64> {
        let values: mlua::Variadic<f64> = lua().load(format!("return {src}")).eval().unwrap();
        values.to_vec()
    }

    fn string(src: &str) -> String {
        lua().load(format!("return {src}")).eval().unwrap()
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
    fn tobit_wraps_modulo_2_32_into_signed_range() {
        assert_eq!(
            numbers("bit.tobit(0), bit.tobit(2^32), bit.tobit(2^31), bit.tobit(-1), bit.tobit(0xffffffff)"),
            [0.0, 0.0, -2147483648.0, -1.0, -1.0]
        );
        assert_eq!(
            numbers(
                "bit.tobit(-2^31 - 1), bit.tobit(2^40 + 5), bit.tobit(2^52 + 3), bit.tobit(1e300)"
            ),
            [2147483647.0, 5.0, 2.0, -2013235812.0]
        );
    }

    #[test]
    fn tobit_rounds_fractions_to_nearest_even() {
        assert_eq!(
            numbers(
                "bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-2.5), bit.tobit(0.4), bit.tobit(-0.6)"
            ),
            [2.0, 2.0, -2.0, 0.0, -1.0]
        );
    }

    #[test]
    fn infinities_and_nan_become_zero() {
        assert_eq!(
            numbers("bit.tobit(1/0), bit.tobit(-1/0), bit.tobit(0/0)"),
            [0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn numeric_strings_are_numbers() {
        assert_eq!(
            numbers(
                r#"bit.tobit("0x10"), bit.tobit(" 12 "), bit.tobit("1e3"), bit.band(7, 14, "12")"#
            ),
            [16.0, 12.0, 1000.0, 4.0]
        );
    }

    #[test]
    fn results_are_numbers() {
        assert_eq!(string("type(bit.bor(1, 2))"), "number");
    }

    #[test]
    fn bnot_and_bswap() {
        assert_eq!(
            numbers("bit.bnot(0), bit.bnot(-1), bit.bnot(0x0f0f0f0f), bit.bswap(0x12345678), bit.bswap(0xff)"),
            [-1.0, 0.0, -252645136.0, 2018915346.0, -16777216.0]
        );
    }

    #[test]
    fn band_bor_bxor_take_any_number_of_arguments() {
        assert_eq!(
            numbers("bit.band(0xff0, 0x0ff), bit.band(-1), bit.bor(1, 2, 4, 8), bit.bxor(0xff, 0x0f, 0xf0), bit.bxor(-1, 1)"),
            [240.0, -1.0, 15.0, 0.0, -2.0]
        );
    }

    #[test]
    fn shifts_use_the_low_five_bits_of_the_count() {
        assert_eq!(
            numbers("bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, -1), bit.lshift(3, 33)"),
            [-2147483648.0, 1.0, -2147483648.0, 6.0]
        );
        assert_eq!(
            numbers("bit.rshift(-1, 28), bit.rshift(-1, 0), bit.arshift(-256, 4), bit.arshift(256, 4), bit.arshift(-1, 31)"),
            [15.0, -1.0, -16.0, 16.0, -1.0]
        );
    }

    #[test]
    fn rotations() {
        assert_eq!(
            numbers("bit.rol(0x12345678, 4), bit.rol(0x12345678, 0), bit.rol(0x12345678, 36), bit.ror(0x12345678, 4), bit.ror(1, 1)"),
            [591751041.0, 305419896.0, 591751041.0, -2128394905.0, -2147483648.0]
        );
    }

    #[test]
    fn tohex_width_and_case() {
        assert_eq!(string("bit.tohex(65535)"), "0000ffff");
        assert_eq!(string("bit.tohex(-1)"), "ffffffff");
        assert_eq!(string("bit.tohex(0x1234abcd, -4)"), "ABCD");
        assert_eq!(string("bit.tohex(0x1234abcd, 2)"), "cd");
        assert_eq!(string("bit.tohex(0x1234abcd, 20)"), "1234abcd");
        assert_eq!(string("bit.tohex(7, 0)"), "");
        // The width is normalised like any argument: -2^31 stays negative, -2^32 + 3 is 3.
        assert_eq!(string("bit.tohex(-1, -2^31)"), "FFFFFFFF");
        assert_eq!(string("bit.tohex(0xabc, -2^32 + 3)"), "abc");
    }

    #[test]
    fn missing_and_wrong_arguments() {
        assert_eq!(
            error("bit.band()"),
            "user_script:1: bad argument #1 to 'band' (number expected, got no value)"
        );
        assert_eq!(
            error("\nbit.tobit(nil)"),
            "user_script:2: bad argument #1 to 'tobit' (number expected, got nil)"
        );
        assert_eq!(
            error("bit.lshift(1)"),
            "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)"
        );
        assert_eq!(
            error("bit.bnot('abc')"),
            "user_script:1: bad argument #1 to 'bnot' (number expected, got string)"
        );
        assert_eq!(
            error("bit.bswap(true)"),
            "user_script:1: bad argument #1 to 'bswap' (number expected, got boolean)"
        );
        assert_eq!(
            error("bit.tohex(1, nil)"),
            "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)"
        );
    }

    #[test]
    fn variadic_arguments_are_checked_from_the_last() {
        assert_eq!(
            error("bit.bor(1, {}, print)"),
            "user_script:1: bad argument #3 to 'bor' (number expected, got function)"
        );
        assert_eq!(
            error("bit.bxor({}, nil)"),
            "user_script:1: bad argument #1 to 'bxor' (number expected, got table)"
        );
    }

    #[test]
    fn errors_name_the_function_as_called() {
        assert_eq!(
            error("local f = bit.rol\nf(1, nil)"),
            "user_script:2: bad argument #2 to 'f' (number expected, got nil)"
        );
        // In a method call the table is `self`, which Lua reports specially.
        assert_eq!(
            error("bit:tobit()"),
            "user_script:1: calling 'tobit' on bad self (number expected, got table)"
        );
        assert_eq!(
            error("local t = { f = bit.band }\nt:f(1, 'x')"),
            "user_script:2: calling 'f' on bad self (number expected, got table)"
        );
        // Called from Rust there is no name and no calling line.
        let lua = lua();
        let band: mlua::Function = lua.load("bit.band").eval().unwrap();
        match band.call::<f64>(()) {
            Err(Error::CallbackError { cause, .. }) => assert_eq!(
                cause.to_string(),
                "runtime error: bad argument #1 to '?' (number expected, got no value)"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn extra_arguments_are_ignored() {
        assert_eq!(
            numbers("bit.tobit(5, {}), bit.lshift(1, 2, 'x')"),
            [5.0, 4.0]
        );
    }
}
