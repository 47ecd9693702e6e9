//! The command line: every command, flag and argument.
//!
//! Commands that read or change the device's data ([`DataCommand`]) travel to a running agent
//! over its socket when there is one, so they are plain data (serde) with paths made absolute
//! and standard input already read.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::config::SecretStore;

/// Ferry keeps your clipboard in step across your devices, end-to-end encrypted, through storage
/// you own.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// Keep all of this device's state (config, database, file secrets) in DIR.
    #[arg(long, global = true, env = "FERRY_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// The user config file (default: config.toml under the Ferry home, or
    /// $XDG_CONFIG_HOME/ferry/config.toml).
    #[arg(long, global = true, env = "FERRY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// An administrator's read-only base config, below the user's.
    #[arg(long, global = true, env = "FERRY_BASE_CONFIG", value_name = "FILE")]
    pub(crate) base_config: Option<PathBuf>,
    /// Where secrets live: keychain (the OS keychain) or file (a 0600 file under the Ferry
    /// home).
    #[arg(long, global = true, value_name = "STORE")]
    pub(crate) secret_store: Option<SecretStore>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print no confirmation line when a command changes something (what was asked for,
    /// warnings and errors still show).
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new repository and set this device up on it.
    Init(InitArgs),
    /// Set this device up on an existing repository: with the code another device shows
    /// (`ferry pair` there), or offline with the recovery code and the storage settings.
    Join(JoinArgs),
    /// Add a new device: show a one-time code to type into `ferry join` there. The key, the
    /// storage settings and their credentials go to it sealed, through the relay.
    Pair(PairArgs),
    /// Leave the repository: this device forgets its keys, credentials, storage and relay
    /// settings and database (the history exported or dropped), and the others show it as
    /// left. `ferry init` or `ferry join` set it up again.
    Leave(LeaveArgs),
    /// Run the background agent in the foreground (the service runs this).
    Agent(AgentArgs),
    /// Check the setup step by step, and say what to fix.
    Doctor,
    /// Install or remove the background service.
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Move the repository to other storage: every device follows by itself.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Show or export the recovery code, or replace the key (`rotate`).
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Pick a clip from the history in a full-screen list, searched as you type, and place it
    /// on the clipboard (Enter), pin it (p), or move it to the trash (d).
    Pick(PickArgs),
    /// Serve a clip read from standard input on the clipboard until something else is copied
    /// (what `ferry pick` leaves running when no agent does).
    #[command(hide = true)]
    ServeClip {
        /// The clip is a PNG image (else UTF-8 text).
        #[arg(long)]
        png: bool,
    },
    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell); README
    /// says where each shell looks for it.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (ferry.1 and one per command) into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
    },
    #[command(flatten)]
    Data(DataCommand),
}

