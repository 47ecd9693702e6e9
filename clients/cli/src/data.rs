//! The commands on the device's data (copy, paste, history, …), run against an open engine:
//! here when no agent runs, in the agent when one does (see [`crate::agent::ipc`]).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::{Body, ClipContent, ClipId, ClipView, CollectionId, DataKind};
use ferry_sync::{SyncError, Transfer};
use serde_json::{Value, json};

use crate::cli::{
    AliasAction, CollectionAction, ConfigAction, CopyArgs, DataCommand, HistoryArgs, LogArgs,
    PasteArgs,
};
use crate::config;
use crate::device::{DEVICE_NAME_PREFIX, Device};
use crate::error::Failure;

/// What a command printed.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Output {
    fn line(&mut self, text: impl AsRef<str>) {
        self.stdout.extend_from_slice(text.as_ref().as_bytes());
        self.stdout.push(b'\n');
    }

    fn json(&mut self, value: &Value) {
        self.line(value.to_string());
    }

    fn note(&mut self, text: impl AsRef<str>) {
        self.stderr.push_str(text.as_ref());
        self.stderr.push('\n');
    }
}

/// Whether a command changed data (so it should be uploaded).
pub(crate) type Changed = bool;

/// Reads standard input for `copy` without TEXT, and makes paths absolute, so the command can
/// run in another process.
pub(crate) fn prepare(command: &mut DataCommand) -> Result<(), Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::new(format!("the current folder is unreadable: {e}")))?;
    match command {
        DataCommand::Copy(args) => {
            if args.text.is_none() && args.file.is_none() && args.image.is_none() {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .map_err(|e| Failure::new(format!("standard input could not be read: {e}")))?;
                args.text = Some(String::from_utf8(bytes).map_err(|_| {
                    Failure::new(
                        "standard input is not UTF-8 text; copy binary data with --file PATH",
                    )
                })?);
            }
            for path in [&mut args.file, &mut args.image].into_iter().flatten() {
                *path = cwd.join(&*path);
            }
        }
        DataCommand::Paste(args) => {
            if let Some(path) = &mut args.output {
                *path = cwd.join(&*path);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Runs one command.
pub(crate) async fn execute(
    device: &mut Device,
    command: DataCommand,
    json: bool,
    out: &mut Output,
) -> Result<Changed, Failure> {
    match command {
        DataCommand::Copy(args) => copy(device, args, json, out),
        DataCommand::Paste(args) => paste(device, args, out).await.map(|()| false),
        DataCommand::History(args) => history(device, args, json, out).map(|()| false),
        DataCommand::Pin { id } => flag(device, &id, out, |r, clip, now| {
            r.set_pinned(clip, true, now)
        }),
        DataCommand::Unpin { id } => flag(device, &id, out, |r, clip, now| {
            r.set_pinned(clip, false, now)
        }),
        DataCommand::Rm { id } => flag(device, &id, out, |r, clip, now| r.delete(clip, now)),
        DataCommand::Restore { id } => flag(device, &id, out, |r, clip, now| r.restore(clip, now)),
        DataCommand::Trash => {
            let clips = device.engine.state_for(DataKind::Clips).trash();
            print_clips(device, &clips, json, out);
            Ok(false)
        }
        DataCommand::Collection { action } => collection(device, action, json, out),
        DataCommand::Alias { action } => alias(device, action, json, out),
        DataCommand::Config { action } => config_command(device, action, json, out),
        DataCommand::Sync { dry_run } => sync(device, dry_run, json, out).await.map(|()| false),
        DataCommand::Status => status(device, json, out).map(|()| false),
        DataCommand::Log(args) => log(device, args, json, out).map(|()| false),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn content_from(args: CopyArgs) -> Result<ClipContent, Failure> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| Failure::new(format!("{} could not be read: {e}", path.display())))
    };
    if let Some(path) = args.image {
        let bytes = read(&path)?;
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(Failure::new(format!(
                "{} is not a PNG image; copy other files with --file",
                path.display()
            )));
        }
        return Ok(ClipContent::image("image/png", Body::Inline(bytes)));
    }
    if let Some(path) = args.file {
        let bytes = read(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        return Ok(ClipContent::file(
            name.clone(),
            mime_of(&name),
            Body::Inline(bytes),
        ));
    }
    Ok(ClipContent::Text(args.text.unwrap_or_default()))
}

fn mime_of(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("txt" | "md") => "text/plain",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        _ => "application/octet-stream",
    }
}

fn copy(
    device: &mut Device,
    args: CopyArgs,
    json: bool,
    out: &mut Output,
) -> Result<Changed, Failure> {
    let content = content_from(args)?;
    if let Some(reason) = device.config.settings.filters().refuses(&content) {
        return Err(Failure::new(format!(
            "not recorded: {reason} (see `ferry config ls` for the clipboard filters)"
        )));
    }
    let id = ClipId::for_content(&device.keys.names, &content);
    device.engine.copy(content)?;
    if json {
        out.json(&json!({ "id": id.to_string() }));
    } else {
        out.line(id.to_string());
    }
    Ok(true)
}

/// A whole clip id from its 32 hex digits.
pub(crate) fn parse_clip_id(hex: &str) -> Option<ClipId> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(ClipId(id))
}

