//! The event log: the model's recent events, newest at the bottom, one
//! line each. The model leaves out per-task switches, and the tasks table
//! shows them.

use ratatui::{
    Frame,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::Paragraph,
};

use crate::{
    event::{Event, Record},
    ui::{
        app::{App, Pane},
        describe::describe,
        format,
    },
};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let recent = &app.model.recent;
    let title = if app.events_back > 0 {
        format!("Events (scrolled back {}; End follows)", app.events_back)
    } else {
        "Events".to_owned()
    };
    let block = app.pane_block(Some(Pane::Events), &title);
    let height = usize::from(block.inner(area).height);

    let end = recent.len().saturating_sub(app.events_back);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = recent
        .range(start..end)
        .map(|record| event_line(record, app))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn event_line(record: &Record, app: &App) -> Line<'static> {
    Line::from(vec![
        Span::styled(format::monotonic(record.ts_ns), app.theme.dim()),
        Span::raw(" "),
        Span::styled(describe(&record.event), style(&record.event, app)),
    ])
}

fn style(event: &Event, app: &App) -> Style {
    let theme = &app.theme;
    match event {
        Event::EventsLost { .. }
        | Event::PatchLoadFailed { .. }
        | Event::TransitionForced { .. } => theme.alert(),
        Event::Finding(finding) => theme.severity(finding.severity),
        Event::ProbeStatus {
            attached: false, ..
        }
        | Event::TaskBlocked { .. }
        | Event::TransitionReversed { .. }
        | Event::TransitionCancelled { .. } => theme.warning(),
        Event::TransitionStarted { .. } | Event::TransitionCompleted { .. } => theme.emphasis(),
        _ => theme.text(),
    }
}
