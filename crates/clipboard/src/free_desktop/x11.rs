//! Watching the X11 clipboard with XFixes selection events, and reading it with plain
//! `ConvertSelection` requests (INCR transfers included), so the watcher sees every target the
//! owner offers, including the password managers' "do not record" hint.
//!
//! The watcher thread sleeps in `wait_for_event` between copies: an idle clipboard costs
//! nothing.

use std::thread;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, Property, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use crate::{Clip, ClipboardError, Observed, WatchConfig};

/// How long the clipboard's owner has to answer one request.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Password managers (KeePassXC, KDE's) offer this target, with the value `secret`, next to a
/// password they copy.
pub(crate) const SECRET_HINT: &str = "x-kde-passwordManagerHint";

struct Atoms {
    clipboard: Atom,
    targets: Atom,
    incr: Atom,
    utf8: Atom,
    text_plain_utf8: Atom,
    png: Atom,
    hint: Atom,
    /// The property on our window that answers land in.
    property: Atom,
}

impl Atoms {
    fn intern(conn: &RustConnection) -> Result<Atoms, ClipboardError> {
        let atom = |name: &str| -> Result<Atom, ClipboardError> {
            Ok(conn
                .intern_atom(false, name.as_bytes())
                .map_err(x11_error)?
                .reply()
                .map_err(x11_error)?
                .atom)
        };
        Ok(Atoms {
            clipboard: atom("CLIPBOARD")?,
            targets: atom("TARGETS")?,
            incr: atom("INCR")?,
            utf8: atom("UTF8_STRING")?,
            text_plain_utf8: atom("text/plain;charset=utf-8")?,
            png: atom("image/png")?,
            hint: atom(SECRET_HINT)?,
            property: atom("FERRY_CLIPBOARD")?,
        })
    }
}

fn x11_error(error: impl std::fmt::Display) -> ClipboardError {
    ClipboardError::X11(error.to_string())
}

/// A connection with a hidden window that receives clipboard events and answers.
pub(crate) struct X11Watcher {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
    config: WatchConfig,
    /// A newer copy happened while reading the last one.
    again: bool,
    /// Properties left to owners that were still sending (see `abandon_property`).
    abandoned: u32,
}