#[derive(Debug, Args)]
pub(crate) struct LeaveArgs {
    /// Keep this device's history in FILE (a new JSON file, as `ferry history --json` lists
    /// it) before leaving.
    #[arg(long, value_name = "FILE", conflicts_with = "drop_history")]
    pub(crate) export: Option<PathBuf>,
    /// Drop this device's history.
    #[arg(long)]
    pub(crate) drop_history: bool,
    /// Leave even though this device holds the repository that others reach through it.
    #[arg(long)]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Where to keep the repository: file:///path, s3://bucket/prefix?region=…,
    /// webdav+https://user@host/path.
    #[arg(long, value_name = "URL")]
    pub(crate) store: String,
    /// The relay that tells devices about new data, e.g. wss://relay.example.org; recorded as
    /// the repository's relay (a synced setting), which devices without one of their own use.
    #[arg(long, value_name = "WS_URL")]
    pub(crate) relay: Option<String>,
    /// Derive the key from a passphrase instead of a random key. It is asked for (twice, not
    /// echoed) on a terminal, else read from FERRY_PASSPHRASE or the first line of standard
    /// input; at least 8 characters.
    #[arg(long)]
    pub(crate) passphrase: bool,
    /// This device's name, as other devices show it.
    #[arg(long)]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The pairing code `ferry pair` shows on the other device. Better left out: it is then
    /// asked for (or read from the first line of standard input), whereas an argument is
    /// visible to every local user while the command runs.
    #[arg(value_name = "CODE", conflicts_with_all = ["store", "recovery_code", "passphrase"])]
    pub(crate) code: Option<String>,
    /// Join offline, without pairing: the repository's storage URL (the key is then the
    /// recovery code or the passphrase).
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// The recovery code printed by `ferry init` (with --store). Better left out: it is then
    /// asked for without echo on a terminal (or read from the first line of standard input),
    /// whereas an argument is visible to every local user while the command runs and stays in
    /// the shell's history.
    #[arg(long, value_name = "CODE", requires = "store")]
    pub(crate) recovery_code: Option<String>,
    /// Derive the key from the repository's passphrase (with --store): asked for without echo
    /// on a terminal, else read from FERRY_PASSPHRASE or the first line of standard input.
    #[arg(long, conflicts_with = "recovery_code", requires = "store")]
    pub(crate) passphrase: bool,
    /// The relay, e.g. wss://relay.example.org. When pairing, the relay the other device
    /// shows (its QR code carries it); afterwards the one it uses.
    #[arg(long, value_name = "WS_URL")]
    pub(crate) relay: Option<String>,
    /// This device's name, as other devices show it.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// How long to wait for the device that shows the code to answer.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Write the log to this file instead of standard error; past 1 MiB it becomes FILE.1 and
    /// a new one starts (the service on Windows and macOS logs to agent.log in the home).
    #[arg(long, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PickArgs {
    /// Print the chosen clip instead of placing it on the clipboard (for scripts).
    #[arg(long)]
    pub(crate) print: bool,
    /// Start with this search.
    #[arg(long, value_name = "Q")]
    pub(crate) query: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PairArgs {
    /// How long the code stays valid.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) expires: std::time::Duration,
    /// Do not draw the QR code (also FERRY_QR=0).
    #[arg(long)]
    pub(crate) no_qr: bool,
    /// Pair through this relay rather than the configured one.
    #[arg(long, value_name = "WS_URL")]
    pub(crate) relay: Option<String>,
    /// Pair a browser: show the link to the page the relay serves (and its QR code), which the
    /// browser opens to join.
    #[arg(long)]
    pub(crate) browser: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceAction {
    /// Install and start the agent as a user service (systemd on Linux, launchd on macOS, the
    /// per-user Run key on Windows).
    Install,
    /// Stop and remove the service.
    Uninstall,
    /// Whether the service is installed and running.
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyAction {
    /// Print the recovery code (anyone holding it can read all your data).
    Show {
        /// Confirm that the code may be printed.
        #[arg(long)]
        yes: bool,
    },
    /// Write the recovery code to a private (0600) file.
    Export {
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Replace the sync key with a new one (after a recovery code leaked), removing devices
    /// with --revoke: the new key goes to the other devices sealed to each, and they move to
    /// it by themselves.
    Rotate(RotateArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoreAction {
    /// Copy the repository to a bucket or a WebDAV server under a new key, and hand every
    /// device the new location and its credentials sealed to it, so that all follow by
    /// themselves. The credentials are asked for on a terminal, else read from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (S3) or FERRY_WEBDAV_PASSWORD (WebDAV).
    /// The old storage is left as it was.
    Move {
        /// Where to: s3://bucket/prefix?region=…, webdav+https://user@host/path.
        url: String,
        /// Give the new key to this device too, though no known device vouched for it (again
        /// for each).
        #[arg(long, value_name = "DEVICE")]
        include: Vec<String>,
        /// Make the new key from a new passphrase (a repository whose key comes from one).
        #[arg(long)]
        passphrase: bool,
        /// Go on without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// A secret a command carries to the agent (a new passphrase): never printed, wiped when
/// dropped.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Hidden(pub(crate) String);

impl Drop for Hidden {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hidden(…)")
    }
}

/// Who a new key goes to, and where the repository is then.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub(crate) struct RotateArgs {
    /// Remove these devices (name or id prefix): they cannot read anything written afterwards.
    #[arg(long, value_name = "DEVICE", num_args = 1..)]
    pub(crate) revoke: Vec<String>,
    /// Give the new key to this device too, though no known device vouched for it (again
    /// for each).
    #[arg(long, value_name = "DEVICE")]
    pub(crate) include: Vec<String>,
    /// Go on without asking.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Hand every device new storage credentials with the new key, so that the old ones can
    /// be replaced at the provider: asked for on a terminal, else read from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (S3) or FERRY_WEBDAV_PASSWORD (WebDAV).
    #[arg(long)]
    pub(crate) new_credentials: bool,
    /// Make the new key from a new passphrase (for a repository whose key comes from one: a
    /// removed device knows the old), asked for twice on a terminal, else read from
    /// FERRY_NEW_PASSPHRASE.
    #[arg(long)]
    pub(crate) passphrase: bool,
    /// The new passphrase, read by the command where it was typed.
    #[arg(skip)]
    #[serde(default)]
    pub(crate) new_passphrase: Option<Hidden>,
    /// Make no new key: delete the generations before the current one, once every device has
    /// moved (the images and files only they hold are written under the current key first),
    /// and the folder this device held before a move.
    #[arg(long, conflicts_with_all = ["revoke", "include", "new_credentials", "passphrase"])]
    pub(crate) finish: bool,
    /// With --finish: delete them although devices have not moved (they must then be paired
    /// again).
    #[arg(long, requires = "finish")]
    pub(crate) force: bool,
    /// The storage the repository moves to (`ferry store move`).
    #[arg(skip)]
    #[serde(default)]
    pub(crate) move_to: Option<String>,
    /// The storage and credentials handed to the devices, read by the command where it was
    /// typed (the agent has other variables).
    #[arg(skip)]
    #[serde(default)]
    pub(crate) storage: Option<ferry_protocol::generation::Storage>,
    /// The devices given the new key, as the person confirmed them (set by the command once
    /// asked).
    #[arg(skip)]
    #[serde(default)]
    pub(crate) confirmed: Option<Vec<String>>,
    /// Whether the new recovery code may be printed: the command's output is a terminal (set
    /// by the command, which may run in the agent).
    #[arg(skip)]
    #[serde(default)]
    pub(crate) show_code: bool,
}

/// Commands on the device's data: run by the agent when it runs, else here.
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub(crate) enum DataCommand {
    /// Record a clip (TEXT, standard input, a file or an image) and sync it now.
    Copy(CopyArgs),
    /// Print a clip (the newest by default) after a quick fetch.
    Paste(PasteArgs),
    /// List clips, newest first: id, pin mark (`*` or empty), age, device, preview
    /// (tab-separated).
    History(HistoryArgs),
    /// Pin a clip to the top.
    Pin {
        /// The clip's id (or a unique prefix of it).
        id: String,
    },
    /// Unpin a clip.
    Unpin {
        /// The clip's id (or a unique prefix of it).
        id: String,
    },
    /// Move a clip to the trash.
    Rm {
        /// The clip's id (or a unique prefix of it).
        id: String,
    },
    /// List the trash.
    Trash,
    /// Bring a clip back from the trash.
    Restore {
        /// The clip's id (or a unique prefix of it).
        id: String,
    },
    /// Collections of clips.
    Collection {
        #[command(subcommand)]
        action: CollectionAction,
    },
    /// Aliases: named snippets.
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
    /// Settings: this device's (config files, environment) and the synced ones.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Upload what is pending and fetch what is new.
    Sync {
        /// Show what would move, and move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Try every quarantined object again now, without waiting for its next try.
        #[arg(long, conflicts_with = "dry_run")]
        retry_quarantined: bool,
    },
    /// This device, its peers, pending work and problems.
    Status,
    /// The devices of this repository: their keys, who added them, how far this one read them.
    Devices {
        #[command(subcommand)]
        action: Option<DevicesAction>,
    },
    /// The transfer log, newest first: a line per object moved or copy left out (age,
    /// direction, kind, device, size, outcome, object, detail; tab-separated, `-` where none).
    Log(LogArgs),
    /// Pause sync on this device: copies are not recorded, nothing is uploaded or fetched,
    /// until `ferry resume` or the end of --for. It outlasts an agent restart.
    Pause {
        /// Resume by itself after this long, e.g. 30m, 1h, 2h30m.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Resume sync: what is pending goes out, and new clips are fetched.
    Resume,
    /// Stop the running agent; it sends what is pending first (a service manager restarts it
    /// at the next login).
    Stop,
    /// The picker's search: clips matching QUERY as typed, for `ferry pick`.
    #[command(hide = true)]
    Matches {
        query: String,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// How far the agent is with this device's images and files going out (what `ferry copy`
    /// draws its progress bar from while the agent uploads).
    #[command(hide = true)]
    Uploading,
    /// Copy clip ID again and place it on the clipboard (what Enter in `ferry pick` does).
    #[command(hide = true)]
    Place {
        /// The clip's id (or a unique prefix of it).
        id: String,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub(crate) enum DevicesAction {
    /// Name this device, on every device; or give another device a label that only this
    /// device shows (a device names itself). Its own name again takes the label away.
    Rename {
        /// The device's id (or a unique prefix of it), or its current name.
        device: String,
        /// The new name.
        name: String,
    },
    /// Vouch for a device: shows its key's fingerprint and asks to confirm, then every device
    /// counts it as added by this one (made from a device whose own membership holds).
    Vouch {
        /// The device's id (or a unique prefix of it), or its name.
        device: String,
        /// Vouch without asking, for the fingerprint `ferry devices` shows.
        #[arg(long)]
        yes: bool,
        /// The fingerprint confirmed (set by the command once asked).
        #[arg(skip)]
        #[serde(default)]
        fingerprint: Option<String>,
    },
    /// The device `vouch` would vouch for, and its key's fingerprint (what `vouch` asks to
    /// confirm).
    #[command(hide = true)]
    Candidate {
        /// The device's id (or a unique prefix of it), or its name.
        device: String,
    },
    /// Remove devices (a lost or sold one): a new key goes to the others, which move to it by
    /// themselves; the removed ones cannot read anything written afterwards (`ferry key rotate
    /// --revoke`).
    Remove {
        /// The devices to remove (name or id prefix).
        #[arg(required = true)]
        devices: Vec<String>,
        /// Give the new key to this device too, though no known device vouched for it (again
        /// for each).
        #[arg(long, value_name = "DEVICE")]
        include: Vec<String>,
        /// Make the new key from a new passphrase (a repository whose key comes from one).
        #[arg(long)]
        passphrase: bool,
        /// Go on without asking.
        #[arg(long)]
        yes: bool,
    },
    /// A new key, removing devices or not: what `ferry devices remove` and `ferry key rotate`
    /// run (here, or in the agent).
    #[command(hide = true)]
    Rotate(RotateArgs),
    /// What a rotation would do: who is removed, who gets the new key, who is left out.
    #[command(hide = true)]
    RotationPlan {
        /// The devices to remove.
        #[arg(long)]
        revoke: Vec<String>,
        /// The devices included.
        #[arg(long)]
        include: Vec<String>,
        /// Whether the new key comes from a new passphrase.
        #[arg(long)]
        passphrase: bool,
    },
    /// Attest a device this one paired (what `ferry pair` does once the code is confirmed).
    #[command(hide = true)]
    Attest {
        /// The paired device's id.
        device: String,
        /// Its public keys, as 128 hex digits (signing key, then sealing key).
        keys: String,
    },
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub(crate) struct CopyArgs {
    /// The text (standard input when absent).
    pub(crate) text: Option<String>,
    /// Copy a small file.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["text", "image"])]
    pub(crate) file: Option<PathBuf>,
    /// Copy a PNG image.
    #[arg(long, value_name = "PATH.png", conflicts_with = "text")]
    pub(crate) image: Option<PathBuf>,
    /// Record it only: do not also put it on this device's clipboard.
    #[arg(long)]
    pub(crate) no_place: bool,
    /// Whether to put it on this device's clipboard: unless --no-place, when there is one
    /// (set by the command, which may run in the agent).
    #[arg(skip)]
    #[serde(default)]
    pub(crate) place: bool,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub(crate) struct PasteArgs {
    /// The clip's id or a unique prefix (the newest when absent).
    pub(crate) id: Option<String>,
    /// Do not fetch first.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Write the content to this file (images and files go to a terminal no other way).
    #[arg(long, value_name = "PATH", conflicts_with = "place")]
    pub(crate) output: Option<PathBuf>,
    /// Put clip ID on this clipboard instead, and make it the newest clip on every device (as
    /// Enter does in `ferry pick`).
    #[arg(long, requires = "id")]
    #[serde(default)]
    pub(crate) place: bool,
    /// Whether standard output is a terminal, where bytes that are not text are refused (set
    /// by the command, which may run in the agent).
    #[arg(skip)]
    #[serde(default)]
    pub(crate) to_terminal: bool,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub(crate) struct HistoryArgs {
    /// Only clips whose text matches these words.
    #[arg(long, value_name = "Q")]
    pub(crate) search: Option<String>,
    /// At most this many clips.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub(crate) struct LogArgs {
    /// Only transfers with this device: its name or id as `ferry devices` shows them.
    #[arg(long, value_name = "D")]
    pub(crate) device: Option<String>,
    /// Only this kind: segment, snapshot, blob, filter (a copy the clipboard settings left
    /// out), upload or fetch (a failed pass).
    #[arg(long, value_name = "K")]
    pub(crate) kind: Option<ferry_sync::transfer::Kind>,
    /// Only lines containing this text (in any column, as shown).
    #[arg(long, value_name = "Q")]
    pub(crate) search: Option<String>,
    /// At most this many lines.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub(crate) enum CollectionAction {
    /// List collections.
    Ls,
    /// Create a collection.
    Create {
        /// Its name.
        name: String,
    },
    /// Show a collection's clips.
    Show {
        /// Its name.
        name: String,
    },
    /// Add a clip.
    Add {
        /// The collection's name.
        name: String,
        /// The clip's id or prefix.
        id: String,
    },
    /// Remove a clip.
    Remove {
        /// The collection's name.
        name: String,
        /// The clip's id or prefix.
        id: String,
    },
    /// Rename a collection.
    Rename {
        /// Its name.
        name: String,
        /// The new name.
        new_name: String,
    },
    /// Delete a collection (its clips stay in the history).
    Rm {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub(crate) enum AliasAction {
    /// Set an alias.
    Set {
        /// Its name.
        name: String,
        /// Its text.
        value: String,
    },
    /// Print an alias's text.
    Get {
        /// Its name.
        name: String,
    },
    /// List aliases.
    Ls,
    /// Remove an alias.
    Rm {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub(crate) enum ConfigAction {
    /// Print a setting's value and where it comes from.
    Get {
        /// The key, e.g. sync.poll_interval.
        key: String,
    },
    /// Set a setting: in this device's config file, or for every device with --synced.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Set it for all devices (only keys marked synced).
        #[arg(long)]
        synced: bool,
    },
    /// Remove a setting from this device's config file (or the synced settings).
    Unset {
        /// The key.
        key: String,
        /// Remove the synced value.
        #[arg(long)]
        synced: bool,
    },
    /// List every setting with its value and source.
    Ls,
}
