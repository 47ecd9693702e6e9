//! `ferry pick`: the history in a full-screen picker, searched as you type.
//!
//! ```text
//! terminal keys (a thread) ─▶ Picker::key (view) ─▶ search again / move / pin / trash / choose
//!                                     │
//!                         Source: the agent's socket, or the device opened here
//!                                     │
//! chosen ─▶ on the clipboard: by the agent (it serves it), or by a `ferry serve-clip` process
//!           left running until something else is copied; with --print, on standard output
//! ```
//!
//! The screen is drawn on the terminal itself (`/dev/tty`), so `ferry pick --print | …` works.
//! Each keystroke is one fuzzy search of the aliases and the history, as fzf ranks (see
//! `BENCHMARKS.md` for its cost at 100k clips); keys typed faster than the answers come are taken
//! together. An alias chosen goes on the clipboard like a clip.

mod source;
mod view;

use std::fmt;
use std::io::Write;

use ferry_core::{ClipContent, ClipView, DataKind};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::cli::{AliasAction, CopyArgs, DataCommand, PasteArgs, PickArgs};
use crate::config::Config;
use crate::device::Device;
use crate::error::Failure;
use crate::home::Home;
use crate::output::{Output, age};

use source::Source;
use view::{Action, Picker, Screen};

/// How much of a clip's text the preview shows.
const PREVIEW_CHARS: usize = 4096;

/// One clip as the picker lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) kind: String,
    /// The first line of text, or what the content is.
    pub(crate) preview: String,
    /// The start of the text, for the preview pane.
    pub(crate) text: Option<String>,
    pub(crate) bytes: u64,
    /// A file's name.
    pub(crate) name: Option<String>,
    pub(crate) device_name: String,
    pub(crate) last_used_ms: u64,
    pub(crate) pinned: bool,
}

/// How the picker names an alias among the clips: `alias:NAME`.
const ALIAS: &str = "alias:";

impl Entry {
    /// An alias, listed as the picker lists clips.
    fn alias(name: &str, value: String) -> Entry {
        let first_line = value.lines().next().unwrap_or_default();
        Entry {
            id: format!("{ALIAS}{name}"),
            kind: "alias".to_owned(),
            preview: format!("{name}: {first_line}"),
            bytes: value.len() as u64,
            text: Some(value.chars().take(PREVIEW_CHARS).collect()),
            name: None,
            device_name: String::new(),
            last_used_ms: 0,
            pinned: false,
        }
    }

    /// Whether this is an alias rather than a clip.
    pub(crate) fn is_alias(&self) -> bool {
        self.id.starts_with(ALIAS)
    }

    fn new(device: &Device, view: &ClipView<'_>) -> Entry {
        Entry {
            id: view.id.to_string(),
            kind: view.content.kind().as_str().to_owned(),
            preview: super::clip::preview(view.content),
            text: view
                .content
                .text()
                .map(|text| text.chars().take(PREVIEW_CHARS).collect()),
            bytes: view.content.size(),
            name: match view.content {
                ClipContent::File(file) => Some(file.name.clone()),
                _ => None,
            },
            device_name: device.device_name(&view.source()),
            last_used_ms: view.last_used.wall_ms(),
            pinned: view.pinned,
        }
    }
}

/// What one search found: the clips to list, and how many the history holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Matches {
    pub(crate) entries: Vec<Entry>,
    pub(crate) clips: usize,
}

impl fmt::Display for Matches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            writeln!(
                f,
                "{}\t{}\t{}\t{}",
                &entry.id[..12.min(entry.id.len())],
                age(entry.last_used_ms),
                entry.device_name,
                entry.preview
            )?;
        }
        Ok(())
    }
}

/// What `query` finds, as fzf would (see `State::find`): the aliases it matches first, then
/// the clips, best first; with no words, the aliases, the pinned clips and then the newest. At
/// most `limit`.
pub(crate) fn matches(device: &Device, query: &str, limit: usize) -> Result<Matches, Failure> {
    let me = device.engine.device();
    let aliases = device.engine.state_for(DataKind::Aliases).find_aliases(
        query,
        device.config.settings.conflict,
        me,
    );
    let mut entries: Vec<Entry> = aliases
        .into_iter()
        .take(limit)
        .map(|(name, value)| Entry::alias(name, value))
        .collect();
    let limit = limit - entries.len();
    let state = device.engine.state_for(DataKind::Clips);
    let views: Vec<ClipView<'_>> = if query.trim().is_empty() {
        let mut views = state.pinned();
        views.truncate(limit);
        let room = limit - views.len();
        views.extend(
            state
                .history(None, limit)
                .into_iter()
                .filter(|view| !view.pinned)
                .take(room),
        );
        views
    } else {
        state.find(query, limit)
    };
    entries.extend(views.iter().map(|view| Entry::new(device, view)));
    Ok(Matches {
        entries,
        clips: state.stats().clips,
    })
}

