//! The picker's screen and keys: what is shown (a search line, the clips, a preview of the one
//! selected, the keys in a footer) and what each key does. No I/O apart from the terminal.

use std::fs::File;
use std::io;

use ratatui::Frame;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{execute, terminal};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Wrap};
use tokio::sync::mpsc;

use super::{Entry, Matches};
use crate::error::Failure;
use crate::output::{age, size};

/// What a key asks of the picker's loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    Nothing,
    /// The query changed.
    Search,
    Quit,
    /// Place (or print) this clip.
    Choose(String),
    /// Pin this clip.
    Pin(String),
    /// Unpin this clip.
    Unpin(String),
    Trash(String),
}

/// Where typed letters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Focus {
    /// Into the query.
    Search,
    /// To the list's own keys (p, d, j, k, q).
    List,
}

/// What the picker shows.
pub(super) struct Picker {
    pub(super) query: String,
    found: Matches,
    selected: ListState,
    focus: Focus,
    /// The last thing done, or what went wrong.
    message: Option<String>,
    through_agent: bool,
}

impl Picker {
    pub(super) fn new(query: String, through_agent: bool) -> Picker {
        Picker {
            query,
            found: Matches::default(),
            selected: ListState::default(),
            focus: Focus::Search,
            message: None,
            through_agent,
        }
    }

    /// A new list: the selection goes back to the top.
    pub(super) fn show(&mut self, found: Matches) {
        self.found = found;
        self.selected
            .select((!self.found.entries.is_empty()).then_some(0));
    }

    /// Says how an action went.
    pub(super) fn said(&mut self, failure: Option<Failure>, done: &str) {
        self.message = match failure {
            Some(failure) => Some(failure.message),
            None => Some(done.to_owned()),
        };
    }

    fn current(&self) -> Option<&Entry> {
        self.found.entries.get(self.selected.selected()?)
    }

    fn step(&mut self, by: isize) {
        let len = self.found.entries.len();
        if len == 0 {
            return;
        }
        let at = self.selected.selected().unwrap_or(0) as isize + by;
        self.selected
            .select(Some(at.clamp(0, len as isize - 1) as usize));
    }

