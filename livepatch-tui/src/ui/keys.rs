//! The key bindings. [`BINDINGS`] and [`NAME_FILTER_BINDINGS`] are the only
//! place a key is given a meaning: key handling looks keys up there, and the
//! help overlay lists them.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A dashboard command bound to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    /// Closes the help overlay, or clears the name filter.
    Back,
    FocusNext,
    FocusPrevious,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Expands or collapses the selected node of the patch tree.
    Toggle,
    CycleFilter,
    CycleSort,
    EditNameFilter,
    /// Keeps the name filter being typed and leaves the prompt.
    KeepNameFilter,
    /// Drops the name filter being typed and leaves the prompt.
    CancelNameFilter,
    DeleteChar,
    TogglePause,
    Step,
    NextTransition,
    Faster,
    Slower,
}

/// A key as the tables write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A printable character, with or without Shift.
    Char(char),
    /// A letter with Ctrl.
    Ctrl(char),
    /// A non-printing key without Ctrl or Alt.
    Code(KeyCode),
}

impl Key {
    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl_or_alt = event
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        match self {
            Key::Char(c) => event.code == KeyCode::Char(c) && !ctrl_or_alt,
            Key::Ctrl(c) => {
                event.code == KeyCode::Char(c) && event.modifiers.contains(KeyModifiers::CONTROL)
            }
            Key::Code(code) => event.code == code && !ctrl_or_alt,
        }
    }

    /// Returns the key as the help overlay shows it.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "Space".to_owned(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Code(code) => match code {
                KeyCode::Up => "↑".to_owned(),
                KeyCode::Down => "↓".to_owned(),
                KeyCode::PageUp => "PgUp".to_owned(),
                KeyCode::PageDown => "PgDn".to_owned(),
                KeyCode::BackTab => "Shift-Tab".to_owned(),
                KeyCode::Backspace => "Backspace".to_owned(),
                other => other.to_string(),
            },
        }
    }
}

/// One line of a binding table: the keys, what they do, and the help text.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub description: &'static str,
}

impl Binding {
    /// Returns the keys as the help overlay shows them: `↑ / k`.
    pub fn keys_label(&self) -> String {
        let labels: Vec<String> = self.keys.iter().map(|k| k.label()).collect();
        labels.join(" / ")
    }
}

const fn bind(keys: &'static [Key], action: Action, description: &'static str) -> Binding {
    Binding {
        keys,
        action,
        description,
    }
}

/// Bindings of the dashboard, in the order the help overlay lists them.
pub const BINDINGS: &[Binding] = &[
    bind(&[Key::Char('q'), Key::Ctrl('c')], Action::Quit, "quit"),
    bind(&[Key::Char('?')], Action::Help, "show or hide this help"),
    bind(
        &[Key::Code(KeyCode::Esc)],
        Action::Back,
        "close help, clear name",
    ),
    bind(
        &[Key::Code(KeyCode::Tab)],
        Action::FocusNext,
        "focus next pane",
    ),
    bind(
        &[Key::Code(KeyCode::BackTab)],
        Action::FocusPrevious,
        "focus previous pane",
    ),
    bind(
        &[Key::Code(KeyCode::Up), Key::Char('k')],
        Action::Up,
        "move up",
    ),
    bind(
        &[Key::Code(KeyCode::Down), Key::Char('j')],
        Action::Down,
        "move down",
    ),
    bind(&[Key::Code(KeyCode::PageUp)], Action::PageUp, "page up"),
    bind(
        &[Key::Code(KeyCode::PageDown)],
        Action::PageDown,
        "page down",
    ),
    bind(
        &[Key::Code(KeyCode::Home), Key::Char('g')],
        Action::Top,
        "first line",
    ),
    bind(
        &[Key::Code(KeyCode::End), Key::Char('G')],
        Action::Bottom,
        "last line (follow events)",
    ),
    bind(
        &[Key::Code(KeyCode::Enter)],
        Action::Toggle,
        "fold or unfold patch tree",
    ),
    bind(
        &[Key::Char('f')],
        Action::CycleFilter,
        "filter all/blocked/kthread",
    ),
    bind(
        &[Key::Char('s')],
        Action::CycleSort,
        "cycle the task sort order",
    ),
    bind(
        &[Key::Char('/')],
        Action::EditNameFilter,
        "filter tasks by name",
    ),
    bind(
        &[Key::Char(' ')],
        Action::TogglePause,
        "pause/resume (replay)",
    ),
    bind(&[Key::Char('n')], Action::Step, "play next event (replay)"),
    bind(
        &[Key::Char('N')],
        Action::NextTransition,
        "next transition (replay)",
    ),
    bind(
        &[Key::Char('+'), Key::Char('=')],
        Action::Faster,
        "play 2× faster (replay)",
    ),
    bind(&[Key::Char('-')], Action::Slower, "play 2× slower (replay)"),
];

/// Bindings while a name filter is typed after `/`. Any other printable
/// character is added to the filter.
pub const NAME_FILTER_BINDINGS: &[Binding] = &[
    bind(
        &[Key::Code(KeyCode::Enter)],
        Action::KeepNameFilter,
        "keep the filter",
    ),
    bind(
        &[Key::Code(KeyCode::Esc)],
        Action::CancelNameFilter,
        "clear the filter",
    ),
    bind(
        &[Key::Code(KeyCode::Backspace)],
        Action::DeleteChar,
        "delete a character",
    ),
    bind(&[Key::Ctrl('c')], Action::Quit, "quit"),
];

/// Looks a key press up in a table. Key releases map to nothing, so that
/// terminals that report them do not act twice.
pub fn lookup(table: &[Binding], event: &KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    table
        .iter()
        .find(|binding| binding.keys.iter().any(|key| key.matches(event)))
        .map(|binding| binding.action)
}

/// Returns the character a key types into the name filter, if it is
/// printable and has no Ctrl or Alt.
pub fn typed_char(event: &KeyEvent) -> Option<char> {
    if event.kind == KeyEventKind::Release
        || event
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    {
        return None;
    }
    match event.code {
        KeyCode::Char(c) if !c.is_control() => Some(c),
        _ => None,
    }
}
