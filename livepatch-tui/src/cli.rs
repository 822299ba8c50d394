//! The command line. The doc comments are the help text.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Live view of Linux kernel livepatches: which are loaded and in which
/// replace set, how each transition moves task by task, what blocks it,
/// and whether the loaded patches are sound.
///
/// Without a command, opens the live dashboard (needs root and a kernel with
/// CONFIG_LIVEPATCH and BTF).
#[derive(Debug, Parser)]
#[command(name = "livepatch-tui", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub live: LiveOptions,

    /// Writes the tool's own diagnostics to FILE while the dashboard owns
    /// the terminal (default: discarded).
    #[arg(long, global = true, value_name = "FILE")]
    pub diagnostics: Option<PathBuf>,
}

/// Options of the live kernel source.
#[derive(Clone, Debug, Args)]
pub struct LiveOptions {
    /// Size of the kernel-to-user ring buffer, in MiB (a power of two).
    #[arg(long, global = true, default_value_t = 8, value_parser = parse_ring_mib)]
    pub ring_buffer_mib: u32,

    /// Counts no calls to patched functions: no kprobes are attached for it.
    #[arg(long, global = true)]
    pub no_calls: bool,

    /// Interval between `calls` reports, in seconds.
    #[arg(long, global = true, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub calls_interval: u64,

    /// Interval between reads of /sys/kernel/livepatch, in milliseconds.
    #[arg(long, global = true, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub sysfs_interval_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Writes events as JSON Lines (one object per line, each flushed) until
    /// SIGINT or SIGTERM.
    Log(LogArgs),
    /// Runs the validator once and exits: 0 clean, 1 warnings, 2 errors,
    /// 3 the kernel could not be read.
    Check(CheckArgs),
    /// Plays a recorded log in the dashboard, in recorded time.
    Replay(ReplayArgs),
    /// Plays a built-in recording of a blocked transition in the dashboard;
    /// needs no root and no livepatch kernel.
    Demo(DemoArgs),
    /// Lists every kernel hook, whether it attaches on this kernel, and what
    /// it feeds. Needs root.
    Probes,
    /// Polls every task's /proc patch_state at an interval until SIGINT: the
    /// baseline the scale benchmark compares the probes with.
    #[command(hide = true)]
    PollBaseline {
        /// Interval between polls, in milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        interval_ms: u64,
    },
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Writes to FILE instead of standard output (appends).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Reads events from a recorded log instead of the kernel.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,

    /// Serves Prometheus metrics at http://ADDR/metrics (off by default).
    /// Use a loopback address such as 127.0.0.1:9477: the endpoint has no
    /// authentication. With --from, serves the recording's final state
    /// until SIGINT or SIGTERM.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_address)]
    pub metrics: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Judges loading this livepatch module against the loaded patches,
    /// without loading it.
    #[arg(long, value_name = "FILE.ko")]
    pub module: Option<PathBuf>,

    /// Judges the module's patch as cumulative (`replace` set), for modules
    /// whose init function sets it, from a module parameter for instance,
    /// where the file cannot show it.
    #[arg(long, requires = "module")]
    pub replace: bool,

    /// Reads the patches from this directory instead of
    /// /sys/kernel/livepatch (for testing and offline checks).
    #[arg(long, value_name = "DIR", hide = true)]
    pub sysfs_root: Option<PathBuf>,

    /// Reads struct layouts for --module from this BTF file instead of
    /// /sys/kernel/btf/vmlinux (for testing and offline checks).
    #[arg(long, value_name = "FILE", hide = true)]
    pub btf: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A log written by `livepatch-tui log`.
    pub file: PathBuf,

    /// Playback speed: 2 plays twice as fast, 0.5 half as fast.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Playback speed: 2 plays twice as fast, 0.5 half as fast.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    let speed: f64 = text
        .parse()
        .map_err(|_| format!("invalid speed {text:?}: expected a number such as 2 or 0.5"))?;
    if !(0.01..=1000.0).contains(&speed) {
        return Err(format!("speed {speed} is out of range: use 0.01 to 1000"));
    }
    Ok(speed)
}

fn parse_ring_mib(text: &str) -> Result<u32, String> {
    let mib: u32 = text
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected MiB as a whole number"))?;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err(format!(
            "ring buffer size {mib} MiB is invalid: use a power of two from 1 to 1024"
        ));
    }
    Ok(mib)
}

/// Parses HOST:PORT, where HOST is an IP address or a name in the local
/// resolver (such as `localhost`); the first address it gives is used.
fn parse_metrics_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let invalid = |reason: String| {
        format!("invalid address {text:?} ({reason}): expected HOST:PORT, such as 127.0.0.1:9477")
    };
    text.to_socket_addrs()
        .map_err(|error| invalid(error.to_string()))?
        .next()
        .ok_or_else(|| invalid("no address found".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_range_checked() {
        assert!(parse_speed("2").is_ok());
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("fast").is_err());
    }

    #[test]
    fn metrics_address_by_ip_or_local_name() {
        let by_ip = parse_metrics_address("127.0.0.1:9477").unwrap();
        assert_eq!(by_ip, SocketAddr::from(([127, 0, 0, 1], 9477)));
        let by_name = parse_metrics_address("localhost:9477").unwrap();
        assert!(by_name.ip().is_loopback(), "{by_name}");
        let error = parse_metrics_address("9477").unwrap_err();
        assert!(error.contains("expected HOST:PORT"), "{error}");
    }

    #[test]
    fn ring_buffer_power_of_two() {
        assert_eq!(parse_ring_mib("16"), Ok(16));
        assert!(parse_ring_mib("3").is_err());
        assert!(parse_ring_mib("0").is_err());
    }

    #[test]
    fn cli_parses_contract_commands() {
        Cli::try_parse_from(["livepatch-tui", "log", "--output", "x.jsonl"]).unwrap();
        Cli::try_parse_from([
            "livepatch-tui",
            "log",
            "--from",
            "x.jsonl",
            "--metrics",
            "127.0.0.1:9477",
        ])
        .unwrap();
        Cli::try_parse_from([
            "livepatch-tui",
            "check",
            "--format",
            "json",
            "--module",
            "a.ko",
        ])
        .unwrap();
        Cli::try_parse_from(["livepatch-tui", "replay", "x.jsonl", "--speed", "4"]).unwrap();
        Cli::try_parse_from(["livepatch-tui", "demo"]).unwrap();
        Cli::try_parse_from(["livepatch-tui"]).unwrap();
    }
}