    /// What `event` does.
    pub(super) fn key(&mut self, event: Event) -> Action {
        let Event::Key(key) = event else {
            return Action::Nothing;
        };
        if key.kind != KeyEventKind::Press {
            return Action::Nothing;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let current = self.current().map(|entry| (entry.id.clone(), entry.pinned));
        self.message = None;
        match (key.code, self.focus) {
            (KeyCode::Esc, _) | (KeyCode::Char('q'), Focus::List) => Action::Quit,
            (KeyCode::Char('c'), _) if ctrl => Action::Quit,
            (KeyCode::Enter, _) => current.map_or(Action::Nothing, |(id, _)| Action::Choose(id)),
            (KeyCode::Char('p'), focus) if ctrl || focus == Focus::List => {
                current.map_or(Action::Nothing, |(id, pinned)| match pinned {
                    true => Action::Unpin(id),
                    false => Action::Pin(id),
                })
            }
            (KeyCode::Char('d'), focus) if ctrl || focus == Focus::List => {
                current.map_or(Action::Nothing, |(id, _)| Action::Trash(id))
            }
            (KeyCode::Up, _) | (KeyCode::Char('k'), Focus::List) => self.moved(-1),
            (KeyCode::Down, _) | (KeyCode::Char('j'), Focus::List) => self.moved(1),
            (KeyCode::PageUp, _) => self.moved(-10),
            (KeyCode::PageDown, _) => self.moved(10),
            (KeyCode::Home, Focus::List) => self.moved(isize::MIN / 2),
            (KeyCode::End, Focus::List) => self.moved(isize::MAX / 2),
            (KeyCode::Tab, Focus::Search) => {
                self.focus = Focus::List;
                Action::Nothing
            }
            (KeyCode::Tab, Focus::List) | (KeyCode::Char('/'), Focus::List) => {
                self.focus = Focus::Search;
                Action::Nothing
            }
            (KeyCode::Backspace, Focus::Search) => match self.query.pop() {
                Some(_) => Action::Search,
                None => Action::Nothing,
            },
            (KeyCode::Char('u'), Focus::Search) if ctrl => {
                self.query.clear();
                Action::Search
            }
            (KeyCode::Char(c), Focus::Search) if !ctrl => {
                self.query.push(c);
                Action::Search
            }
            _ => Action::Nothing,
        }
    }

    fn moved(&mut self, by: isize) -> Action {
        self.step(by);
        Action::Nothing
    }

    fn draw(&mut self, frame: &mut Frame<'_>) {
        let [top, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        self.draw_search(frame, top);
        let [list, preview] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(body);
        self.draw_list(frame, list);
        self.draw_preview(frame, preview);
        frame.render_widget(Paragraph::new(self.footer()), footer);
    }

    fn draw_search(&self, frame: &mut Frame<'_>, area: Rect) {
        let aliases = self.found.entries.iter().filter(|e| e.is_alias()).count();
        let count = format!(
            "{}{} of {} clips{}",
            match aliases {
                0 => String::new(),
                n => format!("{}, ", crate::output::counted(n as u64, "alias")),
            },
            self.found.entries.len() - aliases,
            self.found.clips,
            if self.through_agent {
                ""
            } else {
                " (no agent)"
            }
        );
        let [line, right] = Layout::horizontal([
            Constraint::Min(10),
            Constraint::Length(count.len() as u16 + 1),
        ])
        .areas(area);
        let prompt = "Search: ";
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(prompt, Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(self.query.as_str()),
            ])),
            line,
        );
        frame.render_widget(Paragraph::new(count).right_aligned(), right);
        if self.focus == Focus::Search {
            let x = line.x + (prompt.len() + self.query.chars().count()) as u16;
            frame.set_cursor_position((x.min(line.right().saturating_sub(1)), line.y));
        }
    }

    fn draw_list(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let items: Vec<ListItem<'_>> = self
            .found
            .entries
            .iter()
            .map(|entry| {
                let when = match entry.is_alias() {
                    true => String::new(),
                    false => age(entry.last_used_ms),
                };
                ListItem::new(format!(
                    "{} {:>3} {:<10.10} {:<5.5} {}",
                    if entry.pinned { "*" } else { " " },
                    when,
                    entry.device_name,
                    entry.kind,
                    entry.preview
                ))
            })
            .collect();
        let title = match self.found.entries.is_empty() {
            true if self.query.is_empty() => " No clips yet ".to_owned(),
            true => " Nothing matches ".to_owned(),
            false => " Clips ".to_owned(),
        };
        let list = List::new(items)
            .block(Block::bordered().title(title))
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol(">");
        frame.render_stateful_widget(list, area, &mut self.selected);
    }

    fn draw_preview(&self, frame: &mut Frame<'_>, area: Rect) {
        let Some(entry) = self.current() else {
            frame.render_widget(Block::bordered().title(" Preview "), area);
            return;
        };
        let title = match entry.is_alias() {
            true => format!(" {}, {} ", entry.kind, size(entry.bytes)),
            false => format!(
                " {}, {}, from {}, {} ago ",
                entry.kind,
                size(entry.bytes),
                entry.device_name,
                age(entry.last_used_ms)
            ),
        };
        let body = match (&entry.text, &entry.name) {
            (Some(text), _) => text.clone(),
            (None, Some(name)) => format!("File {name}, {}", size(entry.bytes)),
            (None, None) => format!("{}, {}", entry.preview, size(entry.bytes)),
        };
        frame.render_widget(
            Paragraph::new(body)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(title)),
            area,
        );
    }

    fn footer(&self) -> Line<'_> {
        if let Some(message) = &self.message {
            return Line::from(message.as_str());
        }
        let keys = match self.focus {
            Focus::Search => {
                "type to search · ↑↓ · Enter place · ^P pin · ^D trash · Tab list · Esc quit"
            }
            Focus::List => "j/k · Enter place · p pin · d trash · / search · q/Esc quit",
        };
        Line::styled(keys, Style::new().add_modifier(Modifier::DIM))
    }
}

/// The terminal, in raw mode on its alternate screen while the picker runs.
pub(super) struct Screen {
    terminal: Option<Terminal<CrosstermBackend<File>>>,
}

impl Screen {
    /// Takes over the terminal (`/dev/tty`, whatever standard output is).
    pub(super) fn open() -> io::Result<Screen> {
        let mut tty = File::options().read(true).write(true).open("/dev/tty")?;
        terminal::enable_raw_mode()?;
        if let Err(error) = execute!(tty, terminal::EnterAlternateScreen) {
            let _ = terminal::disable_raw_mode();
            return Err(error);
        }
        let terminal = Terminal::new(CrosstermBackend::new(tty));
        let mut screen = Screen { terminal: None };
        screen.terminal = Some(terminal.inspect_err(|_| screen.close())?);
        Ok(screen)
    }

