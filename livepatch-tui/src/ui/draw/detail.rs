//! The selected task in full: why it does not switch, where it sleeps, how
//! long it has waited, and how it switched in the end.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
};

use crate::{
    model::{STUCK_STREAK, Task},
    ui::{app::App, format, theme::Theme},
};

/// Inner height from which each field gets its own line.
const FULL_HEIGHT: u16 = 10;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let block = app.pane_block(None, "Task");
    let inner = block.inner(area);
    let task = app
        .tasks
        .selected_key()
        .and_then(|key| app.model.tasks.get(key));
    let Some(task) = task else {
        let text = Line::styled("no task selected", app.theme.dim());
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    };

    let stuck = app.tasks.stuck.contains(&task.task.key());
    let lines = if inner.height >= FULL_HEIGHT {
        full_lines(task, stuck, app)
    } else {
        short_lines(task, stuck, app)
    };
    let paragraph = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, area);
}

/// Time base for the task's timestamps: the start of its transition.
fn base_ns(app: &App) -> u64 {
    match (&app.model.transition, app.model.history.back()) {
        (Some(transition), _) => transition.started_ns,
        (None, Some(last)) => last.started_ns,
        (None, None) => 0,
    }
}

fn identity(task: &Task, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(task.task.comm.clone(), theme.emphasis()),
        Span::raw(format!(
            "  pid {}  tgid {}  {}",
            task.task.pid,
            task.task.tgid,
            task.task.task_kind.as_str()
        )),
    ])
}

fn stuck_line(task: &Task, theme: &Theme) -> Line<'static> {
    Line::styled(
        format!(
            "STUCK: same failure {} checks in a row (threshold {STUCK_STREAK}); \
             unlikely to switch on its own",
            task.same_failure_streak
        ),
        theme.alert(),
    )
}

fn field(name: &str, value: String, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{name:<12}"), theme.label()),
        Span::raw(value),
    ])
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "—".to_owned())
}

/// Describes how the task switched, or that it has not.
fn switch_text(task: &Task, base: u64) -> String {
    match (task.via, task.switched_ns) {
        (Some(via), Some(at)) => {
            let to = task.state.map_or("", |s| s.as_str());
            format!(
                "{} via {} → {to}",
                format::offset_ns(at, base),
                via.as_str()
            )
        }
        (Some(via), None) => format!("via {}", via.as_str()),
        _ => "not yet".to_owned(),
    }
}

fn full_lines(task: &Task, stuck: bool, app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let base = base_ns(app);
    let tried = |ts: Option<u64>| or_dash(ts.map(|t| format::offset_ns(t, base)));

    let mut lines = vec![identity(task, theme)];
    if stuck {
        lines.push(stuck_line(task, theme));
    }
    lines.extend([
        field("status", task.status.as_str().to_owned(), theme),
        field(
            "reason",
            or_dash(task.reason.map(|r| r.as_str().to_owned())),
            theme,
        ),
        field("function", or_dash(task.function.clone()), theme),
        field("cpu", or_dash(task.cpu.map(|c| c.to_string())), theme),
        field(
            "attempts",
            format!(
                "{} ({} in a row the same way)",
                task.attempts, task.same_failure_streak
            ),
            theme,
        ),
        field("first tried", tried(task.first_tried_ns), theme),
        field("last tried", tried(task.last_tried_ns), theme),
        field("waited", format::waited(task, app.now_ns()), theme),
        field("switched", switch_text(task, base), theme),
        Line::styled("times are from the start of the transition", theme.dim()),
    ]);
    lines.extend(stack_lines(task, theme));
    lines
}

/// The task's kernel stack, innermost first, with the frame of the patched
/// function it sleeps in marked by `>`.
fn stack_lines(task: &Task, theme: &Theme) -> Vec<Line<'static>> {
    if task.stack.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![Line::styled("kernel stack", theme.label())];
    for frame in &task.stack {
        let marked = task
            .function
            .as_deref()
            .is_some_and(|function| frame.split('+').next() == Some(function));
        let line = if marked {
            Line::styled(format!("> {frame}"), theme.alert())
        } else {
            Line::raw(format!("  {frame}"))
        };
        lines.push(line);
    }
    lines
}

fn short_lines(task: &Task, stuck: bool, app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let base = base_ns(app);
    let mut first = identity(task, theme);
    if stuck {
        let text = format!(
            "  STUCK: same failure {}× in a row",
            task.same_failure_streak
        );
        first.push_span(Span::styled(text, theme.alert()));
    }
    let mut lines = vec![first];

    let mut why = vec![Span::styled(
        task.status.as_str(),
        theme.status(task.status),
    )];
    if let Some(reason) = task.reason {
        why.push(Span::raw(format!(": {}", reason.as_str())));
    }
    if let Some(function) = &task.function {
        why.push(Span::raw(format!(" in {function}")));
    }
    if let Some(cpu) = task.cpu {
        why.push(Span::raw(format!(" on cpu {cpu}")));
    }
    lines.push(Line::from(why));

    lines.push(Line::raw(format!(
        "attempts {} · first {} · last {} · waited {}",
        task.attempts,
        or_dash(task.first_tried_ns.map(|t| format::offset_ns(t, base))),
        or_dash(task.last_tried_ns.map(|t| format::offset_ns(t, base))),
        format::waited(task, app.now_ns()),
    )));
    lines.push(Line::raw(format!("switched {}", switch_text(task, base))));
    lines
}
