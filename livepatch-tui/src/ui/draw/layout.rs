//! The placement of panes. Wide terminals show every pane at once. Smaller
//! ones keep the header, the transition and the focused pane, and list the
//! other panes in the footer for Tab to reach.

use ratatui::layout::{Constraint, Layout, Rect};

use crate::ui::app::Pane;

/// Smallest terminal that gets every pane at once.
pub const WIDE_MIN: (u16, u16) = (120, 36);

/// Smallest terminal the dashboard draws in at all.
pub const DRAW_MIN: (u16, u16) = (40, 12);

/// Rows of the task detail under the table in the compact layout.
const COMPACT_DETAIL_ROWS: u16 = 6;

/// Areas of one frame. A pane that does not fit is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub transition: Rect,
    pub tasks: Option<Rect>,
    pub detail: Option<Rect>,
    pub patches: Option<Rect>,
    pub findings: Option<Rect>,
    pub events: Option<Rect>,
    pub history: Option<Rect>,
    pub footer: Rect,
    /// Only the focused pane is shown besides the header and transition.
    pub compact: bool,
}

impl Areas {
    pub fn pane(&self, pane: Pane) -> Option<Rect> {
        match pane {
            Pane::Tasks => self.tasks,
            Pane::Patches => self.patches,
            Pane::Findings => self.findings,
            Pane::Events => self.events,
            Pane::History => self.history,
        }
    }
}

pub fn too_small(area: Rect) -> bool {
    area.width < DRAW_MIN.0 || area.height < DRAW_MIN.1
}

/// Splits the terminal for a frame with `focus` as the focused pane.
pub fn areas(area: Rect, focus: Pane) -> Areas {
    if area.width >= WIDE_MIN.0 && area.height >= WIDE_MIN.1 {
        wide(area)
    } else {
        compact(area, focus)
    }
}

fn wide(area: Rect) -> Areas {
    let top_rows = (area.height / 4).clamp(11, 16);
    let bottom_rows = (area.height * 2 / 7).clamp(8, 16);
    let [header, top, middle, bottom, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(top_rows),
        Constraint::Fill(1),
        Constraint::Length(bottom_rows),
        Constraint::Length(1),
    ])
    .areas(area);

    let [patches, transition] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(top);
    let [tasks, detail] =
        Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(middle);
    let [events, history, findings] = Layout::horizontal([
        Constraint::Percentage(44),
        Constraint::Percentage(30),
        Constraint::Percentage(26),
    ])
    .areas(bottom);

    Areas {
        header,
        transition,
        tasks: Some(tasks),
        detail: Some(detail),
        patches: Some(patches),
        findings: Some(findings),
        events: Some(events),
        history: Some(history),
        footer,
        compact: false,
    }
}

fn compact(area: Rect, focus: Pane) -> Areas {
    let transition_rows = if area.height >= 20 { 5 } else { 3 };
    let [header, transition, main, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(transition_rows),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);

    let mut areas = Areas {
        header,
        transition,
        footer,
        compact: true,
        ..Areas::default()
    };
    match focus {
        Pane::Tasks if main.height >= 14 => {
            let [tasks, detail] =
                Layout::vertical([Constraint::Fill(1), Constraint::Length(COMPACT_DETAIL_ROWS)])
                    .areas(main);
            areas.tasks = Some(tasks);
            areas.detail = Some(detail);
        }
        Pane::Tasks => areas.tasks = Some(main),
        Pane::Patches => areas.patches = Some(main),
        Pane::Findings => areas.findings = Some(main),
        Pane::Events => areas.events = Some(main),
        Pane::History => areas.history = Some(main),
    }
    areas
}

/// Content rows of a pane: its height without borders, and without the
/// header row of the tables.
pub fn page_rows(viewport: Rect, pane: Pane) -> usize {
    let Some(rect) = areas(viewport, pane).pane(pane) else {
        return 0;
    };
    let table_header = u16::from(matches!(pane, Pane::Tasks | Pane::History));
    usize::from(rect.height.saturating_sub(2 + table_header))
}