    pub(super) fn draw(&mut self, picker: &mut Picker) -> Result<(), Failure> {
        if let Some(terminal) = &mut self.terminal {
            terminal
                .draw(|frame| picker.draw(frame))
                .map_err(|e| Failure::new(format!("the terminal could not be drawn on: {e}")))?;
        }
        Ok(())
    }

    /// Gives the terminal back as it was.
    pub(super) fn close(&mut self) {
        if let Some(mut terminal) = self.terminal.take() {
            let _ = execute!(terminal.backend_mut(), terminal::LeaveAlternateScreen);
            let _ = terminal.show_cursor();
        }
        let _ = terminal::disable_raw_mode();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads the terminal's events on a thread of its own, until the picker stops listening.
pub(super) fn read_keys(keys: mpsc::UnboundedSender<Event>) {
    std::thread::spawn(move || {
        while let Ok(event) = event::read() {
            if keys.send(event).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyEvent;

    use super::*;

    fn entry(id: &str, text: &str, pinned: bool) -> Entry {
        Entry {
            id: id.into(),
            kind: "text".into(),
            preview: text.into(),
            text: Some(text.into()),
            bytes: text.len() as u64,
            name: None,
            device_name: "laptop".into(),
            last_used_ms: 0,
            pinned,
        }
    }

    fn picker() -> Picker {
        let mut picker = Picker::new(String::new(), true);
        picker.show(Matches {
            entries: vec![entry("aa", "first", true), entry("bb", "second", false)],
            clips: 2,
        });
        picker
    }

    fn press(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(c: char) -> Event {
        Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    #[test]
    fn letters_search_until_tab_gives_them_to_the_list() {
        let mut picker = picker();
        assert_eq!(picker.key(press(KeyCode::Char('p'))), Action::Search);
        assert_eq!(picker.query, "p");
        assert_eq!(picker.key(press(KeyCode::Backspace)), Action::Search);
        assert_eq!(picker.key(press(KeyCode::Backspace)), Action::Nothing);
        assert_eq!(picker.key(press(KeyCode::Tab)), Action::Nothing);
        assert_eq!(
            picker.key(press(KeyCode::Char('p'))),
            Action::Unpin("aa".into())
        );
        assert_eq!(picker.key(press(KeyCode::Char('j'))), Action::Nothing);
        assert_eq!(
            picker.key(press(KeyCode::Char('d'))),
            Action::Trash("bb".into())
        );
        assert_eq!(picker.key(press(KeyCode::Char('/'))), Action::Nothing);
        assert_eq!(picker.key(press(KeyCode::Char('q'))), Action::Search);
        assert_eq!(picker.key(press(KeyCode::Esc)), Action::Quit);
    }

    #[test]
    fn control_keys_act_while_searching() {
        let mut picker = picker();
        assert_eq!(picker.key(press(KeyCode::Down)), Action::Nothing);
        assert_eq!(picker.key(ctrl('p')), Action::Pin("bb".into()));
        assert_eq!(picker.key(ctrl('d')), Action::Trash("bb".into()));
        assert_eq!(
            picker.key(press(KeyCode::Enter)),
            Action::Choose("bb".into())
        );
        // The selection stops at the ends.
        picker.key(press(KeyCode::PageDown));
        assert_eq!(picker.current().unwrap().id, "bb");
        picker.key(press(KeyCode::PageUp));
        assert_eq!(picker.current().unwrap().id, "aa");
        assert_eq!(picker.key(ctrl('u')), Action::Search);
        assert_eq!(picker.key(ctrl('c')), Action::Quit);
    }

    #[test]
    fn nothing_to_choose_in_an_empty_list() {
        let mut picker = Picker::new("zzz".into(), false);
        picker.show(Matches::default());
        assert_eq!(picker.key(press(KeyCode::Enter)), Action::Nothing);
        assert_eq!(picker.key(ctrl('p')), Action::Nothing);
        assert_eq!(picker.key(press(KeyCode::Down)), Action::Nothing);
    }

    #[test]
    fn the_screen_shows_the_query_the_clips_and_the_preview() {
        let mut picker = picker();
        picker.query = "fir".into();
        let backend = ratatui::backend::TestBackend::new(80, 12);
        let mut terminal = Terminal::new(backend).unwrap();
        terminal.draw(|frame| picker.draw(frame)).unwrap();
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|cell| cell.symbol())
            .collect();
        for shown in ["Search: fir", "2 of 2 clips", "first", "second", "Esc quit"] {
            assert!(screen.contains(shown), "{shown:?} not in {screen:?}");
        }
    }
}
