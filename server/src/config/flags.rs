//! Command-line flags: `--config`, `--check-config`, and one flag per setting of
//! the table, named as the setting (`--maxmemory 100mb`), that overrides the file.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::settings::SETTINGS;
use super::table::Setting;

/// The parsed command line.
#[derive(Debug)]
pub struct Cli {
    /// TOML configuration file.
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it, and exit.
    pub check_config: bool,
    /// The settings given as flags, with their values as text (a list's words
    /// joined by spaces).
    pub(super) settings: Vec<(&'static Setting, String)>,
}

impl Cli {
    /// Parses the process's arguments; prints help, the version or the error and
    /// exits when that is what they ask for or they do not parse.
    pub fn parse() -> Cli {
        Cli::from_matches(&command().get_matches())
    }

    /// Parses `args` (the first is the program name), exiting as [`Cli::parse`].
    pub fn parse_from<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(args).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first is the program name).
    pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Ok(Cli::from_matches(&command().try_get_matches_from(args)?))
    }

    fn from_matches(matches: &ArgMatches) -> Cli {
        let settings = SETTINGS
            .iter()
            .filter_map(|setting| {
                let words: Vec<&str> = matches
                    .get_many::<String>(setting.name)?
                    .map(String::as_str)
                    .collect();
                Some((setting, words.join(" ")))
            })
            .collect();
        Cli {
            config: matches.get_one::<PathBuf>("config").cloned(),
            check_config: matches.get_flag("check-config"),
            settings,
        }
    }
}

/// The flags, generated from the settings table.
fn command() -> Command {
    let command = Command::new("ringkv-server")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A Redis-protocol cache and lock server")
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML configuration file (see ringkv.example.toml)"),
        )
        .arg(
            Arg::new("check-config")
                .long("check-config")
                .action(ArgAction::SetTrue)
                .help("Validate the configuration, print it, and exit"),
        );
    SETTINGS.iter().fold(command, |command, setting| {
        let shape = (setting.shape)();
        let arg = Arg::new(setting.name)
            .long(setting.name)
            .visible_aliases(setting.aliases)
            .value_name(shape.hint)
            .help(setting.doc_lines().next().unwrap_or_default())
            .long_help(setting.doc_lines().collect::<Vec<_>>().join("\n"));
        // A list takes words up to the next flag, and more from each repeat; a
        // single value may look like a flag (`--list-max-listpack-size -2`).
        command.arg(if shape.list {
            arg.num_args(1..).action(ArgAction::Append)
        } else {
            arg.num_args(1).allow_hyphen_values(true)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_the_settings_names_and_aliases() {
        let cli = Cli::parse_from([
            "ringkv-server",
            "--bind",
            "127.0.0.1",
            "::1",
            "--list-max-ziplist-size",
            "-3",
            "--bind",
            "::2",
            "--port",
            "7000",
        ]);
        let given: Vec<(&str, &str)> = cli
            .settings
            .iter()
            .map(|(s, v)| (s.name, v.as_str()))
            .collect();
        assert_eq!(
            given,
            [
                ("bind", "127.0.0.1 ::1 ::2"),
                ("port", "7000"),
                ("list-max-listpack-size", "-3")
            ]
        );
    }

    #[test]
    fn a_setting_given_twice_is_an_error() {
        assert!(Cli::try_parse_from(["ringkv-server", "--port", "1", "--port", "2"]).is_err());
        assert!(Cli::try_parse_from([
            "ringkv-server",
            "--hash-max-ziplist-entries",
            "1",
            "--hash-max-listpack-entries",
            "2"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["ringkv-server", "--nope", "1"]).is_err());
    }

    #[test]
    fn the_flags_are_consistent() {
        command().debug_assert();
    }
}