/// `ferry pick [--print] [--query Q]`.
pub(crate) async fn run(
    home: Home,
    config: Config,
    args: PickArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut screen = Screen::open().map_err(|e| {
        Failure::new(format!(
            "ferry pick needs a terminal ({e}); in scripts, `ferry history` lists one clip a \
             line for fzf, rofi or dmenu"
        ))
    })?;
    let mut source = match Source::open(home, config).await {
        Ok(source) => source,
        Err(failure) => {
            screen.close();
            return Err(failure);
        }
    };
    let chosen = pick(&mut screen, &mut source, args.query.unwrap_or_default()).await;
    screen.close();
    let Some(id) = chosen? else {
        return Ok(());
    };
    if let Some(name) = id.strip_prefix(ALIAS) {
        return place_alias(&mut source, name, args.print, out).await;
    }
    if args.print {
        let stdout = source
            .run(DataCommand::Paste(PasteArgs {
                id: Some(id),
                offline: true,
                output: None,
                place: false,
                to_terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            }))
            .await?;
        out.raw(&stdout);
        return Ok(());
    }
    if let Some(device) = source.device() {
        // No agent serves the clipboard: a process of its own does.
        crate::clipboard::place_detached(&crate::clipboard::chosen(device, &id).await?)?;
    }
    // Copied again: it moves to the top of the history, on every device.
    source.run(DataCommand::Place { id: id.clone() }).await?;
    out.note(format!(
        "clip {} is on the clipboard",
        &id[..12.min(id.len())]
    ));
    Ok(())
}

/// Puts the value of alias `name` on the clipboard (through the agent, or a process of its
/// own) and records it as a copy; or prints it.
async fn place_alias(
    source: &mut Source,
    name: &str,
    print: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let get = DataCommand::Alias {
        action: AliasAction::Get {
            name: name.to_owned(),
        },
    };
    let alias: serde_json::Value = serde_json::from_slice(&source.run(get).await?)
        .map_err(|e| Failure::new(format!("the alias came back oddly: {e}")))?;
    let value = alias["value"].as_str().unwrap_or_default().to_owned();
    if print {
        out.raw(value.as_bytes());
        return Ok(());
    }
    // With the agent, it places what it records; without one, a process of its own serves it.
    let by_agent = source.device().is_none();
    if !by_agent {
        crate::clipboard::place_detached(&ferry_clipboard::Clip::Text(value.clone()))?;
    }
    let copy = CopyArgs {
        text: Some(value),
        file: None,
        image: None,
        no_place: !by_agent,
        place: by_agent,
    };
    source.run(DataCommand::Copy(copy)).await?;
    out.note(format!("alias {name} is on the clipboard"));
    Ok(())
}

/// The picker's loop: keys in, searches out, until a clip is chosen (its id) or Esc.
async fn pick(
    screen: &mut Screen,
    source: &mut Source,
    query: String,
) -> Result<Option<String>, Failure> {
    let mut picker = Picker::new(query, source.is_agent());
    picker.show(source.matches(&picker.query).await?);
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    view::read_keys(keys_tx);
    loop {
        screen.draw(&mut picker)?;
        let Some(first) = keys.recv().await else {
            return Ok(None);
        };
        // Keys typed while the last search ran are taken together: one search for them all.
        let mut pending = vec![first];
        while let Ok(more) = keys.try_recv() {
            pending.push(more);
        }
        let mut search = false;
        for key in pending {
            match picker.key(key) {
                Action::Nothing => {}
                Action::Search => search = true,
                Action::Quit => return Ok(None),
                Action::Choose(id) => return Ok(Some(id)),
                Action::Pin(id) => {
                    picker.said(source.run(DataCommand::Pin { id }).await.err(), "pinned");
                    search = true;
                }
                Action::Unpin(id) => {
                    picker.said(
                        source.run(DataCommand::Unpin { id }).await.err(),
                        "unpinned",
                    );
                    search = true;
                }
                Action::Trash(id) => {
                    picker.said(
                        source.run(DataCommand::Rm { id }).await.err(),
                        "moved to the trash",
                    );
                    search = true;
                }
            }
        }
        if search {
            match source.matches(&picker.query).await {
                Ok(found) => picker.show(found),
                Err(failure) => picker.said(Some(failure), ""),
            }
        }
    }
}

/// `ferry serve-clip [--png]`: places the clip read from standard input on the clipboard, says
/// `placed`, and serves it until something else is copied.
pub(crate) fn serve_clip(png: bool) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
        .map_err(|e| Failure::new(format!("standard input could not be read: {e}")))?;
    let clip = match png {
        true => ferry_clipboard::Clip::Png(bytes),
        false => ferry_clipboard::Clip::Text(
            String::from_utf8(bytes).map_err(|_| Failure::new("the text is not UTF-8"))?,
        ),
    };
    ferry_clipboard::serve(&clip, || {
        println!("placed");
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| Failure::new(e.to_string()))
}