/// Finds a clip (in the history or the trash) by id or unique prefix.
fn find(device: &Device, prefix: &str) -> Result<ClipId, Failure> {
    let prefix = prefix.to_ascii_lowercase();
    if let Some(id) = parse_clip_id(&prefix)
        && device.engine.state_for(DataKind::Clips).clip(&id).is_some()
    {
        return Ok(id);
    }
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::usage(format!(
            "`{prefix}` is not a clip id: give at least 4 hex digits as `ferry history` shows"
        )));
    }
    let state = device.engine.state_for(DataKind::Clips);
    let mut found: Vec<ClipId> = state
        .history(None, usize::MAX)
        .into_iter()
        .chain(state.trash())
        .map(|view| view.id)
        .filter(|id| id.to_string().starts_with(&prefix))
        .collect();
    found.dedup();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(Failure::new(format!(
            "no clip has an id starting with {prefix}; `ferry history` lists them"
        ))),
        _ => Err(Failure::usage(format!(
            "{} clips have ids starting with {prefix}: give more digits",
            found.len()
        ))),
    }
}

fn flag(
    device: &mut Device,
    id: &str,
    out: &mut Output,
    make: impl FnOnce(&mut ferry_core::Replica, ClipId, u64) -> ferry_core::Op,
) -> Result<Changed, Failure> {
    let clip = find(device, id)?;
    device
        .engine
        .record(DataKind::Clips, |replica, _, now| make(replica, clip, now))?;
    out.note(format!("{clip}: done"));
    Ok(true)
}

async fn paste(device: &mut Device, args: PasteArgs, out: &mut Output) -> Result<(), Failure> {
    if !args.offline
        && let Err(error) = device.engine.fetch().await
    {
        out.note(format!(
            "warning: could not fetch new clips ({error}); showing what this device has"
        ));
    }
    let id = match &args.id {
        Some(prefix) => find(device, prefix)?,
        None => device
            .engine
            .state_for(DataKind::Clips)
            .newest()
            .map(|view| view.id)
            .ok_or_else(|| Failure::new("the history is empty: copy something first"))?,
    };
    let content = device
        .engine
        .state_for(DataKind::Clips)
        .clip(&id)
        .map(|view| view.content.clone())
        .ok_or_else(|| Failure::new(format!("clip {id} has no content on this device")))?;
    let bytes = match content.body() {
        Some(Body::Inline(bytes)) => bytes.clone(),
        Some(Body::Blob { id, .. }) => device.engine.blob(*id).await?,
        // Text, or the plain form of rich text.
        None => content.text().unwrap_or_default().as_bytes().to_vec(),
    };
    match args.output {
        Some(path) => std::fs::write(&path, &bytes)
            .map_err(|e| Failure::new(format!("{} could not be written: {e}", path.display()))),
        None if content.text().is_none() => Err(Failure::new(format!(
            "clip {id} is {} ({} bytes): write it to a file with --output PATH",
            describe(&content),
            bytes.len()
        ))),
        None => {
            out.stdout.extend_from_slice(&bytes);
            Ok(())
        }
    }
}

