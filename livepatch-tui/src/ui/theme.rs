//! Styles of the dashboard, with colors or, under `NO_COLOR`, with bold,
//! reverse video and text markers only.

use ratatui::style::{Color, Modifier, Style};

use crate::{event::Severity, model::TaskStatus};

/// The styles every pane draws with. Without color, each style keeps only
/// its modifiers, so that no cell gets a foreground or background color.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn colored() -> Self {
        Self { color: true }
    }

    /// Styles without any color, as <https://no-color.org> requests.
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// Plain when `NO_COLOR` is set to a non-empty value, colored otherwise.
    pub fn from_env() -> Self {
        match std::env::var_os("NO_COLOR") {
            Some(value) if !value.is_empty() => Self::plain(),
            _ => Self::colored(),
        }
    }

    pub fn uses_color(&self) -> bool {
        self.color
    }

    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    pub fn text(&self) -> Style {
        Style::new()
    }

    /// Secondary text: labels, units, absent values.
    pub fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    pub fn label(&self) -> Style {
        self.fg(Color::Gray)
    }

    pub fn title(&self, focused: bool) -> Style {
        if focused {
            self.fg(Color::Cyan)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        }
    }

    pub fn border(&self, focused: bool) -> Style {
        if focused {
            self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            self.fg(Color::DarkGray)
        }
    }

    /// Something that needs attention now: lost events, a stuck task, a
    /// forced transition, an error finding.
    pub fn alert(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }

    pub fn warning(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }

    pub fn emphasis(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Style of the selected row of a table or tree.
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn severity(&self, severity: Severity) -> Style {
        match severity {
            Severity::Error => self.alert(),
            Severity::Warning => self.warning(),
            Severity::Info => self.label(),
        }
    }

    pub fn status(&self, status: TaskStatus) -> Style {
        match status {
            TaskStatus::Blocked => self.warning(),
            TaskStatus::Pending => self.text(),
            TaskStatus::Switched => self.good(),
        }
    }

    pub fn gauge(&self) -> Style {
        self.fg(Color::Green)
    }

    pub fn sparkline(&self) -> Style {
        self.fg(Color::Yellow)
    }
}
