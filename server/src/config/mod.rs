//! Server configuration: a TOML file and command-line flags (flags win), merged once
//! at start, checked, then held in [`LiveConfig`] where `CONFIG SET` can change
//! what may change at runtime.
//!
//! Every setting is declared once, in the table in `settings.rs`: its name
//! (Redis's, wherever Redis has the setting), type, default, syntax, whether
//! `CONFIG SET` may change it and what that does, and its doc text. The file
//! (`file.rs`), the flags (`flags.rs`), `CONFIG GET/SET` (`live.rs`) and the
//! example file are derived from it, so they accept the same values and refuse
//! the same ones, for the same (Redis's) reasons.
//! Uses the types of the settings it holds (keyspace encodings, eviction
//! policy, notification flags, cluster members) and the protocol.

mod cells;
mod file;
mod flags;
mod live;
mod output_limits;
mod settings;
mod syntax;
mod table;
mod units;

use std::path::{Path, PathBuf};

pub use crate::eviction::Policy;
pub use file::FileError;
pub use flags::Cli;
pub use live::{Changed, ConfigSetError, LiveConfig, LockSettings, LogLevelHook, ReplSettings};
pub use output_limits::ClientClass;
pub use settings::Config;
pub use units::MemSize;

use settings::check_together;
use table::Setting;

/// Log verbosity, with Redis's level names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Everything, for development.
    Debug,
    /// Many rarely useful details.
    Verbose,
    /// What a production log wants (the default).
    Notice,
    /// Only warnings and errors.
    Warning,
    /// Nothing.
    Nothing,
}

/// Who may run `DEBUG` (Redis's `enable-debug-command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DebugAccess {
    /// Nobody (the default).
    No,
    /// Every client.
    Yes,
    /// Clients on loopback only.
    Local,
}

/// A value refused for a setting, with the reason (Redis's text where Redis has
/// one): the same from the file, a flag or `CONFIG SET`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{name}' - {reason}")]
pub struct Refusal {
    /// The setting, as it was named.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl Refusal {
    fn new(name: &str, reason: &str) -> Refusal {
        Refusal {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, names an unknown setting or holds a refused
    /// value.
    #[error("invalid config file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: FileError,
    },
    /// A flag's value is refused.
    #[error("invalid flag --{}: {}", .0.name, .0.reason)]
    Flag(Refusal),
    /// Settings that do not go together.
    #[error("invalid configuration: {0}")]
    Invalid(Refusal),
}

impl Config {
    /// The defaults overridden by the settings in TOML `text`, checked.
    pub fn from_toml(text: &str) -> Result<Config, FileError> {
        let mut config = Config::default();
        let given = config
            .apply(&file::entries(text)?)
            .map_err(FileError::Refused)?;
        check_together(&config, &given).map_err(FileError::Refused)?;
        Ok(config)
    }

