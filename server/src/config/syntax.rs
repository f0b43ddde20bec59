//! How each kind of setting is written. A setting's syntax is its one parser and
//! validator, shared by the file, the flags and `CONFIG SET`, with Redis's reasons
//! for refusals; it also gives the text `CONFIG GET` shows and the form the
//! example file writes.

use std::fmt::Display;
use std::net::IpAddr;

use clap::ValueEnum;

use super::MemSize;
use crate::protocol::number::parse_i64;

/// How a setting's values are written.
pub(super) trait Syntax<T> {
    /// Reads `text`, given as `CONFIG SET`, a flag or the file gives it. `current`
    /// is the value it replaces, for settings that change only what they name.
    fn parse(&self, text: &str, current: &T) -> Result<T, String>;

    /// The text `CONFIG GET` shows (and `parse` reads back).
    fn show(&self, value: &T) -> String;

    /// The value as the settings file writes it.
    fn to_file(&self, value: &T) -> toml::Value {
        toml::Value::String(self.show(value))
    }

    /// How flags take the value.
    fn shape(&self) -> Shape {
        Shape {
            hint: "VALUE",
            list: false,
        }
    }
}

/// How a flag takes a value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// The placeholder in `--help`.
    pub hint: &'static str,
    /// Several words (`--bind a b`), and a TOML array in the file.
    pub list: bool,
}

fn between(min: impl Display, max: impl Display) -> String {
    format!("argument must be between {min} and {max} inclusive")
}

/// `yes` or `no` (any case); TOML's `true` and `false` in the file.
pub(super) struct YesNo;

impl Syntax<bool> for YesNo {
    fn parse(&self, text: &str, _: &bool) -> Result<bool, String> {
        match text.to_ascii_lowercase().as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err("argument must be 'yes' or 'no'".to_string()),
        }
    }

    fn show(&self, value: &bool) -> String {
        if *value { "yes" } else { "no" }.to_string()
    }

    fn to_file(&self, value: &bool) -> toml::Value {
        toml::Value::Boolean(*value)
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "yes|no",
            list: false,
        }
    }
}

/// An integer within `min..=max`, read as Redis reads one: no sign but minus,
/// no spaces, no leading zero.
pub(super) struct Int {
    min: i64,
    max: i64,
}

/// An integer within `min..=max`.
pub(super) const fn int(min: i64, max: i64) -> Int {
    Int { min, max }
}

impl<T> Syntax<T> for Int
where
    T: Copy + Display + TryFrom<i64>,
    i64: TryFrom<T>,
{
    fn parse(&self, text: &str, _: &T) -> Result<T, String> {
        let n = parse_i64(text.as_bytes())
            .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
        if !(self.min..=self.max).contains(&n) {
            return Err(between(self.min, self.max));
        }
        T::try_from(n).map_err(|_| between(self.min, self.max))
    }

    fn show(&self, value: &T) -> String {
        value.to_string()
    }

    fn to_file(&self, value: &T) -> toml::Value {
        i64::try_from(*value).map_or_else(
            |_| toml::Value::String(self.show(value)),
            toml::Value::Integer,
        )
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "N",
            list: false,
        }
    }
}

/// A size with an optional unit (`4kb`, `512mb`) within `min..=max` bytes.
pub(super) struct Size {
    min: u64,
    max: u64,
}

/// A size within `min..=max` bytes.
pub(super) const fn size(min: u64, max: u64) -> Size {
    Size { min, max }
}

impl Syntax<MemSize> for Size {
    fn parse(&self, text: &str, _: &MemSize) -> Result<MemSize, String> {
        let size: MemSize = text
            .parse()
            .map_err(|_| "argument must be a memory value".to_string())?;
        if !(self.min..=self.max).contains(&size.0) {
            return Err(between(self.min, self.max));
        }
        Ok(size)
    }

    fn show(&self, value: &MemSize) -> String {
        value.to_string()
    }

    fn to_file(&self, value: &MemSize) -> toml::Value {
        let text = value.with_unit();
        text.parse()
            .map_or(toml::Value::String(text), toml::Value::Integer)
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "BYTES",
            list: false,
        }
    }
}

/// One of an enum's names (any case), as its [`ValueEnum`] spells them.
pub(super) struct Choice;

impl<T: ValueEnum + Clone> Syntax<T> for Choice {
    fn parse(&self, text: &str, _: &T) -> Result<T, String> {
        T::from_str(text, true).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|p| p.get_name().to_string())
                .collect();
            format!(
                "argument(s) must be one of the following: {}",
                names.join(", ")
            )
        })
    }

    fn show(&self, value: &T) -> String {
        value
            .to_possible_value()
            .map(|p| p.get_name().to_string())
            .unwrap_or_default()
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "NAME",
            list: false,
        }
    }
}

