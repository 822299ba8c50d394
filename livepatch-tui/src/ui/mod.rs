//! The interactive dashboard.
//!
//! [`App`] contains all state and changes only through its methods. [`App::render`]
//! draws it without I/O. [`run`] owns the terminal and feeds the app from one
//! loop over terminal events, a render tick and the record feed.

mod app;
mod describe;
mod draw;
mod format;
mod keys;
mod run;
mod tasks;
mod theme;
mod tree;

#[cfg(test)]
mod tests;

use tokio::sync::mpsc;

use crate::{event::Record, source::replay::Player};

pub use app::{App, Pane};
pub use keys::{Action, BINDINGS, Binding};
pub use tasks::{TaskFilter, TaskSort, TaskTable};
pub use theme::Theme;

/// The source description the dashboard shows in its header.
#[derive(Clone, Debug)]
pub struct Header {
    /// `uname -r` of the observed kernel, when known.
    pub kernel: Option<String>,
    /// "live", "replay FILE" or "demo".
    pub mode: String,
    /// Lines of a recording that could not be read and were skipped.
    pub skipped_lines: usize,
}

/// The dashboard's event source.
pub enum Feed {
    /// Records from the kernel, as they happen.
    Live(mpsc::Receiver<Record>),
    /// A recording, played in recorded time.
    Replay(Player),
}

/// Runs the dashboard until the user quits or the process gets SIGTERM or
/// SIGHUP. Restores the terminal on every exit path, panics included.
/// Colors are off when `NO_COLOR` is set to a non-empty value.
pub async fn run(feed: Feed, header: Header) -> anyhow::Result<()> {
    run::run(feed, header, Theme::from_env()).await
}
