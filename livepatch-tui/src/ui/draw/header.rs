//! The header: where events come from, and the counters that must never be
//! out of sight (probes attached, events lost, findings).

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use crate::{
    event::Severity,
    ui::{
        app::{App, FeedState},
        format,
    },
};

/// Narrower terminals get the short wording.
const NARROW_WIDTH: u16 = 100;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let narrow = area.width < NARROW_WIDTH;
    let lines = vec![source_line(app, narrow), counters_line(app, narrow)];
    frame.render_widget(Paragraph::new(lines), area);
}

fn separator<'a>(app: &App) -> Span<'a> {
    Span::styled(" · ", app.theme.dim())
}

/// Mode, kernel, and the state of the feed.
fn source_line(app: &App, narrow: bool) -> Line<'static> {
    let theme = &app.theme;
    let mut spans = Vec::new();
    if !narrow {
        spans.push(Span::styled("livepatch-tui ", theme.title(false)));
    }
    spans.push(Span::styled(app.header.mode.clone(), theme.emphasis()));
    spans.push(separator(app));
    let kernel = app.header.kernel.as_deref().unwrap_or("unknown");
    spans.push(Span::styled("kernel ", theme.label()));
    spans.push(Span::raw(kernel.to_owned()));

    if let FeedState::Live { closed: true } = app.feed {
        spans.push(separator(app));
        spans.push(Span::styled(
            "LIVE FEED CLOSED: no more events will arrive",
            theme.alert(),
        ));
    }
    if !narrow && let Some(replay) = replay_spans(app, false) {
        spans.push(separator(app));
        spans.extend(replay);
    }
    Line::from(spans)
}

/// Probes, lost events and findings, and the replay position on narrow
/// terminals.
fn counters_line(app: &App, narrow: bool) -> Line<'static> {
    let theme = &app.theme;
    let model = &app.model;
    let mut spans = Vec::new();

    let (attached, known) = model.probe_counts();
    let probe_style = if attached < known {
        theme.warning()
    } else {
        theme.text()
    };
    spans.push(Span::styled("probes ", theme.label()));
    let attached_word = if narrow { "" } else { " attached" };
    spans.push(Span::styled(
        format!("{attached}/{known}{attached_word}"),
        probe_style,
    ));

    spans.push(separator(app));
    let lost_style = if model.events_lost > 0 {
        theme.alert()
    } else {
        theme.text()
    };
    spans.push(Span::styled("events lost ", theme.label()));
    spans.push(Span::styled(format::count(model.events_lost), lost_style));

    spans.push(separator(app));
    spans.extend(findings_spans(app));

    if app.header.skipped_lines > 0 {
        spans.push(separator(app));
        spans.push(Span::styled(
            match app.header.skipped_lines {
                1 => "1 line skipped".to_owned(),
                count => format!("{count} lines skipped"),
            },
            theme.warning(),
        ));
    }

    if narrow && let Some(replay) = replay_spans(app, true) {
        spans.push(separator(app));
        spans.extend(replay);
    }
    Line::from(spans)
}

fn findings_spans(app: &App) -> Vec<Span<'static>> {
    let theme = &app.theme;
    let findings = &app.model.findings;
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();

    let mut spans = vec![Span::styled("findings ", theme.label())];
    spans.push(Span::raw(findings.len().to_string()));
    if errors > 0 {
        spans.push(Span::raw(" ("));
        spans.push(Span::styled(format!("{errors} error"), theme.alert()));
        spans.push(Span::raw(")"));
    } else if warnings > 0 {
        spans.push(Span::raw(" ("));
        spans.push(Span::styled(format!("{warnings} warning"), theme.warning()));
        spans.push(Span::raw(")"));
    }
    spans
}

/// Position, speed and pause state of a replay, or `None` in live mode.
fn replay_spans(app: &App, short: bool) -> Option<Vec<Span<'static>>> {
    let FeedState::Replay { player, .. } = &app.feed else {
        return None;
    };
    let theme = &app.theme;
    let mut spans = Vec::new();

    let state = if player.finished() {
        Span::styled("■ end", theme.emphasis())
    } else if player.paused {
        Span::styled("‖ PAUSED", theme.warning())
    } else {
        Span::styled("▶", theme.good())
    };
    spans.push(state);

    let position = format::duration_ns(player.position_ns().min(player.duration_ns()));
    let total = format::duration_ns(player.duration_ns());
    spans.push(Span::raw(format!(" {position} / {total} ")));
    spans.push(Span::styled(format::speed(player.speed), theme.emphasis()));
    if !short {
        spans.push(separator(app));
        let played = format::count(player.played() as u64);
        let len = format::count(player.len() as u64);
        spans.push(Span::raw(format!("{played}/{len} events")));
    }
    Some(spans)
}
