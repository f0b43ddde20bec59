//! The settings file: TOML whose keys are the settings' names. A value is read as
//! the text `CONFIG SET` would be given (`true` as `yes`, `5` as `"5"`, an array
//! of a list's items as its words), then by the setting's own syntax, so the file
//! accepts exactly what `CONFIG SET` accepts. Writing goes the other way: the
//! example file and `--check-config` are rendered from the table.

use super::settings::{Config, SETTINGS};
use super::table::Setting;
use super::Refusal;

/// Why a settings file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not TOML.
    #[error(transparent)]
    Syntax(#[from] toml::de::Error),
    /// A key that names no setting.
    #[error("unknown field `{0}`")]
    Unknown(String),
    /// A value its setting refuses.
    #[error("{0}")]
    Refused(Refusal),
}

/// The settings `text` gives, each with its value as text (in key order: no
/// setting depends on another's being read first).
pub(super) fn entries(text: &str) -> Result<Vec<(&'static Setting, String)>, FileError> {
    let table: toml::Table = toml::from_str(text)?;
    let mut entries: Vec<(&'static Setting, String)> = Vec::with_capacity(table.len());
    for (key, value) in &table {
        let setting = Setting::find(key).ok_or_else(|| FileError::Unknown(key.clone()))?;
        let refused = |reason: &str| FileError::Refused(Refusal::new(key, reason));
        if entries.iter().any(|(s, _)| std::ptr::eq(*s, setting)) {
            return Err(refused("duplicate parameter"));
        }
        let text = as_text(value, (setting.shape)().list).map_err(refused)?;
        entries.push((setting, text));
    }
    Ok(entries)
}

/// A TOML value as the text `CONFIG SET` would be given.
fn as_text(value: &toml::Value, list: bool) -> Result<String, &'static str> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => if *b { "yes" } else { "no" }.to_string(),
        toml::Value::Array(items) if list => {
            let words: Option<Vec<&str>> = items.iter().map(toml::Value::as_str).collect();
            words.ok_or("argument must be a list of strings")?.join(" ")
        }
        toml::Value::Array(_) => return Err("argument must be one value, not a list"),
        toml::Value::Datetime(_) | toml::Value::Table(_) => {
            return Err("argument must be a string, a number or a boolean")
        }
    })
}

/// The opening comment of the example file.
const EXAMPLE_HEADER: &str = "\
# ringkv-server configuration. Every setting is optional; these are the defaults.
# Flags with the same names (e.g. --port 7000) override this file, and
# CONFIG SET takes the same values for the settings it may change.
# Sizes accept Redis units: 1k = 1000, 1kb = 1024, 1mb, 1gb, ...
# (Generated from server/src/config/settings.rs; a test keeps it in step.)
";

/// Every setting of `config` as the file writes it; with `docs`, each after its
/// doc text as a comment, under the example file's opening comment.
pub(super) fn render(config: &Config, docs: bool) -> String {
    let mut out = String::new();
    if docs {
        out.push_str(EXAMPLE_HEADER);
    }
    for setting in SETTINGS {
        if docs {
            out.push('\n');
            for line in setting.doc_lines() {
                out.push_str(format!("# {line}").trim_end());
                out.push('\n');
            }
            if !setting.aliases.is_empty() {
                out.push_str(&format!("# Also named {}.\n", setting.aliases.join(", ")));
            }
        }
        out.push_str(&format!(
            "{} = {}\n",
            setting.name,
            (setting.to_file)(config)
        ));
    }
    out
}