/// Any text.
pub(super) struct Text;

impl Syntax<String> for Text {
    fn parse(&self, text: &str, _: &String) -> Result<String, String> {
        Ok(text.to_string())
    }

    fn show(&self, value: &String) -> String {
        value.clone()
    }
}

/// A password; empty means none, as in Redis.
pub(super) struct Password;

impl Syntax<Option<String>> for Password {
    fn parse(&self, text: &str, _: &Option<String>) -> Result<Option<String>, String> {
        Ok((!text.is_empty()).then(|| text.to_string()))
    }

    fn show(&self, value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
}

/// A master to replicate, `host port`; empty means none.
pub(super) struct HostPort;

impl Syntax<Option<String>> for HostPort {
    fn parse(&self, text: &str, _: &Option<String>) -> Result<Option<String>, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [] => Ok(None),
            [host, port] if port.parse::<u16>().is_ok() => Ok(Some(format!("{host} {port}"))),
            _ => Err("expected '<host> <port>'".to_string()),
        }
    }

    fn show(&self, value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "HOST PORT",
            list: true,
        }
    }
}

/// One or more IP addresses, separated by spaces.
pub(super) struct Ips;

impl Syntax<Vec<String>> for Ips {
    fn parse(&self, text: &str, _: &Vec<String>) -> Result<Vec<String>, String> {
        let addrs: Vec<String> = text.split_whitespace().map(String::from).collect();
        if addrs.is_empty() {
            return Err("at least one address is needed".to_string());
        }
        match addrs.iter().find(|a| a.parse::<IpAddr>().is_err()) {
            Some(bad) => Err(format!("'{bad}' is not an IP address")),
            None => Ok(addrs),
        }
    }

    fn show(&self, value: &Vec<String>) -> String {
        value.join(" ")
    }

    fn to_file(&self, value: &Vec<String>) -> toml::Value {
        toml::Value::Array(value.iter().cloned().map(toml::Value::String).collect())
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "ADDR",
            list: true,
        }
    }
}

/// Keyspace event classes in Redis's letters (`Ex`, `KEA`), as
/// [`crate::notify`] flags.
pub(super) struct Events;

impl Syntax<u32> for Events {
    fn parse(&self, text: &str, _: &u32) -> Result<u32, String> {
        crate::notify::parse_flags(text)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())
    }

    fn show(&self, value: &u32) -> String {
        crate::notify::format_flags(*value)
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "CLASSES",
            list: false,
        }
    }
}

/// A setting ringkv answers for tools but holds one value of only (`save ""`):
/// that value is accepted, any other refused for `reason`.
pub(super) struct Only {
    text: &'static str,
    reason: &'static str,
}

/// Only `text` is accepted; others are refused for `reason`.
pub(super) const fn only(text: &'static str, reason: &'static str) -> Only {
    Only { text, reason }
}

impl Syntax<()> for Only {
    fn parse(&self, text: &str, _: &()) -> Result<(), String> {
        if text.eq_ignore_ascii_case(self.text) {
            Ok(())
        } else {
            Err(self.reason.to_string())
        }
    }

    fn show(&self, _: &()) -> String {
        self.text.to_string()
    }

    fn to_file(&self, _: &()) -> toml::Value {
        self.text.parse().map_or(
            toml::Value::String(self.text.to_string()),
            toml::Value::Integer,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_as_redis_reads_them() {
        let syntax = int(-2, 10);
        let parse = |text: &str| Syntax::<i64>::parse(&syntax, text, &0);
        assert_eq!(parse("-2"), Ok(-2));
        assert_eq!(parse("10"), Ok(10));
        for bad in ["+1", "01", " 1", "1 ", "", "1.0", "-0"] {
            assert_eq!(
                parse(bad),
                Err("argument couldn't be parsed into an integer".to_string()),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse("11"),
            Err("argument must be between -2 and 10 inclusive".to_string())
        );
    }

    #[test]
    fn a_range_wider_than_the_type_is_refused_with_the_range() {
        let parse = |text: &str| Syntax::<u16>::parse(&int(0, 70_000), text, &0);
        assert_eq!(parse("65535"), Ok(65535));
        assert_eq!(
            parse("65536"),
            Err("argument must be between 0 and 70000 inclusive".to_string())
        );
    }
}
