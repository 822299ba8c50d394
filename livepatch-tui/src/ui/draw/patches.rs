//! The patch tree: replace sets, patches with their flags, objects with
//! their patched state, functions with their sympos.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use crate::{
    event::{ObjectInfo, PatchInfo},
    model::{CallStats, function_label},
    ui::{
        app::{App, Pane, keep_visible},
        format,
        theme::Theme,
        tree::{self, Node, TreeRow},
    },
};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let rows = tree::rows(&app.model, &app.collapsed);
    let title = format!("Patches {}", app.model.patches.len());
    let block = app.pane_block(Some(Pane::Patches), &title);
    let height = usize::from(block.inner(area).height);

    if rows.is_empty() {
        let line = Line::styled("no livepatch loaded", app.theme.dim());
        frame.render_widget(Paragraph::new(line).block(block), area);
        return;
    }

    let cursor = app.tree_cursor.min(rows.len() - 1);
    let offset = keep_visible(app.tree_offset, cursor, height);
    let lines: Vec<Line> = rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(index, row)| {
            let line = row_line(row, app);
            let selected = index == cursor && app.focus == Pane::Patches;
            if selected {
                line.style(app.theme.selected())
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn row_line(row: &TreeRow, app: &App) -> Line<'static> {
    let theme = &app.theme;
    let indent = "  ".repeat(usize::from(row.depth));
    let fold = match row.expanded {
        Some(true) => "▾ ",
        Some(false) => "▸ ",
        None => "  ",
    };
    let mut spans = vec![Span::raw(format!("{indent}{fold}"))];

    match &row.node {
        Node::ReplaceSet(Some(set)) => {
            spans.push(Span::styled(format!("replace set {set}"), theme.emphasis()));
        }
        Node::ReplaceSet(None) => {
            spans.push(Span::styled("no replace set reported", theme.emphasis()));
        }
        Node::Patch(patch) => spans.extend(patch_spans(patch, app)),
        Node::Object(object, transition) => spans.extend(object_spans(object, *transition, theme)),
        Node::Function {
            object,
            function,
            overridden_by,
        } => {
            spans.push(Span::raw(format!("{},{}", function.name, function.sympos)));
            if let Some(owner) = overridden_by {
                spans.push(Span::styled(
                    format!("  runs {owner}'s version"),
                    theme.dim(),
                ));
            }
            let label = function_label(object, &function.name, function.sympos);
            if let Some(stats) = app.model.calls.get(&label) {
                spans.extend(call_spans(stats, theme));
            }
        }
    }
    Line::from(spans)
}

fn patch_spans(patch: &PatchInfo, app: &App) -> Vec<Span<'static>> {
    let theme = &app.theme;
    let mut spans = vec![Span::styled(patch.name.clone(), theme.emphasis())];

    // Replace sets are shown as parent nodes. Without them the kernel's
    // `replace` flag decides between replacing all and stacking.
    if patch.replace_set.is_none() {
        let kind = match patch.cumulative {
            Some(true) => "cumulative",
            Some(false) => "stacked",
            None => "replace unknown",
        };
        spans.push(Span::styled(format!("  {kind}"), theme.label()));
    }
    if let Some(order) = patch.stack_order {
        spans.push(Span::styled(format!("  #{order}"), theme.dim()));
    }

    let (enabled, enabled_style) = if patch.enabled {
        ("enabled", theme.good())
    } else {
        ("disabled", theme.dim())
    };
    spans.push(Span::styled(format!("  {enabled}"), enabled_style));
    if patch.transition {
        spans.push(Span::styled("  TRANSITION", theme.warning()));
    }
    if app.model.is_forced(&patch.name) {
        spans.push(Span::styled("  FORCED", theme.alert()));
    }
    spans
}

/// Builds the calls of the latest interval: how many ran the original code
/// and how many each patch's replacement.
fn call_spans(stats: &CallStats, theme: &Theme) -> Vec<Span<'static>> {
    let interval = format::duration_ms(stats.last_interval_ms as f64);
    let mut spans = vec![Span::styled(
        format!("  calls in {interval}"),
        theme.label(),
    )];
    // The marker comes before the counts so that a narrow pane keeps it;
    // the findings pane lists the reason.
    if stats.blind_spot.is_some() {
        spans.push(Span::styled(" (unreliable)", theme.warning()));
    }

    let mut counts = format!(": original {}", stats.last_original);
    for (patch, count) in &stats.last_patched {
        counts.push_str(&format!(", {patch} {count}"));
    }
    spans.push(Span::styled(counts, theme.label()));
    spans
}

fn object_spans(object: &ObjectInfo, transition: bool, theme: &Theme) -> Vec<Span<'static>> {
    // An object is unpatched in a transition too (before it is patched or
    // once it is unpatched), and vmlinux is always loaded.
    let (state, style) = match object.patched {
        Some(true) => ("patched", theme.good()),
        Some(false) if transition || object.name == "vmlinux" => ("not patched", theme.dim()),
        Some(false) => ("not patched (module not loaded)", theme.warning()),
        None => ("patched state unknown", theme.dim()),
    };
    vec![
        Span::raw(object.name.clone()),
        Span::styled(format!("  {state}"), style),
        Span::styled(
            format!(
                "  {}",
                format::plural(object.functions.len() as u64, "function")
            ),
            theme.dim(),
        ),
    ]
}
