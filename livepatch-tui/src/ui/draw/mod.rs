//! Drawing: one file per pane. Everything here reads the [`App`] and writes
//! the frame, and nothing else.

mod detail;
mod events;
mod findings;
mod footer;
mod header;
mod help;
mod history;
pub mod layout;
mod patches;
mod tasks;
pub(super) mod transition;

use ratatui::{
    Frame,
    layout::Rect,
    text::Line,
    widgets::{Block, Paragraph, Wrap},
};

use super::app::{App, Pane};

impl App {
    /// Draws the whole dashboard into `frame`. Does no I/O and changes
    /// nothing, so the same state always draws the same frame.
    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        if layout::too_small(area) {
            render_too_small(frame, area, self);
            return;
        }

        let areas = layout::areas(area, self.focus);
        header::render(frame, areas.header, self);
        transition::render(frame, areas.transition, self);
        if let Some(rect) = areas.patches {
            patches::render(frame, rect, self);
        }
        if let Some(rect) = areas.tasks {
            tasks::render(frame, rect, self);
        }
        if let Some(rect) = areas.detail {
            detail::render(frame, rect, self);
        }
        if let Some(rect) = areas.findings {
            findings::render(frame, rect, self);
        }
        if let Some(rect) = areas.events {
            events::render(frame, rect, self);
        }
        if let Some(rect) = areas.history {
            history::render(frame, rect, self);
        }
        footer::render(frame, areas.footer, self, areas.compact);

        if self.show_help {
            help::render(frame, area, self);
        }
    }

    /// Builds a bordered block for a pane, its title marked when it has focus.
    fn pane_block(&self, pane: Option<Pane>, title: &str) -> Block<'static> {
        let focused = pane.is_some_and(|p| p == self.focus);
        // Without color, reverse video marks the focused title, and the arrow
        // marks it where reverse video does not show either.
        let marker = if focused && !self.theme.uses_color() {
            "▶ "
        } else {
            ""
        };
        let title = Line::from(format!(" {marker}{title} ")).style(self.theme.title(focused));
        Block::bordered()
            .border_style(self.theme.border(focused))
            .title(title)
    }
}

fn render_too_small(frame: &mut Frame, area: Rect, app: &App) {
    let (width, height) = layout::DRAW_MIN;
    let text = format!(
        "terminal too small: {}x{}, the dashboard needs at least {width}x{height}; \
         events lost {}; q quits",
        area.width, area.height, app.model.events_lost
    );
    let paragraph = Paragraph::new(text).wrap(Wrap { trim: true });
    frame.render_widget(paragraph, area);
}
