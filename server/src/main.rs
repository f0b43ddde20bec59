//! The `ringkv-server` binary: parse configuration, set up logging, run until a
//! signal or `SHUTDOWN`.

use std::process::ExitCode;

use ringkv_server::config::{Cli, Config, LogLevel};
use ringkv_server::memory::Counting;
use ringkv_server::Server;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

// jemalloc: fast and low fragmentation; counted so the memory limit is cheap to check.
#[global_allocator]
static GLOBAL: Counting<tikv_jemallocator::Jemalloc> = Counting(tikv_jemallocator::Jemalloc);

/// jemalloc's start-up options, read before `main`. One arena: active
/// defragmentation moves tables into the fullest slabs of the arena it runs in,
/// which only compacts the data if that is where the data lives (with an arena
/// per thread it moves everything into the cron thread's arena instead), and
/// the worker threads' caches keep the shared arena's lock off the hot path.
/// A background thread returns freed pages to the kernel while the server is
/// idle, as Redis's `jemalloc-bg-thread yes`.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 33] = b"narenas:1,background_thread:true\0";

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::TRACE,
        LogLevel::Verbose => LevelFilter::DEBUG,
        LogLevel::Notice => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Nothing => LevelFilter::OFF,
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, only SHUTDOWN stops the server.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn main() -> ExitCode {
    ringkv_server::memory::return_huge_blocks_at_once();
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ringkv-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let (filter, reload_handle) = reload::Layer::new(level_filter(config.loglevel));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        )
        .init();
    let on_loglevel = Box::new(move |level| {
        let _ = reload_handle.modify(|f| *f = level_filter(level));
    });
    // This runtime only accepts connections, runs the cron and waits for signals;
    // clients are served by the server's worker threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("ringkv-server: cannot start runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match Server::bind(&config, Some(on_loglevel)).await {
            Ok(server) => server,
            Err(err) => {
                tracing::error!(%err, bind = ?config.bind, port = config.port, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            threads = config.worker_threads(),
            "ringkv starting"
        );
        match server.run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(%err, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}
