//! The tasks table. Only the rows on screen are built, so that a transition
//! over tens of thousands of tasks draws as fast as a small one.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::Style,
    text::Span,
    widgets::{Cell, Row, Table},
};

use crate::{
    model::{Task, TaskStatus},
    ui::{
        app::{App, Pane, keep_visible},
        format,
        theme::Theme,
    },
};

/// Inner width from which the table shows every column.
const FULL_WIDTH: u16 = 100;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let table = &app.tasks;
    let title = title(app);
    let block = app.pane_block(Some(Pane::Tasks), &title);
    let inner = block.inner(area);
    let full = inner.width >= FULL_WIDTH;

    let height = usize::from(inner.height.saturating_sub(1));
    let offset = keep_visible(table.offset, table.selected, height)
        .min(table.rows.len().saturating_sub(height));
    let rows: Vec<Row> = table
        .rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .filter_map(|(index, &key)| {
            let task = app.model.tasks.get(key)?;
            let stuck = table.stuck.contains(&key);
            let row = if full {
                full_row(task, stuck, app)
            } else {
                short_row(task, stuck, app)
            };
            Some(if index == table.selected {
                row.style(app.theme.selected())
            } else {
                row
            })
        })
        .collect();

    let (header, widths) = if full {
        full_columns()
    } else {
        short_columns()
    };
    let header = Row::new(header.iter().copied()).style(app.theme.label());
    let widget = Table::new(rows, widths).header(header).block(block);
    frame.render_widget(widget, area);

    if table.rows.is_empty() {
        render_empty(frame, inner, app);
    }
}

fn title(app: &App) -> String {
    let table = &app.tasks;
    let mut title = format!(
        "Tasks {} of {} · filter {} · sort {}",
        format::count(table.rows.len() as u64),
        format::count(app.model.tasks.len() as u64),
        table.filter.label(),
        table.sort.label()
    );
    if !table.name.is_empty() || table.editing {
        title.push_str(&format!(" · name \"{}\"", table.name));
    }
    title
}

fn render_empty(frame: &mut Frame, inner: Rect, app: &App) {
    let text = if app.model.tasks.is_empty() {
        "no task seen in a transition yet"
    } else {
        "no task matches the filter (f cycles it, Esc clears the name)"
    };
    if inner.height >= 2 {
        let line = Rect {
            y: inner.y + 1,
            height: 1,
            ..inner
        };
        frame.render_widget(Span::styled(text, app.theme.dim()), line);
    }
}

/// Builds the marker cell: `!` stuck, `×` blocked, `·` pending, `✓` switched.
fn marker(task: &Task, stuck: bool, theme: &Theme) -> Cell<'static> {
    match task.status {
        _ if stuck => Cell::new("!").style(theme.alert()),
        TaskStatus::Blocked => Cell::new("×").style(theme.warning()),
        TaskStatus::Pending => Cell::new("·"),
        TaskStatus::Switched => Cell::new("✓").style(theme.good()),
    }
}

fn comm(task: &Task, stuck: bool, theme: &Theme) -> Cell<'static> {
    let style = if stuck { theme.alert() } else { Style::new() };
    Cell::new(task.task.comm.clone()).style(style)
}

fn reason(task: &Task) -> String {
    task.reason
        .map_or_else(|| "—".to_owned(), |r| r.as_str().to_owned())
}

/// The function on the stack, or the CPU for a task caught running.
fn place(task: &Task) -> String {
    match (&task.function, task.cpu) {
        (Some(function), _) => function.clone(),
        (None, Some(cpu)) => format!("cpu {cpu}"),
        (None, None) => String::new(),
    }
}

fn full_columns() -> (&'static [&'static str], Vec<Constraint>) {
    let header: &[&str] = &[
        " ",
        "pid",
        "tgid",
        "comm",
        "kind",
        "status",
        "reason",
        "function / cpu",
        "attempts",
        "waited",
        "switched via",
    ];
    let widths = vec![
        Constraint::Length(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(20),
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(12),
    ];
    (header, widths)
}

fn full_row(task: &Task, stuck: bool, app: &App) -> Row<'static> {
    let theme = &app.theme;
    Row::new(vec![
        marker(task, stuck, theme),
        Cell::new(task.task.pid.to_string()),
        Cell::new(task.task.tgid.to_string()),
        comm(task, stuck, theme),
        Cell::new(task.task.task_kind.as_str()),
        Cell::new(task.status.as_str()).style(theme.status(task.status)),
        Cell::new(reason(task)),
        Cell::new(place(task)),
        Cell::new(task.attempts.to_string()),
        Cell::new(format::waited(task, app.now_ns())),
        Cell::new(task.via.map_or("", |v| v.as_str())),
    ])
}

fn short_columns() -> (&'static [&'static str], Vec<Constraint>) {
    let header: &[&str] = &[
        " ",
        "pid",
        "comm",
        "reason",
        "function / cpu",
        "att",
        "waited",
    ];
    let widths = vec![
        Constraint::Length(1),
        Constraint::Length(7),
        Constraint::Length(15),
        Constraint::Length(20),
        Constraint::Fill(1),
        Constraint::Length(4),
        Constraint::Length(8),
    ];
    (header, widths)
}

/// Builds a row without a status column, so the reason column shows
/// "switched" or "pending" for tasks that are not blocked.
fn short_row(task: &Task, stuck: bool, app: &App) -> Row<'static> {
    let theme = &app.theme;
    let state = match task.status {
        TaskStatus::Blocked => reason(task),
        other => other.as_str().to_owned(),
    };
    Row::new(vec![
        marker(task, stuck, theme),
        Cell::new(task.task.pid.to_string()),
        comm(task, stuck, theme),
        Cell::new(state).style(theme.status(task.status)),
        Cell::new(place(task)),
        Cell::new(task.attempts.to_string()),
        Cell::new(format::waited(task, app.now_ns())),
    ])
}
