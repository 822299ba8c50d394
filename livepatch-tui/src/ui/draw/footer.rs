//! The footer: the name filter prompt, a notice, or key hints. In the
//! compact layout, the panes Tab cycles through.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use crate::ui::{
    app::{App, Pane},
    keys::{Action, BINDINGS, NAME_FILTER_BINDINGS},
};

/// Actions whose keys the footer recalls, from the binding table.
const HINTS: &[(Action, &str)] = &[
    (Action::Help, "help"),
    (Action::FocusNext, "focus"),
    (Action::CycleFilter, "filter"),
    (Action::CycleSort, "sort"),
    (Action::EditNameFilter, "name"),
    (Action::Quit, "quit"),
];

pub fn render(frame: &mut Frame, area: Rect, app: &App, compact: bool) {
    let line = if app.tasks.editing {
        prompt(app)
    } else if let Some(notice) = &app.notice {
        // A notice lasts seconds, so it gets the whole line and is not
        // cut on narrow terminals.
        Line::styled(notice.text.clone(), app.theme.warning())
    } else {
        let mut spans = if compact { pane_tabs(app) } else { Vec::new() };
        spans.extend(hints(app));
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// Returns the first key bound to an action, as the help overlay shows it.
fn key_of(table: &[crate::ui::keys::Binding], action: Action) -> String {
    table
        .iter()
        .find(|b| b.action == action)
        .and_then(|b| b.keys.first())
        .map_or_else(String::new, |key| key.label())
}

fn hints(app: &App) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (action, word) in HINTS {
        spans.push(Span::styled(
            key_of(BINDINGS, *action),
            app.theme.emphasis(),
        ));
        spans.push(Span::styled(format!(" {word}  "), app.theme.label()));
    }
    spans
}

fn prompt(app: &App) -> Line<'static> {
    let keep = key_of(NAME_FILTER_BINDINGS, Action::KeepNameFilter);
    let clear = key_of(NAME_FILTER_BINDINGS, Action::CancelNameFilter);
    Line::from(vec![
        Span::styled("/ name: ", app.theme.emphasis()),
        Span::raw(app.tasks.name.clone()),
        Span::styled("█", app.theme.emphasis()),
        Span::styled(format!("   {keep} keep · {clear} clear"), app.theme.label()),
    ])
}

/// Pane names with the focused one marked. Findings show their count so
/// that they are noticed while another pane has focus.
fn pane_tabs(app: &App) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for pane in Pane::ALL {
        let mut name = pane.title().to_owned();
        if pane == Pane::Findings && !app.model.findings.is_empty() {
            name.push_str(&format!(" {}", app.model.findings.len()));
        }
        if pane == app.focus {
            spans.push(Span::styled(format!("[{name}]"), app.theme.title(true)));
        } else {
            spans.push(Span::styled(format!(" {name} "), app.theme.label()));
        }
    }
    spans.push(Span::raw("  "));
    spans
}
