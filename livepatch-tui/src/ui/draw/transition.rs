//! The transition in progress: target, progress, tasks left over time,
//! passes, reversal and force. Without one, the latest finished transition.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Gauge, Paragraph, Sparkline},
};

use crate::{
    model::{Transition, TransitionOutcome},
    ui::{app::App, format},
};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(transition) = &app.model.transition else {
        render_idle(frame, area, app);
        return;
    };

    let block = app.pane_block(None, "Transition");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }

    let [info, gauge, chart] = Layout::vertical([
        Constraint::Length(u16::from(inner.height >= 2)),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(info_line(app, transition)), info);
    render_gauge(frame, gauge, app);
    render_tasks_left(frame, chart, app, transition);
}

/// Patch, target, the reversal and force marks, elapsed time and passes.
/// The marks come first so that a narrow pane keeps them.
fn info_line(app: &App, transition: &Transition) -> Line<'static> {
    let theme = &app.theme;
    let mut spans = vec![
        Span::styled(transition.patch.clone(), theme.emphasis()),
        Span::raw(format!(" → {}", transition.target.as_str())),
    ];
    if !transition.reversals.is_empty() {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            format!("REVERSED ×{}", transition.reversals.len()),
            theme.warning(),
        ));
    }
    if transition.forced_ns.is_some() || app.model.is_forced(&transition.patch) {
        spans.push(Span::raw("  "));
        spans.push(Span::styled("FORCED", theme.alert()));
    }

    let elapsed = transition.elapsed_ns(app.now_ns());
    spans.extend([
        Span::styled("  elapsed ", theme.label()),
        Span::raw(format::duration_ns(elapsed)),
        Span::styled("  passes ", theme.label()),
        Span::raw(transition.passes.len().to_string()),
    ]);
    if let Some(pass) = transition.passes.last() {
        let took = format::duration_ns(pass.duration_us.saturating_mul(1_000));
        let left = format::count(pass.tasks_left.into());
        spans.push(Span::styled(
            format!(" (last {took}, {left} left)"),
            theme.dim(),
        ));
    }
    Line::from(spans)
}

/// Switched out of seen, with blocked and stuck counts in the label.
fn render_gauge(frame: &mut Frame, area: Rect, app: &App) {
    let tasks = &app.model.tasks;
    let seen = tasks.len() as u64;
    let switched = seen - u64::from(tasks.pending_count()).min(seen);
    let blocked = tasks.blocked_count();
    let stuck = app.tasks.stuck.len();
    let ratio = if seen == 0 {
        0.0
    } else {
        switched as f64 / seen as f64
    };

    let mut label = format!(
        "switched {} / {} seen ({:.0}%) · blocked {}",
        format::count(switched),
        format::count(seen),
        ratio * 100.0,
        format::count(blocked as u64),
    );
    if stuck > 0 {
        label.push_str(&format!(" · STUCK {stuck}"));
    }
    let gauge = Gauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(Span::styled(label, app.theme.emphasis()))
        .use_unicode(true)
        .gauge_style(app.theme.gauge());
    frame.render_widget(gauge, area);
}

/// Draws a sparkline of tasks not yet switched, from the start of the
/// transition to now, one column per equal slice of time.
fn render_tasks_left(frame: &mut Frame, area: Rect, app: &App, transition: &Transition) {
    if area.height == 0 || area.width < 12 {
        return;
    }
    const GUTTER: u16 = 10;
    let [labels, chart] =
        Layout::horizontal([Constraint::Length(GUTTER), Constraint::Fill(1)]).areas(area);

    let samples = resample(transition, app.now_ns(), usize::from(chart.width));
    let max = samples.iter().flatten().copied().max().unwrap_or(0);
    let now_left = app.model.tasks.pending_count();
    let mut gutter = vec![Line::styled(
        format!("left {}", format::count(now_left.into())),
        app.theme.label(),
    )];
    if labels.height >= 2 {
        gutter.push(Line::styled(
            format!("max {}", format::count(max)),
            app.theme.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(gutter), labels);

    let sparkline = Sparkline::default()
        .data(samples)
        .max(max.max(1))
        .style(app.theme.sparkline());
    frame.render_widget(sparkline, chart);
}

/// Tasks left at the end of each of `columns` equal slices of the time from
/// the start of the transition to `now_ns`, or `None` before the first
/// sample.
pub fn resample(transition: &Transition, now_ns: u64, columns: usize) -> Vec<Option<u64>> {
    let start = transition.started_ns;
    let span = now_ns.saturating_sub(start).max(1);
    let samples = &transition.tasks_left;

    (1..=columns as u64)
        .map(|column| {
            let end = start + span * column / columns as u64;
            let after = samples.partition_point(|&(ts, _)| ts <= end);
            after.checked_sub(1).map(|i| u64::from(samples[i].1))
        })
        .collect()
}

fn render_idle(frame: &mut Frame, area: Rect, app: &App) {
    let block = app.pane_block(None, "Transition");
    let theme = &app.theme;
    let line = match app.model.history.back() {
        None => Line::styled("no transition seen yet", theme.dim()),
        Some(last) => {
            let outcome = match last.outcome {
                TransitionOutcome::Completed => "completed",
                TransitionOutcome::Cancelled => "cancelled",
            };
            let mut spans = vec![
                Span::styled("no transition in progress; last: ", theme.dim()),
                Span::styled(last.patch.clone(), theme.emphasis()),
                Span::raw(format!(
                    " → {} {outcome} in {} after {}",
                    last.target.as_str(),
                    format::duration_ms(last.duration_ms),
                    format::plural(last.passes.into(), "pass")
                )),
            ];
            if last.forced {
                spans.push(Span::styled("  FORCED", theme.alert()));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line).block(block), area);
}
