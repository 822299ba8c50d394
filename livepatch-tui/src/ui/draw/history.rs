//! Finished transitions, newest first: outcome, duration, passes, and the
//! task that held each one longest.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
};

use crate::{
    model::{TransitionOutcome, TransitionSummary},
    ui::{
        app::{App, Pane},
        format,
    },
};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let history = &app.model.history;
    let title = format!("History {}", history.len());
    let block = app.pane_block(Some(Pane::History), &title);

    let lines: Vec<Line> = if history.is_empty() {
        vec![Line::styled("no finished transition yet", app.theme.dim())]
    } else {
        history
            .iter()
            .rev()
            .skip(app.history_offset)
            .flat_map(|summary| summary_lines(summary, app))
            .collect()
    };
    let paragraph = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, area);
}

/// Two lines per transition: what and how long, then its longest blocker.
fn summary_lines(summary: &TransitionSummary, app: &App) -> [Line<'static>; 2] {
    let theme = &app.theme;
    let (outcome, outcome_style) = match summary.outcome {
        TransitionOutcome::Completed => ("completed", theme.good()),
        TransitionOutcome::Cancelled => ("cancelled", theme.warning()),
    };

    let mut head = vec![
        Span::styled(summary.patch.clone(), theme.emphasis()),
        Span::raw(format!(" → {} ", summary.target.as_str())),
        Span::styled(outcome, outcome_style),
        Span::raw(format!(
            " in {} · {} · {}, {} blocked",
            format::duration_ms(summary.duration_ms),
            format::plural(summary.passes.into(), "pass"),
            format::plural(summary.tasks_seen.into(), "task"),
            format::count(summary.tasks_blocked.into()),
        )),
    ];
    if summary.reversals > 0 {
        head.push(Span::styled(
            format!(" · reversed ×{}", summary.reversals),
            theme.warning(),
        ));
    }
    if summary.forced {
        head.push(Span::styled(" · FORCED", theme.alert()));
    }
    if summary.tasks_unswitched > 0 {
        head.push(Span::styled(
            format!(" · {} never seen switching", summary.tasks_unswitched),
            theme.warning(),
        ));
    }

    [Line::from(head), blocker_line(summary, app)]
}

/// Builds the line naming the task that failed most checks.
fn blocker_line(summary: &TransitionSummary, app: &App) -> Line<'static> {
    let theme = &app.theme;
    match &summary.longest_blocker {
        None => Line::styled("    no task blocked it", theme.dim()),
        Some(b) => {
            let mut text = format!("    longest blocker: {}[{}]", b.comm, b.pid);
            if let Some(reason) = b.reason {
                text.push_str(&format!(" {}", reason.as_str()));
            }
            if let Some(function) = &b.function {
                text.push_str(&format!(" in {function}"));
            }
            text.push_str(&format!(
                ", {}",
                format::plural(b.attempts.into(), "attempt")
            ));
            Line::styled(text, theme.label())
        }
    }
}
