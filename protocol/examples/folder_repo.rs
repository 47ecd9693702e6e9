//! A Ferry repository in a plain folder, written and read with the protocol alone.
//!
//! ```text
//! cargo run -p ferry-protocol --example folder_repo -- [FOLDER] [TEXT]
//! ```
//!
//! The first run creates `FOLDER/ferry/v1/repo` with a new sync key, prints its recovery code and
//! keeps the key and this folder's device identity in `FOLDER/device/` (mode 0600; the agent keeps
//! them in the OS keychain). Every run then appends one segment carrying TEXT, signed by this
//! folder's device, moves the device's head forward, and reads the whole repository back: it
//! opens every object with the key, checks this device's signatures, and reports anything that
//! does not open and why. The folder defaults to `.ferry-demo`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferry_protocol::names::{HEAD_PREFIX, LOG_PREFIX, ROOT};
use ferry_protocol::{
    DeviceId, DeviceKeys, Head, Identity, Keys, ObjectName, RawOp, RepoHeader, Segment, SyncKey,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let folder = PathBuf::from(args.next().unwrap_or_else(|| ".ferry-demo".into()));
    let text = args.next().unwrap_or_else(|| "hello from Ferry".into());
    match run(&folder, &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(folder: &Path, text: &str) -> Result<()> {
    let root = folder.join(ROOT);
    let device_dir = folder.join("device");
    fs::create_dir_all(&root)?;
    fs::create_dir_all(&device_dir)?;

    let key_path = device_dir.join("sync-key");
    let identity_path = device_dir.join("identity");
    let repo_path = root.join("repo");
    let (key, device, identity) = if repo_path.exists() {
        let bytes: [u8; 32] = fs::read(&key_path)?
            .try_into()
            .map_err(|_| "the key file is not 32 bytes")?;
        let device = fs::read_to_string(device_dir.join("device-id"))?
            .trim()
            .parse()?;
        let identity = Identity::from_hex(&fs::read_to_string(&identity_path)?)?;
        (SyncKey::from_bytes(bytes), device, identity)
    } else {
        let key = SyncKey::generate()?;
        let device = DeviceId::generate()?;
        let identity = Identity::generate()?;
        let header = RepoHeader::create(&key.keys(), None)?;
        write_new(&repo_path, &header.to_bytes())?;
        write_secret(&key_path, key.expose_bytes())?;
        write_secret(&identity_path, identity.to_hex().as_bytes())?;
        fs::write(device_dir.join("device-id"), device.to_string())?;
        println!("created a repository in {}", folder.display());
        println!("recovery code (the key itself: keep it safe, it is shown once):");
        println!("  {}", key.recovery_code().expose());
        (key, device, identity)
    };
    let keys = key.keys();
    let header = RepoHeader::from_bytes(&fs::read(&repo_path)?)?;
    header.verify(&keys)?;
    println!("repository key {} verified", header.key_id);

    append(&root, &keys, device, &identity, text)?;
    read_back(&root, &keys, device, &identity.public())
}

/// Writes a secret to a new file only its owner can read (on Windows, the user's profile
/// folders are private already).
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)?;
    Ok(())
}

/// Appends one segment and moves the head: PUT segment, PUT new head, DELETE old head.
fn append(
    root: &Path,
    keys: &Keys,
    device: DeviceId,
    identity: &Identity,
    text: &str,
) -> Result<()> {
    let tag = keys.names.device_tag(&device);
    let previous = latest_head(root, keys, &tag.to_string())?;
    let (seq, first_op) = previous
        .as_ref()
        .map_or((1, 1), |(_, head)| (head.seq + 1, head.ops + 1));
    let segment = Segment {
        device,
        seq,
        first_op,
        ops: vec![RawOp(text.as_bytes().to_vec())],
    };
    let log = ObjectName::Log { device: tag, seq };
    write_new(
        &root.join(log.to_string()),
        keys.data.seal_signed(&log, &segment, identity)?.as_bytes(),
    )?;
    let head = Head {
        device,
        seq,
        ops: first_op,
        first_seq: 1,
        snapshot: None,
    };
    let head_name = ObjectName::Head { device: tag, seq };
    write_new(
        &root.join(head_name.to_string()),
        keys.data
            .seal_signed(&head_name, &head, identity)?
            .as_bytes(),
    )?;
    if let Some((old, _)) = previous {
        fs::remove_file(root.join(old.to_string()))?;
    }
    println!("wrote {log} ({} bytes of text)", text.len());
    Ok(())
}

/// The newest head of one device, if it has any.
fn latest_head(root: &Path, keys: &Keys, tag: &str) -> Result<Option<(ObjectName, Head)>> {
    let dir = root.join(HEAD_PREFIX).join(tag);
    let mut newest: Option<ObjectName> = None;
    if dir.exists() {
        for entry in fs::read_dir(&dir)? {
            let file = entry?.file_name().to_string_lossy().into_owned();
            if let Ok(name) = format!("{HEAD_PREFIX}{tag}/{file}").parse::<ObjectName>() {
                newest = newest.max(Some(name));
            }
        }
    }
    let Some(name) = newest else { return Ok(None) };
    let head = keys
        .data
        .open_signed(&name, &fs::read(root.join(name.to_string()))?)?
        .value;
    Ok(Some((name, head)))
}

/// Opens every segment in the repository and prints what each device wrote. This folder knows
/// only its own device's keys: a segment in its name must carry its signature.
fn read_back(root: &Path, keys: &Keys, device: DeviceId, own: &DeviceKeys) -> Result<()> {
    let log_dir = root.join(LOG_PREFIX);
    let mut names = Vec::new();
    for device in fs::read_dir(&log_dir)? {
        let device = device?;
        for segment in fs::read_dir(device.path())? {
            let rel = format!(
                "{LOG_PREFIX}{}/{}",
                device.file_name().to_string_lossy(),
                segment?.file_name().to_string_lossy()
            );
            names.push(rel);
        }
    }
    names.sort();
    println!("the repository holds {} segments:", names.len());
    for rel in names {
        let opened = rel.parse::<ObjectName>().and_then(|name| {
            let bytes = fs::read(root.join(&rel)).unwrap_or_default();
            let claimed = keys.data.open_signed::<Segment>(&name, &bytes)?;
            if claimed.value.device == device {
                claimed.verify(own)?;
            }
            Ok(claimed.value)
        });
        match opened {
            Ok(segment) => {
                let texts: Vec<String> = segment
                    .ops
                    .iter()
                    .map(|op| String::from_utf8_lossy(&op.0).into_owned())
                    .collect();
                println!("  {rel}: {texts:?}");
            }
            Err(e) => println!("  {rel}: not used: {e}"),
        }
    }
    Ok(())
}

/// Writes an object that must not exist yet: temp file, fsync, rename.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    if path.exists() {
        return Err(format!(
            "{} exists already; objects are never overwritten",
            path.display()
        )
        .into());
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
