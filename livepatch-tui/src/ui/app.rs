//! The dashboard's state and every change to it. Nothing here reads a clock
//! or touches the terminal: the loop passes in key presses, elapsed wall
//! time and records.

use std::collections::BTreeSet;

use crossterm::event::KeyEvent;
use ratatui::layout::Rect;

use super::{
    Header,
    draw::layout,
    keys::{self, Action},
    tasks::TaskTable,
    theme::Theme,
    tree,
};
use crate::{event::Record, model::Model, source::replay::Player};

/// Replay speed limits for `+` and `-`.
const MIN_SPEED: f64 = 1.0 / 16.0;
const MAX_SPEED: f64 = 1024.0;

/// How long a notice stays in the footer, in wall nanoseconds.
const NOTICE_NS: u64 = 3_000_000_000;

/// The panes that take focus, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Tasks,
    Patches,
    Findings,
    Events,
    History,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Tasks,
        Pane::Patches,
        Pane::Findings,
        Pane::Events,
        Pane::History,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }

    pub fn next(self) -> Self {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    pub fn previous(self) -> Self {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Tasks => "Tasks",
            Pane::Patches => "Patches",
            Pane::Findings => "Findings",
            Pane::Events => "Events",
            Pane::History => "History",
        }
    }
}

/// The record source and its state.
#[derive(Debug)]
pub(super) enum FeedState {
    Live {
        /// The sender side is gone: no more records will come.
        closed: bool,
    },
    Replay {
        player: Player,
        /// Timestamp of the recording's first record, once played.
        origin_ns: Option<u64>,
    },
}

/// A short message in the footer, such as why a key did nothing.
#[derive(Clone, Debug)]
pub(super) struct Notice {
    pub text: String,
    remaining_ns: u64,
}

/// All dashboard state.
#[derive(Debug)]
pub struct App {
    pub(super) model: Model,
    pub(super) header: Header,
    pub(super) feed: FeedState,
    pub(super) theme: Theme,
    pub(super) focus: Pane,
    pub(super) show_help: bool,
    quit: bool,
    pub(super) tasks: TaskTable,
    /// Ids of collapsed patch tree nodes ([`tree::TreeRow::id`]).
    pub(super) collapsed: BTreeSet<String>,
    pub(super) tree_cursor: usize,
    pub(super) tree_offset: usize,
    /// Event log lines scrolled back from the newest. At 0 the log follows
    /// new events.
    pub(super) events_back: usize,
    pub(super) history_offset: usize,
    pub(super) findings_offset: usize,
    pub(super) notice: Option<Notice>,
    /// Terminal size, for page moves.
    viewport: Rect,
    /// CLOCK_MONOTONIC at the latest tick, in live mode.
    clock_ns: Option<u64>,
    /// Flag for records or table options changed since the task rows were
    /// last rebuilt.
    dirty: bool,
    /// Start of the transition the task table last showed.
    shown_transition: Option<u64>,
}

impl App {
    /// Creates a dashboard fed by the kernel through [`App::apply`].
    pub fn live(header: Header, theme: Theme) -> Self {
        Self::new(header, FeedState::Live { closed: false }, theme)
    }

    /// Creates a dashboard that plays a recording on [`App::tick`].
    pub fn replay(header: Header, player: Player, theme: Theme) -> Self {
        let feed = FeedState::Replay {
            player,
            origin_ns: None,
        };
        Self::new(header, feed, theme)
    }

