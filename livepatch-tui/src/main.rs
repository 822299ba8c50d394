use std::process::ExitCode;

use clap::Parser as _;
use livepatch_tui::{
    cli::{Cli, Command},
    headless, kernel,
    source::replay,
    ui,
};

/// The built-in recording that `demo` plays: a blocked transition recorded
/// in the lab on Debian's 6.1 kernel (`cargo xtask lab --record-demo`).
const DEMO_LOG: &str = include_str!("../assets/demo.jsonl");

/// Exit code of a command line that does not parse (`EX_USAGE`), apart
/// from `check`'s 2 for errors.
const USAGE_ERROR: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(USAGE_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("livepatch-tui: failed to start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };

    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("livepatch-tui: {error:#}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dashboard = !matches!(
        cli.command,
        Some(Command::Log(_) | Command::Check(_) | Command::Probes | Command::PollBaseline { .. })
    );
    livepatch_tui::headless::init_diagnostics(cli.diagnostics.as_deref(), dashboard)?;

    match cli.command {
        None => {
            let live = kernel::LiveSource::start(&cli.live).await?;
            let header = ui::Header {
                kernel: kernel::release(),
                mode: "live".into(),
                skipped_lines: 0,
            };
            let records = headless::with_findings(live.records);
            ui::run(ui::Feed::Live(records), header).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Log(args)) => headless::run_log(&args, &cli.live).await,
        Some(Command::Check(args)) => livepatch_tui::validator::run_check(&args),
        Some(Command::Probes) => kernel::list_probes().await,
        Some(Command::PollBaseline { interval_ms }) => {
            livepatch_tui::baseline::run(std::time::Duration::from_millis(interval_ms)).await
        }
        Some(Command::Replay(args)) => {
            let recording = replay::read_log(&args.file)?;
            headless::report_skipped(&recording.skipped, &args.file.display().to_string());
            let header = ui::Header {
                kernel: None,
                mode: format!("replay {}", args.file.display()),
                skipped_lines: recording.skipped.len(),
            };
            let player = replay::Player::new(recording.records, args.speed);
            ui::run(ui::Feed::Replay(player), header).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Demo(args)) => {
            let recording = replay::parse_log(DEMO_LOG);
            let header = ui::Header {
                kernel: Some("6.1 (recorded in the lab)".into()),
                mode: "demo".into(),
                skipped_lines: recording.skipped.len(),
            };
            let player = replay::Player::new(recording.records, args.speed);
            ui::run(ui::Feed::Replay(player), header).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
