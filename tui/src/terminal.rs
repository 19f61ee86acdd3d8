//! The real terminal: raw mode and the alternate screen, behind a guard that puts the terminal
//! back however the program leaves it: a normal exit, an error, or a panic (a panic hook
//! restores it before the previous hook prints the message, so the message is readable).

use crate::app::{App, Key};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use std::io::{self, Stdout};
use std::sync::Once;

/// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    restored: bool,
}

impl std::fmt::Debug for TerminalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalGuard").field("restored", &self.restored).finish()
    }
}

impl TerminalGuard {
    /// Installs the panic hook (once), enters raw mode and the alternate screen.
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        let setup = execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(TerminalGuard { terminal, restored: false }),
            Err(error) => {
                let _ = restore();
                Err(error)
            }
        }
    }

    /// Draws one frame of `app`.
    pub fn draw(&mut self, app: &App) -> io::Result<()> {
        self.terminal.draw(|frame| frame.render_widget(app, frame.area()))?;
        Ok(())
    }

    /// Restores the terminal now, reporting an error (dropping the guard restores it too,
    /// silently).
    pub fn restore(mut self) -> io::Result<()> {
        self.restored = true;
        restore()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if !self.restored {
            let _ = restore();
        }
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor. Harmless when the terminal
/// is already restored.
pub fn restore() -> io::Result<()> {
    let raw = disable_raw_mode();
    execute!(io::stdout(), LeaveAlternateScreen, cursor::Show)?;
    raw
}

/// Chains a hook that restores the terminal before the previous panic hook runs.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = restore();
            previous(info);
        }));
    });
}

/// Waits for the next key press; `None` for other events (a resize redraws anyway).
pub fn next_key() -> io::Result<Option<Key>> {
    match event::read()? {
        Event::Key(key) => Ok(key_from(key)),
        _ => Ok(None),
    }
}

/// The app's key for a crossterm key event; `None` for releases and keys the app ignores.
pub fn key_from(event: KeyEvent) -> Option<Key> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    Some(match event.code {
        KeyCode::Char('c') if ctrl => Key::CtrlC,
        KeyCode::Char(c) if !ctrl => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossterm_keys_map_to_app_keys() {
        let press = |code, modifiers| KeyEvent::new(code, modifiers);
        assert_eq!(key_from(press(KeyCode::Char('j'), KeyModifiers::NONE)), Some(Key::Char('j')));
        assert_eq!(key_from(press(KeyCode::Char('G'), KeyModifiers::SHIFT)), Some(Key::Char('G')));
        assert_eq!(key_from(press(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(Key::CtrlC));
        assert_eq!(key_from(press(KeyCode::BackTab, KeyModifiers::SHIFT)), Some(Key::BackTab));
        assert_eq!(key_from(press(KeyCode::F(5), KeyModifiers::NONE)), None);
        let mut release = press(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(key_from(release), None);
    }
}