    fn new(header: Header, feed: FeedState, theme: Theme) -> Self {
        Self {
            model: Model::new(),
            header,
            feed,
            theme,
            focus: Pane::Tasks,
            show_help: false,
            quit: false,
            tasks: TaskTable::default(),
            collapsed: BTreeSet::new(),
            tree_cursor: 0,
            tree_offset: 0,
            events_back: 0,
            history_offset: 0,
            findings_offset: 0,
            notice: None,
            viewport: Rect::new(0, 0, 80, 24),
            clock_ns: None,
            dirty: true,
            shown_transition: None,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn focus(&self) -> Pane {
        self.focus
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    pub fn help_shown(&self) -> bool {
        self.show_help
    }

    /// Returns the tasks table's options and rows.
    pub fn task_table(&self) -> &TaskTable {
        &self.tasks
    }

    /// Applies records to the model. The task rows are rebuilt at the next
    /// [`App::tick`] or [`App::refresh`], not per record, so that a burst
    /// costs one rebuild.
    pub fn apply(&mut self, records: &[Record]) {
        for record in records {
            self.model.apply(record);
        }
        self.dirty |= !records.is_empty();
    }

    /// Notes that the live feed ended.
    pub fn feed_closed(&mut self) {
        if let FeedState::Live { closed } = &mut self.feed {
            *closed = true;
        }
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.viewport = Rect::new(0, 0, width, height);
    }

    /// Advances by `wall_ns` of real time: plays due replay records, ages
    /// the notice and rebuilds the task rows. `clock_ns` is CLOCK_MONOTONIC
    /// now, for live mode, so that waits grow while no event arrives.
    pub fn tick(&mut self, wall_ns: u64, clock_ns: Option<u64>) {
        self.clock_ns = clock_ns;
        if let FeedState::Replay { player, origin_ns } = &mut self.feed {
            let records = player.advance(wall_ns);
            play(&mut self.model, origin_ns, records);
            self.dirty |= !records.is_empty();
        }

        if let Some(notice) = &mut self.notice {
            notice.remaining_ns = notice.remaining_ns.saturating_sub(wall_ns);
            if notice.remaining_ns == 0 {
                self.notice = None;
            }
        }

        // Waits grow with time, so that order changes even without records.
        if self.tasks.sort == super::tasks::TaskSort::Waited {
            self.dirty = true;
        }
        self.refresh();
    }

    /// Rebuilds the task rows if records or table options changed.
    pub fn refresh(&mut self) {
        if !self.dirty {
            return;
        }
        self.tasks.rebuild(&self.model.tasks, self.now_ns());
        // A new transition has new tasks: start at the top of the table, where
        // the sort puts the tasks that block it.
        let started = self.model.transition.as_ref().map(|t| t.started_ns);
        if started.is_some() && started != self.shown_transition {
            self.shown_transition = started;
            self.tasks.select(0);
            self.tasks.offset = 0;
        }
        self.dirty = false;
    }

    /// Returns the time the dashboard shows as now: the newest record's,
    /// or the replay position or live clock when that is later.
    pub fn now_ns(&self) -> u64 {
        let fed = match &self.feed {
            FeedState::Replay {
                player,
                origin_ns: Some(origin),
            } => origin.saturating_add(player.position_ns()),
            FeedState::Replay { .. } => 0,
            FeedState::Live { .. } => self.clock_ns.unwrap_or(0),
        };
        self.model.now_ns.max(fed)
    }

    /// Handles a key press through the binding tables.
    pub fn handle_key(&mut self, key: KeyEvent) {
        if self.tasks.editing {
            match keys::lookup(keys::NAME_FILTER_BINDINGS, &key) {
                Some(action) => self.perform(action),
                None => {
                    if let Some(c) = keys::typed_char(&key) {
                        self.tasks.name.push(c);
                        self.dirty = true;
                    }
                }
            }
        } else if let Some(action) = keys::lookup(keys::BINDINGS, &key) {
            self.perform(action);
        }
        self.refresh();
    }

    /// Carries out one action.
    pub fn perform(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.show_help = !self.show_help,
            Action::Back => self.back(),
            Action::FocusNext => self.focus = self.focus.next(),
            Action::FocusPrevious => self.focus = self.focus.previous(),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page_rows() as isize)),
            Action::PageDown => self.move_by(self.page_rows() as isize),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::Toggle => self.toggle_tree_node(),
            Action::CycleFilter => self.change_table(|t| t.filter = t.filter.next()),
            Action::CycleSort => self.change_table(|t| t.sort = t.sort.next()),
            Action::EditNameFilter => {
                self.focus = Pane::Tasks;
                self.tasks.editing = true;
            }
            Action::KeepNameFilter => self.tasks.editing = false,
            Action::CancelNameFilter => self.change_table(|t| {
                t.editing = false;
                t.name.clear();
            }),
            Action::DeleteChar => self.change_table(|t| {
                t.name.pop();
            }),
            Action::TogglePause
            | Action::Step
            | Action::NextTransition
            | Action::Faster
            | Action::Slower => self.control_replay(action),
        }
    }

