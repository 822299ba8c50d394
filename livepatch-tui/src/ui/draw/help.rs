//! The help overlay, drawn from the binding tables. It flows into more
//! columns when the terminal is too short for one.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph},
};

use crate::ui::{
    app::App,
    keys::{BINDINGS, Binding, NAME_FILTER_BINDINGS},
};

/// Width of the key column.
const KEYS_WIDTH: usize = 11;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let lines = help_lines(app);
    let widest = lines.iter().map(Line::width).max().unwrap_or(0) as u16;

    let max_rows = area.height.saturating_sub(2).max(1);
    let columns = (lines.len() as u16).div_ceil(max_rows).max(1);
    let rows = (lines.len() as u16).div_ceil(columns);
    let width = (columns * (widest + 2) + 2).min(area.width);
    let height = (rows + 2).min(area.height);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));

    let block = Block::bordered()
        .title(Line::styled(
            " Keys (? or Esc closes) ",
            app.theme.title(true),
        ))
        .border_style(app.theme.border(true));
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);

    let column_areas =
        Layout::horizontal(vec![Constraint::Fill(1); usize::from(columns)]).split(inner);
    for (chunk, column) in lines
        .chunks(usize::from(rows).max(1))
        .zip(column_areas.iter())
    {
        frame.render_widget(Paragraph::new(chunk.to_vec()), *column);
    }
}

fn help_lines(app: &App) -> Vec<Line<'static>> {
    let binding_line = |binding: &Binding| {
        Line::from(vec![
            Span::styled(
                format!("{:<KEYS_WIDTH$}", binding.keys_label()),
                app.theme.emphasis(),
            ),
            Span::raw(binding.description),
        ])
    };

    let mut lines: Vec<Line> = BINDINGS.iter().map(binding_line).collect();
    lines.push(Line::styled("Typing a name after /:", app.theme.label()));
    lines.extend(NAME_FILTER_BINDINGS.iter().map(binding_line));
    lines
}
