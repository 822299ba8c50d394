//! The terminal and the loop: one event enum, fed by terminal events, a
//! render tick, the record feed and termination signals.

use std::{
    io::{self, IsTerminal as _, Stdout},
    panic::PanicHookInfo,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use crossterm::{
    cursor::{Hide, Show},
    event::{Event as TerminalEvent, EventStream},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use futures::StreamExt as _;
use ratatui::{Terminal, backend::CrosstermBackend};
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
    time::{Interval, MissedTickBehavior},
};

use super::{App, Feed, Header, Theme};
use crate::event::Record;

/// Interval between frames, and between replay steps.
const TICK: Duration = Duration::from_millis(100);

/// Error when standard output is not a terminal that raw mode works on.
const NOT_A_TERMINAL: &str = "failed to set up the terminal: the dashboard needs an \
     interactive terminal (`livepatch-tui log` writes JSON Lines instead)";

/// Records taken from the live channel at once. The model applies a batch
/// without drawing, and the next tick draws once for all of them.
const BATCH: usize = 4096;

/// An input that wakes the loop.
enum LoopEvent {
    Terminal(TerminalEvent),
    TerminalFailed(io::Error),
    Tick,
    /// Records are waiting in [`Sources::batch`].
    Records,
    FeedClosed,
    Terminate(&'static str),
}

struct Sources {
    terminal: EventStream,
    ticker: Interval,
    live: Option<mpsc::Receiver<Record>>,
    batch: Vec<Record>,
    sigterm: Signal,
    sighup: Signal,
    sigint: Signal,
}

impl Sources {
    async fn next(&mut self) -> LoopEvent {
        tokio::select! {
            event = self.terminal.next() => match event {
                Some(Ok(event)) => LoopEvent::Terminal(event),
                Some(Err(error)) => LoopEvent::TerminalFailed(error),
                None => LoopEvent::TerminalFailed(io::ErrorKind::UnexpectedEof.into()),
            },
            _ = self.ticker.tick() => LoopEvent::Tick,
            received = receive(&mut self.live, &mut self.batch) => {
                if received == 0 { LoopEvent::FeedClosed } else { LoopEvent::Records }
            }
            _ = self.sigterm.recv() => LoopEvent::Terminate("SIGTERM"),
            _ = self.sighup.recv() => LoopEvent::Terminate("SIGHUP"),
            _ = self.sigint.recv() => LoopEvent::Terminate("SIGINT"),
        }
    }
}

/// Waits for records. Never completes once the feed is gone, or in replay.
async fn receive(live: &mut Option<mpsc::Receiver<Record>>, batch: &mut Vec<Record>) -> usize {
    match live {
        Some(receiver) => receiver.recv_many(batch, BATCH).await,
        None => std::future::pending().await,
    }
}

pub async fn run(feed: Feed, header: Header, theme: Theme) -> anyhow::Result<()> {
    let (mut app, live) = match feed {
        Feed::Live(receiver) => (App::live(header, theme), Some(receiver)),
        Feed::Replay(player) => (App::replay(header, player, theme), None),
    };
    let is_live = live.is_some();

    // The terminal comes first, because crossterm 0.29's event reader
    // panics ("reader source not set") when there is no terminal to read.
    if !io::stdout().is_terminal() {
        anyhow::bail!("{NOT_A_TERMINAL}");
    }
    let mut guard = TerminalGuard::enter().context(NOT_A_TERMINAL)?;
    let size = guard
        .terminal
        .size()
        .context("failed to read the terminal size")?;
    app.resize(size.width, size.height);

    let mut sources = Sources {
        terminal: EventStream::new(),
        ticker: tokio::time::interval(TICK),
        live,
        batch: Vec::with_capacity(BATCH),
        sigterm: signal(SignalKind::terminate()).context("failed to watch SIGTERM")?,
        sighup: signal(SignalKind::hangup()).context("failed to watch SIGHUP")?,
        sigint: signal(SignalKind::interrupt()).context("failed to watch SIGINT")?,
    };
    sources
        .ticker
        .set_missed_tick_behavior(MissedTickBehavior::Skip);
    log::info!("dashboard started ({})", app.header.mode);

    let result = event_loop(&mut app, &mut sources, &mut guard, is_live).await;
    drop(guard);
    log::info!("dashboard stopped");
    result
}

async fn event_loop(
    app: &mut App,
    sources: &mut Sources,
    guard: &mut TerminalGuard,
    is_live: bool,
) -> anyhow::Result<()> {
    let mut last_tick = Instant::now();
    while !app.should_quit() {
        let redraw = match sources.next().await {
            LoopEvent::Terminal(TerminalEvent::Key(key)) => {
                app.handle_key(key);
                true
            }
            LoopEvent::Terminal(TerminalEvent::Resize(width, height)) => {
                app.resize(width, height);
                true
            }
            LoopEvent::Terminal(_) => false,
            LoopEvent::TerminalFailed(error) => {
                return Err(error).context("failed to read terminal events");
            }
            LoopEvent::Tick => {
                let wall_ns = last_tick.elapsed().as_nanos() as u64;
                last_tick = Instant::now();
                app.tick(wall_ns, is_live.then(monotonic_ns).flatten());
                true
            }
            LoopEvent::Records => {
                app.apply(&sources.batch);
                sources.batch.clear();
                false
            }
            LoopEvent::FeedClosed => {
                log::warn!("live feed closed; the dashboard keeps showing the last state");
                sources.live = None;
                app.feed_closed();
                true
            }
            LoopEvent::Terminate(signal) => {
                log::info!("{signal} received; leaving the dashboard");
                return Ok(());
            }
        };
        if redraw {
            guard
                .terminal
                .draw(|frame| app.render(frame))
                .context("failed to draw the dashboard")?;
        }
    }
    Ok(())
}

/// CLOCK_MONOTONIC now, the clock the kernel stamps events with.
fn monotonic_ns() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if status != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(secs * 1_000_000_000 + nanos)
}

type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Raw mode and the alternate screen, undone on drop and by a panic hook,
/// so that no exit path leaves the terminal unusable.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    previous_hook: Arc<PanicHook>,
}

impl TerminalGuard {
    fn enter() -> io::Result<Self> {
        let previous_hook: Arc<PanicHook> = Arc::new(std::panic::take_hook());
        let chained = Arc::clone(&previous_hook);
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            chained(info);
        }));

        let setup = enable_raw_mode()
            .and_then(|()| execute!(io::stdout(), EnterAlternateScreen, Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(Self {
                terminal,
                previous_hook,
            }),
            Err(error) => {
                restore_terminal();
                reinstate_hook(previous_hook);
                Err(error)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        // The hook cannot be changed while panicking. It restores the
        // terminal once more, which does no harm.
        if !std::thread::panicking() {
            reinstate_hook(Arc::clone(&self.previous_hook));
        }
    }
}

fn reinstate_hook(previous: Arc<PanicHook>) {
    std::panic::set_hook(Box::new(move |info| previous(info)));
}

fn restore_terminal() {
    // Each step is attempted even if an earlier one failed.
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}
