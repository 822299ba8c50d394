//! The binding tables: every listed key reaches its action, and no key
//! means two things.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::*;
use crate::ui::{
    Action,
    keys::{BINDINGS, Binding, Key, NAME_FILTER_BINDINGS, lookup},
};

/// Builds the key event a terminal sends for a table key.
fn press(key: Key) -> KeyEvent {
    match key {
        Key::Char(c) if c.is_ascii_uppercase() || "?+".contains(c) => {
            KeyEvent::new(KeyCode::Char(c), KeyModifiers::SHIFT)
        }
        Key::Char(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
        Key::Ctrl(c) => KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL),
        Key::Code(KeyCode::BackTab) => KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
        Key::Code(code) => KeyEvent::new(code, KeyModifiers::NONE),
    }
}

fn assert_table_consistent(table: &[Binding]) {
    for binding in table {
        for &key in binding.keys {
            assert_eq!(lookup(table, &press(key)), Some(binding.action), "{key:?}");
        }
    }
    let keys: Vec<Key> = table.iter().flat_map(|b| b.keys.iter().copied()).collect();
    for (i, key) in keys.iter().enumerate() {
        assert!(!keys[i + 1..].contains(key), "{key:?} is bound twice");
    }
}

#[test]
fn dashboard_keys_reach_actions() {
    assert_table_consistent(BINDINGS);
}

#[test]
fn name_filter_keys_reach_actions() {
    assert_table_consistent(NAME_FILTER_BINDINGS);
}

#[test]
fn required_keys_bound() {
    let cases = [
        (press(Key::Char('q')), Action::Quit),
        (press(Key::Ctrl('c')), Action::Quit),
        (press(Key::Code(KeyCode::Tab)), Action::FocusNext),
        (press(Key::Code(KeyCode::Up)), Action::Up),
        (press(Key::Code(KeyCode::Down)), Action::Down),
        (press(Key::Char('k')), Action::Up),
        (press(Key::Char('j')), Action::Down),
        (press(Key::Code(KeyCode::Enter)), Action::Toggle),
        (press(Key::Char('f')), Action::CycleFilter),
        (press(Key::Char('s')), Action::CycleSort),
        (press(Key::Char('/')), Action::EditNameFilter),
        (press(Key::Char(' ')), Action::TogglePause),
        (press(Key::Char('n')), Action::Step),
        (press(Key::Char('N')), Action::NextTransition),
        (press(Key::Char('+')), Action::Faster),
        (press(Key::Char('-')), Action::Slower),
        (press(Key::Char('?')), Action::Help),
    ];
    for (event, action) in cases {
        assert_eq!(lookup(BINDINGS, &event), Some(action), "{event:?}");
    }
}

#[test]
fn ctrl_letter_is_not_letter() {
    let ctrl_q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL);
    assert_eq!(lookup(BINDINGS, &ctrl_q), None);
}

#[test]
fn key_release_ignored() {
    let mut release = press(Key::Char('q'));
    release.kind = KeyEventKind::Release;
    assert_eq!(lookup(BINDINGS, &release), None);
}

#[test]
fn q_quits() {
    let mut app = scenario_app(80, 24);
    app.handle_key(press(Key::Char('q')));
    assert!(app.should_quit());
}

#[test]
fn typing_q_in_name_filter_does_not_quit() {
    let mut app = scenario_app(80, 24);
    app.handle_key(press(Key::Char('/')));
    app.handle_key(press(Key::Char('q')));
    assert!(!app.should_quit());
    assert_eq!(app.task_table().name, "q");

    app.handle_key(press(Key::Ctrl('c')));
    assert!(app.should_quit());
}

#[test]
fn help_toggles_and_escape_closes() {
    let mut app = scenario_app(80, 24);
    app.handle_key(press(Key::Char('?')));
    assert!(app.help_shown());
    app.handle_key(press(Key::Code(KeyCode::Esc)));
    assert!(!app.help_shown());
}

#[test]
fn key_labels_readable() {
    assert_eq!(BINDINGS[0].keys_label(), "q / Ctrl-C");
    assert_eq!(Key::Char(' ').label(), "Space");
    assert_eq!(Key::Code(KeyCode::BackTab).label(), "Shift-Tab");
}
