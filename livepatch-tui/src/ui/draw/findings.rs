//! Validator findings, then the probes that did not attach and the
//! features they leave out.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
};

use crate::{
    event::Finding,
    ui::{
        app::{App, Pane},
        format,
    },
};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let title = format!("Findings {}", app.model.findings.len());
    let block = app.pane_block(Some(Pane::Findings), &title);

    let mut lines = Vec::new();
    if app.model.findings.is_empty() {
        lines.push(Line::styled(
            "no findings: the loaded patches look sound",
            app.theme.dim(),
        ));
    }
    for finding in &app.model.findings {
        lines.extend(finding_lines(finding, app));
    }
    lines.extend(probe_lines(app));
    lines.extend(blind_spot_lines(app));

    let paragraph = Paragraph::new(lines.split_off(app.findings_offset.min(lines.len())))
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, area);
}

fn finding_lines(finding: &Finding, app: &App) -> [Line<'static>; 2] {
    let theme = &app.theme;
    let mut head = vec![
        Span::styled(
            format!("{:<8}", finding.severity.as_str()),
            theme.severity(finding.severity),
        ),
        Span::styled(finding.rule.clone(), theme.emphasis()),
    ];
    if let Some(function) = &finding.function {
        head.push(Span::raw(format!("  {function}")));
    }
    if let Some(state) = finding.state_id {
        head.push(Span::raw(format!("  state {state}")));
    }
    if !finding.patches.is_empty() {
        head.push(Span::styled(
            format!("  [{}]", finding.patches.join(", ")),
            theme.label(),
        ));
    }
    let message = Line::raw(format!("        {}", finding.message));
    [Line::from(head), message]
}

/// Lists the probes that did not attach and the feature each one turns
/// off.
fn probe_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let missing: Vec<_> = app
        .model
        .probes
        .iter()
        .filter(|(_, p)| !p.attached)
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }

    let mut lines = vec![Line::styled(
        format!(
            "not attached: {}",
            format::plural(missing.len() as u64, "probe")
        ),
        theme.warning(),
    )];
    for (name, probe) in missing {
        let reason = probe.reason.as_deref().unwrap_or("no reason given");
        lines.push(Line::from(vec![
            Span::styled(format!("  {name}"), theme.emphasis()),
            Span::raw(format!(": {reason}; without it: {}", probe.feature)),
        ]));
    }
    lines
}

/// Lists the functions whose call counts cannot be trusted, and why.
fn blind_spot_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let unreliable: Vec<_> = app
        .model
        .calls
        .iter()
        .filter_map(|(function, stats)| Some((function, stats.blind_spot.as_deref()?)))
        .collect();
    if unreliable.is_empty() {
        return Vec::new();
    }

    let mut lines = vec![Line::styled(
        format!(
            "call counts unreliable: {}",
            format::plural(unreliable.len() as u64, "function")
        ),
        theme.warning(),
    )];
    for (function, reason) in unreliable {
        lines.push(Line::from(vec![
            Span::styled(format!("  {function}"), theme.emphasis()),
            Span::raw(format!(": {reason}")),
        ]));
    }
    lines
}
