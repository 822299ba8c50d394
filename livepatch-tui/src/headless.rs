//! The headless log: events as JSON Lines, from the kernel or a recording,
//! with the validator's findings after every inventory.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::{LiveOptions, LogArgs},
    event::{Event, Record},
    kernel::LiveSource,
    metrics::{self, Clock, SharedState},
    sink::json::JsonLinesWriter,
    source::replay::{self, SkippedLine},
    validator,
};

/// How long the live source may take to send its last records at exit.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

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

/// Runs the `log` command. With `--metrics`, it also serves Prometheus metrics
/// computed from the records it writes: while it logs, for a live source,
/// and after the whole recording until SIGINT or SIGTERM, for `--from`.
pub async fn run_log(args: &LogArgs, live: &LiveOptions) -> anyhow::Result<ExitCode> {
    let state = SharedState::default();
    let clock = if args.from.is_some() {
        Clock::LastEvent
    } else {
        Clock::Monotonic
    };
    let metrics = match args.metrics {
        Some(address) => Some(metrics::Server::bind(address, state.clone(), clock).await?),
        None => None,
    };

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
        state,
        writer: JsonLinesWriter::new(out),
    };

    match &args.from {
        Some(path) => {
            let recording = replay::read_log(path)?;
            report_skipped(&recording.skipped, &path.display().to_string());
            for record in &recording.records {
                logger.handle(record, false)?;
            }
            if let Some(server) = metrics {
                eprintln!(
                    "livepatch-tui: {} read ({} records); its final state stays served until SIGINT or SIGTERM",
                    path.display(),
                    recording.records.len()
                );
                serve_until_signal(server).await?;
            }
        }
        None => {
            let source = LiveSource::start(live).await?;
            if let Some(server) = metrics {
                start_serving(server);
            }
            logger.follow(source).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves metrics in a task of its own, which ends with the runtime.
fn start_serving(server: metrics::Server) {
    match server.local_addr() {
        Ok(address) => eprintln!(
            "livepatch-tui: serving metrics at http://{address}{}",
            metrics::METRICS_PATH
        ),
        Err(error) => log::warn!("serving metrics on an unknown address: {error}"),
    }
    tokio::spawn(server.serve());
}

/// Serves the metrics of a finished recording until SIGINT or SIGTERM.
async fn serve_until_signal(server: metrics::Server) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    start_serving(server);
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    log::info!("metrics endpoint stopped by a signal");
    Ok(())
}

struct Logger<W: Write> {
    /// The model and the metrics' counters, shared with the metrics
    /// endpoint.
    state: SharedState,
    writer: JsonLinesWriter<W>,
}

impl<W: Write> Logger<W> {
    /// Writes records until SIGINT or SIGTERM, then requests the source's
    /// final counts and writes everything it still sends.
    async fn follow(&mut self, mut source: LiveSource) -> anyhow::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
        loop {
            tokio::select! {
                record = source.records.recv() => match record {
                    Some(record) => self.handle(&record, true)?,
                    // A non-zero exit lets a service manager restart the log.
                    None => anyhow::bail!("the live source stopped; see the messages above"),
                },
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
            }
        }

        source.request_stop();
        let final_records = async {
            while let Some(record) = source.records.recv().await {
                self.handle(&record, true)?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(STOP_TIMEOUT, final_records).await {
            Ok(result) => result,
            Err(_) => {
                log::warn!(
                    "the live source did not finish within {STOP_TIMEOUT:?}; its last counts are missing"
                );
                Ok(())
            }
        }
    }

    /// Applies and writes one record. After an inventory, the validator's
    /// findings follow it; a recording already carries its own, so they are
    /// computed only for `fresh` records.
    fn handle(&mut self, record: &Record, fresh: bool) -> anyhow::Result<()> {
        let findings: Vec<Record> = match (fresh, &record.event) {
            (true, Event::Inventory { patches }) => {
                let seen_loading = self.state.lock().model.load_order.clone();
                validator::validate_seen(patches, &seen_loading)
            }
            .into_iter()
            .map(|finding| Record::new(record.ts_ns, Event::Finding(finding)))
            .collect(),
            _ => Vec::new(),
        };

        // One lock for the inventory and its findings, so that a scrape
        // never renders the new patches without their findings.
        {
            let mut state = self.state.lock();
            state.apply(record);
            for finding in &findings {
                state.apply(finding);
            }
        }

        self.writer.write(record)?;
        for finding in &findings {
            self.writer.write(finding)?;
        }
        Ok(())
    }
}

/// Passes records on, each `inventory` followed by the validator's findings
/// on it, as the headless log writes them: the dashboard's live feed.
pub fn with_findings(
    mut records: tokio::sync::mpsc::Receiver<Record>,
) -> tokio::sync::mpsc::Receiver<Record> {
    let (sender, receiver) = tokio::sync::mpsc::channel(records.max_capacity());
    tokio::spawn(async move {
        let mut seen_loading = Vec::new();
        while let Some(record) = records.recv().await {
            crate::model::follow_loads(&mut seen_loading, &record.event);
            let findings = match &record.event {
                Event::Inventory { patches } => validator::validate_seen(patches, &seen_loading),
                _ => Vec::new(),
            };
            let ts_ns = record.ts_ns;
            if sender.send(record).await.is_err() {
                return;
            }
            for finding in findings {
                if sender
                    .send(Record::new(ts_ns, Event::Finding(finding)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    receiver
}
