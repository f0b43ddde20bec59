//! The machinery behind the settings table: [`settings!`] turns one declaration
//! per setting into the [`Config`] struct and its defaults, the live cells, and a
//! [`Setting`] descriptor that the file, the flags and `CONFIG GET/SET` all use.

use super::live::{Changed, LiveConfig};
use super::settings::{Cells, Config, SETTINGS};
use super::syntax::Shape;

/// What happens when `CONFIG SET` changes a setting, after its new value is in
/// place.
pub(super) type Hook = fn(&LiveConfig, &mut Changed);

/// One setting, as the table declares it.
pub(super) struct Setting {
    /// Redis's name (kebab-case), in the file, as a flag and in `CONFIG`.
    pub name: &'static str,
    /// Other names Redis accepts for it (`hash-max-ziplist-entries`).
    pub aliases: &'static [&'static str],
    /// What it means: the `--help` text and the example file's comment.
    pub doc: &'static str,
    /// Whether `CONFIG SET` may change it.
    pub mutable: bool,
    /// How flags take its value.
    pub shape: fn() -> Shape,
    /// Reads a value (the one validator) into a configuration.
    pub parse: fn(&mut Config, &str) -> Result<(), String>,
    /// Its value in a configuration, as the file writes it.
    pub to_file: fn(&Config) -> toml::Value,
    /// Its value while the server runs, as `CONFIG GET` shows it.
    pub get: fn(&Cells) -> String,
    /// Puts its value in a configuration into force.
    pub store: fn(&Cells, &Config),
    /// What else changing it at runtime does.
    pub then: Option<Hook>,
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Setting {
    /// The setting called `name` (or one of its aliases), in any case.
    pub(super) fn find(name: &str) -> Option<&'static Setting> {
        SETTINGS
            .iter()
            .find(|s| s.names().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// Its name, then its aliases.
    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// The doc text as plain lines.
    pub(super) fn doc_lines(&self) -> impl Iterator<Item = &'static str> {
        self.doc.lines().map(str::trim)
    }
}

/// Declares every setting once:
///
/// ```text
/// /// Doc text: the field's rustdoc, `--help` and the example file's comment.
/// field "redis-name" | "alias": Type = default;
///     syntax, runtime, then LiveConfig::hook;
/// ```
///
/// `syntax` is a [`Syntax<Type>`](super::syntax::Syntax): how values are read,
/// checked and shown. `runtime` settings can be changed by `CONFIG SET`
/// (optionally running a hook), `fixed` ones only at start. `Type` is
/// [`Stored`](super::cells::Stored): how the running server holds it.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident $name:literal $(| $alias:literal)* : $ty:ty = $default:expr;
            $syntax:expr, $mode:ident $(, then $hook:expr)?;
    )*) => {
        /// Every setting: the file, overridden by flags, checked. See each field
        /// (and `server/ringkv.example.toml`) for what it means.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $($(#[doc = $doc])+ pub $field: $ty,)*
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($field: $default,)*
                }
            }
        }

        /// Where the running server holds each setting.
        pub(super) struct Cells {
            $(pub(super) $field: <$ty as Stored>::Cell,)*
        }

        impl Cells {
            /// Cells holding `config`.
            pub(super) fn new(config: &Config) -> Cells {
                Cells {
                    $($field: Stored::cell(config.$field.clone()),)*
                }
            }

            /// The settings in force.
            pub(super) fn snapshot(&self) -> Config {
                Config {
                    $($field: Stored::load(&self.$field),)*
                }
            }
        }

        /// The table: every setting, in the order `CONFIG GET` and the example
        /// file list them.
        pub(super) const SETTINGS: &[Setting] = &[$(
            Setting {
                name: $name,
                aliases: &[$($alias),*],
                doc: concat!($($doc, "\n"),+),
                mutable: settings!(@mutable $mode),
                shape: || Syntax::<$ty>::shape(&$syntax),
                parse: |config, text| {
                    config.$field = Syntax::<$ty>::parse(&$syntax, text, &config.$field)?;
                    Ok(())
                },
                to_file: |config| Syntax::<$ty>::to_file(&$syntax, &config.$field),
                get: |cells| Syntax::<$ty>::show(&$syntax, &Stored::load(&cells.$field)),
                store: |cells, config| Stored::store(&cells.$field, config.$field.clone()),
                then: settings!(@hook $($hook)?),
            },
        )*];
    };
    (@mutable runtime) => { true };
    (@mutable fixed) => { false };
    (@hook) => { None };
    (@hook $hook:expr) => { Some($hook) };
}

pub(super) use settings;
