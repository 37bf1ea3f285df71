//! `obs-appliance`: one binary that replaces a Prometheus + Loki + Tempo + Alertmanager +
//! OpenTelemetry Collector stack on one small machine.
//!
//! This crate is thin on purpose: command-line parsing, configuration loading and wiring of the
//! library crates. No storage or query logic lives here.
//!
//! Exit codes: 0 success, 1 a failure while running, 2 a problem the operator must fix first
//! (bad configuration, port in use, data directory unusable, bad command line).

mod config;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_YAML, LogFormat};

/// mimalloc instead of glibc's allocator: ingest decodes many small strings per request and
/// frees them together, a pattern on which glibc spends most of its time consolidating free
/// lists (measured: allocation was over 40 % of remote_write CPU time with glibc). Built without
/// transparent huge pages (feature `no_thp`; `MIMALLOC_ALLOW_THP=1` turns them back on): with
/// them its arenas doubled the resident memory of a 100k-series scrape (240 MB against 123 MB).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for problems the operator must fix before the appliance can start.
const EXIT_MISCONFIGURED: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "obs-appliance",
    about = "Metrics, logs, traces and alerts in one binary",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the appliance.
    Serve(ServeArgs),
    /// Validates a configuration file and exits (0 valid, 2 invalid).
    CheckConfig {
        /// The configuration file; the embedded default when absent.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Prints configuration.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Prints the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints the embedded default configuration.
    Default,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The configuration file; the embedded default when absent.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Overrides `storage.path`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `server.listen`. Without --config, this is then the only address bound.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Overrides `log.level`.
    #[arg(long)]
    log_level: Option<String>,
    /// Overrides `log.format`.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::CheckConfig { config } => check_config(config),
        Command::Config {
            what: ConfigCommand::Default,
        } => {
            print!("{DEFAULT_CONFIG_YAML}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!(
                "obs-appliance {} (Prometheus API {})",
                env!("CARGO_PKG_VERSION"),
                obs_server::BuildInfo::current().prometheus_compatible_version
            );
            ExitCode::SUCCESS
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None => Config::embedded_default(),
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match load_config(path.as_ref()) {
        Ok(config) => {
            let origin = path
                .as_ref()
                .map_or_else(|| "(embedded default)".to_owned(), |p| p.display().to_string());
            let base_dir = path
                .as_ref()
                .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default();
            // Already validated by load_config; this lists what has no effect here.
            if let Ok(settings) = config.scrape_settings(&origin, &base_dir) {
                for warning in &settings.warnings {
                    eprintln!("warning: {warning}");
                }
                println!(
                    "config file {origin} is valid ({} scrape jobs)",
                    settings.jobs.len()
                );
            } else {
                println!("config file {origin} is valid");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_MISCONFIGURED)
        }
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let mut config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_MISCONFIGURED);
        }
    };
    config.source = args.config.clone();
    if let Some(data_dir) = args.data_dir {
        config.storage.path = data_dir;
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
        if args.config.is_none() {
            // Tests and side-by-side instances: exactly this one address, nothing else.
            config.server.extra_listeners.clear();
        }
    }
    if let Some(level) = args.log_level {
        config.log.level = level;
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    if let Err(err) = init_logging(&config) {
        eprintln!("error: {err}");
        return ExitCode::from(EXIT_MISCONFIGURED);
    }
    serve::run(config)
}

fn init_logging(config: &Config) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .map_err(|err| format!("log.level {:?} is not a log level: {err}", config.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let result = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|err| format!("cannot start logging: {err}"))
}