impl X11Watcher {
    /// Connects to the display (`DISPLAY` when `display` is `None`) and asks for events.
    pub(crate) fn connect(
        display: Option<&str>,
        config: WatchConfig,
    ) -> Result<X11Watcher, ClipboardError> {
        let (conn, screen) =
            x11rb::connect(display).map_err(|e| ClipboardError::NoDisplay(e.to_string()))?;
        conn.xfixes_query_version(5, 0)
            .map_err(|e| ClipboardError::NoEvents(e.to_string()))?
            .reply()
            .map_err(|e| ClipboardError::NoEvents(e.to_string()))?;
        let atoms = Atoms::intern(&conn)?;
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().map_err(x11_error)?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )
        .map_err(x11_error)?;
        // Checked: a round trip, so that the server watches for new owners before this
        // returns, and a copy made after it is never missed.
        conn.xfixes_select_selection_input(
            window,
            atoms.clipboard,
            SelectionEventMask::SET_SELECTION_OWNER,
        )
        .map_err(x11_error)?
        .check()
        .map_err(|e| ClipboardError::NoEvents(e.to_string()))?;
        Ok(X11Watcher {
            conn,
            window,
            atoms,
            config,
            again: false,
            abandoned: 0,
        })
    }

    /// Waits for copies and hands each to `on_change` until it returns `false` or the display
    /// goes away.
    pub(crate) fn run(mut self, mut on_change: impl FnMut(Observed) -> bool) {
        loop {
            if !self.again {
                match self.conn.wait_for_event() {
                    Ok(Event::XfixesSelectionNotify(event)) if event.owner != x11rb::NONE => {}
                    Ok(_) => continue,
                    Err(error) => {
                        warn!(%error, "the X display went away: no more clipboard events");
                        return;
                    }
                }
            }
            self.again = false;
            match self.read() {
                Ok(Some(observed)) => {
                    if !on_change(observed) {
                        return;
                    }
                }
                Ok(None) => {}
                Err(error) => info!(
                    %error,
                    "a copy could not be read from the program that owns it: not recorded"
                ),
            }
        }
    }

    /// Reads what is on the clipboard now; `None` when it is empty or of a type clips do not
    /// hold (files, rich formats without text).
    pub(crate) fn read(&mut self) -> Result<Option<Observed>, ClipboardError> {
        let Some(targets) = self.convert(self.atoms.targets)? else {
            return Ok(None);
        };
        let targets: Vec<Atom> = targets
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if targets.contains(&self.atoms.hint) {
            // Treat the hint as secret unless it clearly says otherwise.
            let hint = self.convert(self.atoms.hint).ok().flatten();
            if hint
                .as_deref()
                .is_none_or(|value| value.trim_ascii() == b"secret")
            {
                return Ok(Some(Observed::Secret));
            }
        }
        let text = [self.atoms.utf8, self.atoms.text_plain_utf8]
            .into_iter()
            .find(|target| targets.contains(target));
        let (target, is_text) = match text {
            Some(target) => (target, true),
            None if targets.contains(&self.atoms.png) => (self.atoms.png, false),
            None => return Ok(None),
        };
        let bytes = match self.convert_limited(target)? {
            Converted::Bytes(bytes) => bytes,
            Converted::Refused => return Ok(None),
            Converted::TooLarge(bytes) => return Ok(Some(Observed::TooLarge { bytes })),
        };
        Ok(Some(Observed::Clip(if is_text {
            Clip::Text(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Clip::Png(bytes)
        })))
    }

    fn convert(&mut self, target: Atom) -> Result<Option<Vec<u8>>, ClipboardError> {
        match self.convert_limited(target)? {
            Converted::Bytes(bytes) => Ok(Some(bytes)),
            // Target lists and hints are small: an oversized one is not believed.
            Converted::Refused | Converted::TooLarge(_) => Ok(None),
        }
    }

    /// Asks the owner for `target` and collects the answer, in pieces if it sends INCR.
    fn convert_limited(&mut self, target: Atom) -> Result<Converted, ClipboardError> {
        let conn = &self.conn;
        conn.delete_property(self.window, self.atoms.property)
            .map_err(x11_error)?;
        conn.convert_selection(
            self.window,
            self.atoms.clipboard,
            target,
            self.atoms.property,
            x11rb::CURRENT_TIME,
        )
        .map_err(x11_error)?;
        conn.flush().map_err(x11_error)?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            match self.next_event(deadline)? {
                Event::SelectionNotify(event) if event.requestor == self.window => {
                    if event.property == x11rb::NONE {
                        return Ok(Converted::Refused);
                    }
                    break;
                }
                _ => {}
            }
        }
        let reply = self.take_property()?;
        if reply.type_ != self.atoms.incr {
            if reply.value.len() as u64 > self.config.max_bytes {
                return Ok(Converted::TooLarge(reply.value.len() as u64));
            }
            return Ok(Converted::Bytes(reply.value));
        }
        // INCR: deleting the property (done by take_property) asks for the first piece; each
        // piece arrives as a new value of the property, and an empty one ends the transfer.
        let mut bytes = Vec::new();
        let mut deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            match self.next_event(deadline)? {
                Event::PropertyNotify(event)
                    if event.window == self.window
                        && event.atom == self.atoms.property
                        && event.state == Property::NEW_VALUE =>
                {
                    let piece = self.take_property()?;
                    if piece.value.is_empty() {
                        return Ok(Converted::Bytes(bytes));
                    }
                    bytes.extend_from_slice(&piece.value);
                    if bytes.len() as u64 > self.config.max_bytes {
                        // Stop reading; the owner times out on its own. It writes its next
                        // piece into the property as soon as it is deleted (as the next
                        // conversion would), so answers go to a new property from now on.
                        self.abandon_property()?;
                        return Ok(Converted::TooLarge(bytes.len() as u64));
                    }
                    deadline = Instant::now() + ANSWER_TIMEOUT;
                }
                _ => {}
            }
        }
    }

    /// Takes another property for answers, leaving the current one to an owner still sending
    /// (it times out long before the names come round again; X never frees an atom, so there
    /// are only a few).
    fn abandon_property(&mut self) -> Result<(), ClipboardError> {
        self.abandoned = (self.abandoned + 1) % 4;
        let name = format!("FERRY_CLIPBOARD_{}", self.abandoned);
        self.atoms.property = self
            .conn
            .intern_atom(false, name.as_bytes())
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?
            .atom;
        Ok(())
    }

    fn take_property(&self) -> Result<x11rb::protocol::xproto::GetPropertyReply, ClipboardError> {
        self.conn
            .get_property(
                true,
                self.window,
                self.atoms.property,
                AtomEnum::ANY,
                0,
                u32::MAX / 4,
            )
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)
    }

    /// The next event before `deadline`; a copy seen meanwhile is remembered for later.
    fn next_event(&mut self, deadline: Instant) -> Result<Event, ClipboardError> {
        loop {
            match self.conn.poll_for_event().map_err(x11_error)? {
                Some(Event::XfixesSelectionNotify(_)) => self.again = true,
                Some(event) => return Ok(event),
                None if Instant::now() >= deadline => {
                    return Err(ClipboardError::Timeout(ANSWER_TIMEOUT));
                }
                None => thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

enum Converted {
    Bytes(Vec<u8>),
    Refused,
    TooLarge(u64),
}