fn describe(content: &ClipContent) -> String {
    match content {
        ClipContent::Text(_) => "text".into(),
        ClipContent::RichText(_) => "rich text".into(),
        ClipContent::Image(image) => format!("an image ({})", image.mime),
        ClipContent::File(file) => format!("the file {}", file.name),
    }
}

/// One line of preview: the first line of text, or what the content is.
fn preview(content: &ClipContent) -> String {
    let text = match content {
        ClipContent::Text(text) => text,
        ClipContent::RichText(rich) => &rich.plain,
        ClipContent::Image(image) => {
            return format!("[{}, {}]", image.mime, size(image.body.len()));
        }
        ClipContent::File(file) => {
            return format!("[file {}, {}]", file.name, size(file.body.len()));
        }
    };
    let mut line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    if text.trim().chars().count() > 80 {
        line.push('…');
    }
    line
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn age(at_ms: u64) -> String {
    let seconds = now_ms().saturating_sub(at_ms) / 1000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn clip_json(device: &Device, view: &ClipView<'_>) -> Value {
    json!({
        "id": view.id.to_string(),
        "kind": format!("{:?}", view.content.kind()).to_lowercase(),
        "text": view.content.text(),
        "preview": preview(view.content),
        "bytes": view.content.size(),
        "device": view.source().to_string(),
        "device_name": device.device_name(&view.source()),
        "first_copied_ms": view.first.wall_ms(),
        "last_used_ms": view.last_used.wall_ms(),
        "pinned": view.pinned,
        "favourite": view.favourite,
        "trashed_ms": view.trashed_at.map(|t| t.wall_ms()),
    })
}

fn print_clips(device: &Device, clips: &[ClipView<'_>], json: bool, out: &mut Output) {
    if json {
        out.json(&Value::Array(
            clips.iter().map(|v| clip_json(device, v)).collect(),
        ));
        return;
    }
    for view in clips {
        let pin = if view.pinned { "*" } else { "" };
        out.line(format!(
            "{}{pin}\t{}\t{}\t{}",
            &view.id.to_string()[..12],
            age(view.last_used.wall_ms()),
            device.device_name(&view.source()),
            preview(view.content)
        ));
    }
}

fn history(
    device: &Device,
    args: HistoryArgs,
    json: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let state = device.engine.state_for(DataKind::Clips);
    let clips: Vec<ClipView<'_>> = match &args.search {
        Some(query) => device
            .engine
            .search(query, args.limit)?
            .iter()
            .filter_map(|id| state.clip(id))
            .filter(|view| view.trashed_at.is_none())
            .collect(),
        None => state.history(None, args.limit),
    };
    print_clips(device, &clips, json, out);
    Ok(())
}

fn find_collection(device: &Device, name: &str) -> Result<CollectionId, Failure> {
    let found: Vec<CollectionId> = device
        .engine
        .state_for(DataKind::Collections)
        .collections()
        .into_iter()
        .filter(|c| c.name == name)
        .map(|c| c.id)
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(Failure::new(format!(
            "there is no collection named `{name}`; `ferry collection ls` lists them"
        ))),
        _ => Err(Failure::new(format!(
            "{} collections are named `{name}`: rename one with `ferry collection rename`",
            found.len()
        ))),
    }
}

fn collection(
    device: &mut Device,
    action: CollectionAction,
    json: bool,
    out: &mut Output,
) -> Result<Changed, Failure> {
    let kind = DataKind::Collections;
    match action {
        CollectionAction::Ls => {
            let collections = device.engine.state_for(kind).collections();
            if json {
                out.json(&Value::Array(
                    collections
                        .iter()
                        .map(|c| json!({ "id": c.id.to_string(), "name": c.name, "clips": c.len }))
                        .collect(),
                ));
            } else {
                for c in collections {
                    out.line(format!("{}\t{} clips", c.name, c.len));
                }
            }
            Ok(false)
        }
        CollectionAction::Create { name } => {
            if find_collection(device, &name).is_ok() {
                return Err(Failure::new(format!(
                    "a collection named `{name}` exists already"
                )));
            }
            device.engine.record(kind, |replica, _, now| {
                replica.create_collection(name, now).1
            })?;
            Ok(true)
        }
        CollectionAction::Show { name } => {
            let id = find_collection(device, &name)?;
            let state = device.engine.state_for(kind);
            let clips = match state.collection(&id) {
                Some((_, clips)) => clips,
                None => Vec::new(),
            };
            print_clips(device, &clips, json, out);
            Ok(false)
        }
        CollectionAction::Add { name, id } => {
            let collection = find_collection(device, &name)?;
            let clip = find(device, &id)?;
            device.engine.record(kind, |replica, _, now| {
                replica.add_to_collection(collection, clip, now)
            })?;
            Ok(true)
        }
        CollectionAction::Remove { name, id } => {
            let collection = find_collection(device, &name)?;
            let clip = find(device, &id)?;
            device.engine.record(kind, |replica, _, now| {
                replica.remove_from_collection(collection, clip, now)
            })?;
            Ok(true)
        }
        CollectionAction::Rename { name, new_name } => {
            let collection = find_collection(device, &name)?;
            device.engine.record(kind, |replica, _, now| {
                replica.rename_collection(collection, new_name, now)
            })?;
            Ok(true)
        }
        CollectionAction::Rm { name } => {
            let collection = find_collection(device, &name)?;
            device.engine.record(kind, |replica, _, now| {
                replica.delete_collection(collection, now)
            })?;
            Ok(true)
        }
    }
}

fn alias(
    device: &mut Device,
    action: AliasAction,
    json: bool,
    out: &mut Output,
) -> Result<Changed, Failure> {
    let kind = DataKind::Aliases;
    let strategy = device.config.settings.conflict;
    let me = device.engine.device();
    match action {
        AliasAction::Set { name, value } => {
            device.engine.record(kind, |replica, _, now| {
                replica.set_alias(name, Some(value), now)
            })?;
            Ok(true)
        }
        AliasAction::Rm { name } => {
            if device
                .engine
                .state_for(kind)
                .alias(&name, strategy, me)
                .is_none_or(|r| r.value().is_none())
            {
                return Err(Failure::new(format!("there is no alias `{name}`")));
            }
            device
                .engine
                .record(kind, |replica, _, now| replica.set_alias(name, None, now))?;
            Ok(true)
        }
        AliasAction::Get { name } => {
            let resolved = device.engine.state_for(kind).alias(&name, strategy, me);
            let value = resolved.as_ref().and_then(|r| r.value()).ok_or_else(|| {
                Failure::new(format!(
                    "there is no alias `{name}`; `ferry alias ls` lists them"
                ))
            })?;
            if json {
                out.json(&json!({ "name": name, "value": value, "conflict": resolved.as_ref().is_some_and(|r| r.conflict) }));
            } else {
                out.stdout.extend_from_slice(value.as_bytes());
            }
            Ok(false)
        }
        AliasAction::Ls => {
            let aliases = device.engine.state_for(kind).aliases(strategy, me);
            let aliases: Vec<(&str, &str, bool)> = aliases
                .iter()
                .filter_map(|(name, r)| Some((*name, r.value()?, r.conflict)))
                .collect();
            if json {
                out.json(&Value::Array(
                    aliases
                        .iter()
                        .map(|(n, v, c)| json!({ "name": n, "value": v, "conflict": c }))
                        .collect(),
                ));
            } else {
                for (name, value, conflict) in aliases {
                    let mark = if conflict { " (conflict)" } else { "" };
                    out.line(format!("{name}\t{}{mark}", value.replace('\n', "\\n")));
                }
            }
            Ok(false)
        }
    }
}

/// Config commands that need the engine: `--synced` changes, and listings that show the synced
/// values too. The others run without it ([`crate::setup::local_config`]).
fn config_command(
    device: &mut Device,
    action: ConfigAction,
    json: bool,
    out: &mut Output,
) -> Result<Changed, Failure> {
    match action {
        ConfigAction::Set {
            key,
            value,
            synced: true,
        } => {
            let spec = config::key(&key)?;
            if !spec.synced {
                return Err(Failure::usage(format!(
                    "`{key}` is set per device, not synced: drop --synced"
                )));
            }
            config::check(spec, &value)?;
            device.engine.record(DataKind::Settings, |r, _, now| {
                r.set_setting(key, Some(value), now)
            })?;
            Ok(true)
        }
        ConfigAction::Unset { key, synced: true } => {
            config::key(&key)?;
            device.engine.record(DataKind::Settings, |r, _, now| {
                r.set_setting(key, None, now)
            })?;
            Ok(true)
        }
        other => {
            crate::setup::local_config(&device.config, other, json, out)?;
            Ok(false)
        }
    }
}

async fn sync(
    device: &mut Device,
    dry_run: bool,
    json: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    if dry_run {
        let plan = device.engine.dry_run().await?;
        let rows = |planned: &[ferry_sync::Planned]| -> Vec<Value> {
            planned
                .iter()
                .map(|p| json!({ "name": p.name, "ops": p.ops, "bytes": p.bytes }))
                .collect()
        };
        if json {
            out.json(&json!({ "upload": rows(&plan.upload), "download": rows(&plan.download) }));
        } else {
            for p in &plan.upload {
                out.line(format!(
                    "upload\t{}\t{} ops\t{}",
                    p.name,
                    p.ops,
                    size(p.bytes)
                ));
            }
            for p in &plan.download {
                out.line(format!("download\t{}\t{}", p.name, size(p.bytes)));
            }
            if plan.upload.is_empty() && plan.download.is_empty() {
                out.line("nothing to sync");
            }
        }
        return Ok(());
    }
    let (up, down) = device.engine.sync().await?;
    if json {
        out.json(&json!({
            "uploaded": { "segments": up.segments, "ops": up.ops, "bytes": up.bytes },
            "fetched": { "segments": down.segments, "ops": down.ops, "bytes": down.bytes, "quarantined": down.quarantined },
        }));
    } else {
        out.line(format!(
            "uploaded {} segments ({} changes), fetched {} segments ({} changes)",
            up.segments, up.ops, down.segments, down.ops
        ));
        if down.quarantined > 0 {
            out.line(format!(
                "{} damaged objects were set aside: see `ferry status`",
                down.quarantined
            ));
        }
    }
    Ok(())
}

fn time_ms(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

fn status(device: &Device, json: bool, out: &mut Output) -> Result<(), Failure> {
    let status = device.engine.status()?;
    let stats = device.engine.state_for(DataKind::Clips).stats();
    let store = device
        .config
        .settings
        .store
        .as_deref()
        .unwrap_or("")
        .to_owned();
    let relay = device
        .config
        .settings
        .relay
        .as_deref()
        .unwrap_or("")
        .to_owned();
    if json {
        out.json(&json!({
            "device": status.device.to_string(),
            "device_name": device.device_name(&status.device),
            "tag": status.tag.to_string(),
            "store": store,
            "relay": relay,
            "clips": stats.clips,
            "pending_ops": status.pending_ops,
            "pending_segments": status.pending_segments,
            "last_seq": status.last_seq,
            "last_upload_ms": time_ms(status.last_upload),
            "last_fetch_ms": time_ms(status.last_fetch),
            "peers": status.peers.iter().map(|p| json!({
                "device": p.device.to_string(),
                "name": device.device_name(&p.device),
                "seq": p.seq,
                "ops": p.ops,
            })).collect::<Vec<_>>(),
            "quarantined": status.quarantined.iter().map(|(name, reason)| json!({ "name": name, "reason": reason })).collect::<Vec<_>>(),
            "recent_errors": status.recent_errors,
        }));
        return Ok(());
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "device    {} ({})",
        device.device_name(&status.device),
        status.device
    );
    let _ = writeln!(text, "store     {store}");
    let _ = writeln!(
        text,
        "relay     {}",
        if relay.is_empty() {
            "none (polling)"
        } else {
            &relay
        }
    );
    let _ = writeln!(text, "clips     {}", stats.clips);
    let _ = writeln!(
        text,
        "pending   {} changes, {} segments",
        status.pending_ops, status.pending_segments
    );
    for p in &status.peers {
        let _ = writeln!(
            text,
            "peer      {}: segment {}, {} changes",
            device.device_name(&p.device),
            p.seq,
            p.ops
        );
    }
    for (name, reason) in &status.quarantined {
        let _ = writeln!(text, "damaged   {name}: {reason}");
    }
    for error in &status.recent_errors {
        let _ = writeln!(text, "error     {error}");
    }
    out.stdout.extend_from_slice(text.as_bytes());
    Ok(())
}

fn log(device: &Device, args: LogArgs, json: bool, out: &mut Output) -> Result<(), Failure> {
    let matches = |t: &Transfer| {
        args.device.as_ref().is_none_or(|d| {
            t.device
                .as_ref()
                .is_some_and(|td| td.starts_with(d.as_str()))
        }) && args.kind.is_none_or(|k| t.kind == k)
            && args.search.as_ref().is_none_or(|q| {
                [
                    t.name.as_deref(),
                    t.detail.as_deref(),
                    Some(t.outcome.as_str()),
                ]
                .into_iter()
                .flatten()
                .any(|field| field.contains(q.as_str()))
            })
    };
    let transfers: Vec<Transfer> = device
        .engine
        .transfers(100_000)?
        .into_iter()
        .filter(matches)
        .take(args.limit)
        .collect();
    if json {
        out.json(&json!(transfers));
        return Ok(());
    }
    for t in transfers {
        let detail = t.detail.map(|d| format!("\t{d}")).unwrap_or_default();
        out.line(format!(
            "{}\t{}\t{}\t{}\t{}\t{}{detail}",
            age(t.at_ms),
            t.direction,
            t.kind,
            t.name.unwrap_or_default(),
            size(t.bytes),
            t.outcome
        ));
    }
    Ok(())
}

/// Records this device's name as a synced setting, so other devices show it.
pub(crate) fn name_device(device: &mut Device, name: &str) -> Result<(), SyncError> {
    let key = format!("{DEVICE_NAME_PREFIX}{}", device.engine.device());
    let name = name.to_owned();
    device
        .engine
        .record(DataKind::Settings, |r, _, now| {
            r.set_setting(key, Some(name), now)
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_ids_parse_back_from_their_hex_and_nothing_else_does() {
        let id = ClipId([0xab; 16]);
        assert_eq!(parse_clip_id(&id.to_string()), Some(id));
        for bad in [
            "",
            "ab",
            &"a".repeat(31),
            &"g".repeat(32),
            &"é".repeat(16),
            &"a".repeat(33),
        ] {
            assert_eq!(parse_clip_id(bad), None, "{bad}");
        }
    }
}