    fn back(&mut self) {
        if self.show_help {
            self.show_help = false;
        } else if !self.tasks.name.is_empty() {
            self.change_table(|t| t.name.clear());
        }
    }

    fn change_table(&mut self, change: impl FnOnce(&mut TaskTable)) {
        change(&mut self.tasks);
        self.dirty = true;
    }

    fn say(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            remaining_ns: NOTICE_NS,
        });
    }

    fn control_replay(&mut self, action: Action) {
        let FeedState::Replay { player, origin_ns } = &mut self.feed else {
            self.say("pause, step, jump and speed act on replays only");
            return;
        };

        let message = match action {
            Action::TogglePause => {
                player.paused = !player.paused;
                if player.paused { "paused" } else { "playing" }.to_owned()
            }
            Action::Step => {
                player.paused = true;
                let records = player.step();
                play(&mut self.model, origin_ns, records);
                match records.first() {
                    Some(record) => format!("paused; played one {} event", record.event.kind()),
                    None => "end of recording".to_owned(),
                }
            }
            Action::NextTransition => {
                let records = player.jump_to_next_transition();
                play(&mut self.model, origin_ns, records);
                match records.last() {
                    Some(r) if r.event.kind() == "transition_started" => {
                        "jumped to the next transition".to_owned()
                    }
                    _ => "no further transition in the recording".to_owned(),
                }
            }
            Action::Faster | Action::Slower => {
                let factor = if action == Action::Faster { 2.0 } else { 0.5 };
                player.speed = (player.speed * factor).clamp(MIN_SPEED, MAX_SPEED);
                format!("speed {}", super::format::speed(player.speed))
            }
            _ => return,
        };
        self.dirty = true;
        self.say(message);
    }

    /// Rows of the focused pane that fit on screen.
    fn page_rows(&self) -> usize {
        layout::page_rows(self.viewport, self.focus).max(1)
    }

    fn move_by(&mut self, delta: isize) {
        let page = self.page_rows();
        match self.focus {
            Pane::Tasks => {
                let index = self.tasks.selected.saturating_add_signed(delta);
                self.tasks.select(index);
                self.tasks.offset = keep_visible(self.tasks.offset, self.tasks.selected, page);
            }
            Pane::Patches => {
                let len = tree::rows(&self.model, &self.collapsed).len();
                let index = self.tree_cursor.saturating_add_signed(delta);
                self.tree_cursor = index.min(len.saturating_sub(1));
                self.tree_offset = keep_visible(self.tree_offset, self.tree_cursor, page);
            }
            Pane::Events => {
                // Up goes back in time, away from the newest line.
                let max_back = self.model.recent.len().saturating_sub(page);
                self.events_back = self.events_back.saturating_add_signed(-delta).min(max_back);
            }
            Pane::History => {
                let max = self.model.history.len().saturating_sub(1);
                self.history_offset = self.history_offset.saturating_add_signed(delta).min(max);
            }
            Pane::Findings => {
                let lines = self.model.findings.len() + self.model.probes.len();
                let max = lines.saturating_sub(1);
                self.findings_offset = self.findings_offset.saturating_add_signed(delta).min(max);
            }
        }
    }

    fn toggle_tree_node(&mut self) {
        if self.focus != Pane::Patches {
            return;
        }
        let rows = tree::rows(&self.model, &self.collapsed);
        let Some(row) = rows.get(self.tree_cursor) else {
            return;
        };
        if row.expanded.is_none() {
            return;
        }
        let id = row.id.clone();
        if !self.collapsed.remove(&id) {
            self.collapsed.insert(id);
        }
    }
}

/// Applies replayed records, noting the recording's origin.
fn play(model: &mut Model, origin_ns: &mut Option<u64>, records: &[Record]) {
    if let Some(first) = records.first() {
        origin_ns.get_or_insert(first.ts_ns);
    }
    for record in records {
        model.apply(record);
    }
}

/// Returns the first row to show so that `selected` is among `height`
/// visible rows, moving the window as little as possible from `offset`.
pub(super) fn keep_visible(offset: usize, selected: usize, height: usize) -> usize {
    let height = height.max(1);
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
}
