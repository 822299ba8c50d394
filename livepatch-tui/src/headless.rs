//! The headless log: events as JSON Lines, from the kernel or a recording,
//! with the validator's findings after every inventory.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    cli::{LiveOptions, LogArgs},
    event::{Event, Record},
    kernel::LiveSource,
    model::Model,
    sink::json::JsonLinesWriter,
    source::replay::{self, SkippedLine},
    validator,
};

/// Sets up the tool's own diagnostics (the `log` crate): to stderr for the
/// headless commands, to `file` or nowhere while the dashboard owns the
/// terminal. `RUST_LOG` sets the level (default: warn).
pub fn init_diagnostics(file: Option<&Path>, dashboard: bool) -> anyhow::Result<()> {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    match (file, dashboard) {
        (Some(path), _) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("failed to open diagnostics file {}", path.display()))?;
            builder.target(env_logger::Target::Pipe(Box::new(file)));
        }
        (None, true) => {
            builder.filter_level(log::LevelFilter::Off);
        }
        (None, false) => {
            builder.target(env_logger::Target::Stderr);
        }
    }
    builder
        .try_init()
        .context("diagnostics already initialised")?;
    Ok(())
}

/// Warns about lines of a recording that were skipped.
pub fn report_skipped(skipped: &[SkippedLine], source: &str) {
    const SHOWN: usize = 5;
    for line in skipped.iter().take(SHOWN) {
        eprintln!(
            "livepatch-tui: {source}:{}: skipped: {}",
            line.line, line.reason
        );
    }
    if skipped.len() > SHOWN {
        eprintln!(
            "livepatch-tui: {source}: {} more lines skipped",
            skipped.len() - SHOWN
        );
    }
}

/// The `log` command.
pub async fn run_log(args: &LogArgs, live: &LiveOptions) -> anyhow::Result<ExitCode> {
    if let Some(address) = args.metrics {
        anyhow::bail!(
            "cannot serve metrics on {address}: the metrics endpoint is not available in this version"
        );
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("failed to open output {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut logger = Logger {
        model: Model::new(),
        writer: JsonLinesWriter::new(out),
    };

    match &args.from {
        Some(path) => {
            let recording = replay::read_log(path)?;
            report_skipped(&recording.skipped, &path.display().to_string());
            for record in &recording.records {
                logger.handle(record, false)?;
            }
        }
        None => {
            let source = LiveSource::start(live).await?;
            logger.follow(source.records).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct Logger<W: Write> {
    model: Model,
    writer: JsonLinesWriter<W>,
}

impl<W: Write> Logger<W> {
    /// Writes records until SIGINT or SIGTERM, then writes what is already
    /// queued and returns.
    async fn follow(&mut self, mut records: mpsc::Receiver<Record>) -> anyhow::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
        loop {
            tokio::select! {
                record = records.recv() => match record {
                    Some(record) => self.handle(&record, true)?,
                    None => {
                        log::error!("the live source stopped; see the messages above");
                        break;
                    }
                },
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
            }
        }
        while let Ok(record) = records.try_recv() {
            self.handle(&record, true)?;
        }
        Ok(())
    }

    /// Applies and writes one record. After an inventory, the validator's
    /// findings follow it; a recording already carries its own, so they are
    /// computed only for `fresh` records.
    fn handle(&mut self, record: &Record, fresh: bool) -> anyhow::Result<()> {
        self.model.apply(record);
        self.writer.write(record)?;
        if let (true, Event::Inventory { patches }) = (fresh, &record.event) {
            for finding in validator::validate(patches) {
                let finding = Record::new(record.ts_ns, Event::Finding(finding));
                self.model.apply(&finding);
                self.writer.write(&finding)?;
            }
        }
        Ok(())
    }
}