    /// Reads a TOML settings file (over the defaults), checked.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::from_toml(&read(path)?).map_err(|source| ConfigError::File {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The file named by `--config` (or defaults), overridden by the other flags,
    /// then checked as a whole.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut given = Vec::new();
        if let Some(path) = &cli.config {
            let in_file = |source| ConfigError::File {
                path: path.clone(),
                source,
            };
            let entries = file::entries(&read(path)?).map_err(in_file)?;
            given = config
                .apply(&entries)
                .map_err(|r| in_file(FileError::Refused(r)))?;
        }
        given.extend(config.apply(&cli.settings).map_err(ConfigError::Flag)?);
        check_together(&config, &given).map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Reads each of `entries` into this configuration, in order; returns the
    /// names of the settings given.
    fn apply(
        &mut self,
        entries: &[(&'static Setting, String)],
    ) -> Result<Vec<&'static str>, Refusal> {
        for (setting, text) in entries {
            (setting.parse)(self, text).map_err(|reason| Refusal::new(setting.name, &reason))?;
        }
        Ok(entries.iter().map(|(setting, _)| setting.name).collect())
    }

    /// Every setting as the file writes it (`--check-config` prints this).
    pub fn to_toml(&self) -> String {
        file::render(self, false)
    }

    /// Worker threads to start. By default one per CPU but one, at least one: the
    /// spare core runs the kernel's network processing and whatever shares the
    /// machine (Redis gives the same advice for its I/O threads).
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }
            n => n,
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("ringkv-server").chain(args.iter().copied()))
    }

    #[test]
    fn the_example_config_holds_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ringkv.example.toml");
        assert_eq!(Config::from_file(&path).unwrap(), Config::default());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("ringkv-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "port = 7000\ntimeout = 5\nproto-max-bulk-len = \"2mb\"\n",
        )
        .unwrap();
        let config = Config::load(&cli(&[
            "--config",
            path.to_str().unwrap(),
            "--port",
            "7001",
            "--tcp-backlog",
            "1024",
        ]))
        .unwrap();
        assert_eq!(config.port, 7001);
        assert_eq!(config.tcp_backlog, 1024);
        assert_eq!(config.timeout, 5);
        assert_eq!(config.proto_max_bulk_len, MemSize(2 << 20));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_toml("prot = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn inconsistent_limits_are_refused() {
        assert!(Config::load(&cli(&["--proto-max-bulk-len", "100"])).is_err());
        assert!(Config::load(&cli(&["--proto-max-bulk-len", "2gb"])).is_err());
        assert!(Config::load(&cli(&["--maxclients", "0"])).is_err());
        assert!(Config::load(&cli(&["--tcp-backlog", "2147483648"])).is_err());
        assert!(Config::load(&cli(&["--bind", "localhost"])).is_err());
        assert!(Config::load(&cli(&["--notify-keyspace-events", "Eq"])).is_err());
        assert!(Config::load(&cli(&["--client-output-buffer-limit", "pubsub 1mb"])).is_err());
        assert!(Config::load(&cli(&["--maxmemory-samples", "0"])).is_err());
        assert!(Config::load(&cli(&["--maxmemory-policy", "lru"])).is_err());
        let policy = Config::load(&cli(&["--maxmemory-policy", "ALLKEYS-TINYLFU"])).unwrap();
        assert_eq!(policy.maxmemory_policy, Policy::AllkeysTinylfu);
    }

    #[test]
    fn events_and_output_limits_reach_the_live_config() {
        let config = Config::load(&cli(&[
            "--notify-keyspace-events",
            "Ex",
            "--client-output-buffer-limit",
            "pubsub 2mb 1mb 5",
        ]))
        .unwrap();
        let live = LiveConfig::new(&config, None);
        let get = |name: &[u8]| live.get(&[name])[0].1.clone();
        assert_eq!(get(b"notify-keyspace-events"), "xE");
        assert!(get(b"client-output-buffer-limit").ends_with("pubsub 2097152 1048576 5"));
        // Naming only another class leaves the pub/sub limits alone.
        live.set(&[(b"client-output-buffer-limit", b"normal 1mb 512kb 3")])
            .unwrap();
        let pubsub = live.output_limit(ClientClass::Pubsub);
        assert_eq!(
            (pubsub.hard, pubsub.soft, pubsub.soft_seconds),
            (2 << 20, 1 << 20, 5)
        );
        let normal = live.output_limit(ClientClass::Normal);
        assert_eq!(
            (normal.hard, normal.soft, normal.soft_seconds),
            (1 << 20, 512 << 10, 3)
        );
        assert_eq!(
            get(b"client-output-buffer-limit"),
            "normal 1048576 524288 3 slave 268435456 67108864 60 pubsub 2097152 1048576 5"
        );
    }

    #[test]
    fn redis_style_flags_parse() {
        let config = Config::load(&cli(&[
            "--protected-mode",
            "no",
            "--loglevel",
            "WARNING",
            "--bind",
            "127.0.0.1 ::1",
        ]))
        .unwrap();
        assert!(!config.protected_mode);
        assert_eq!(config.loglevel, LogLevel::Warning);
        assert_eq!(config.bind, ["127.0.0.1", "::1"]);
    }
}
