//! What this device calls each device: the name that device gave itself (only a device names
//! itself, see `ferry_core::roster`), unless this device gave it a label of its own (`ferry
//! devices rename` of another device), which never leaves this device. No two devices show
//! under one name: the later registered one is "laptop (2)".

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ferry_core::State;
use ferry_protocol::DeviceId;

use crate::error::{Failure, file_error};
use crate::home::{Home, write_whole};

/// The labels this device gave other devices, kept in `labels.json` in the home.
#[derive(Debug, Clone, Default)]
pub(crate) struct Labels {
    path: PathBuf,
    by_device: BTreeMap<DeviceId, String>,
}

impl Labels {
    /// The home's labels; none when the file is not there.
    pub(crate) fn load(home: &Home) -> Result<Labels, Failure> {
        let path = home.labels_file();
        let by_device = match std::fs::read(&path) {
            Ok(bytes) => {
                let read: BTreeMap<String, String> =
                    serde_json::from_slice(&bytes).map_err(|e| {
                        Failure::new(format!(
                            "{} is damaged ({e}): remove it, and the labels `ferry devices \
                             rename` gave other devices are forgotten",
                            path.display()
                        ))
                    })?;
                read.into_iter()
                    .filter_map(|(id, label)| Some((id.parse().ok()?, label)))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(file_error(&path, "read")(e)),
        };
        Ok(Labels { path, by_device })
    }

    /// The label of `device`, if this device gave it one.
    pub(crate) fn get(&self, device: &DeviceId) -> Option<&str> {
        self.by_device.get(device).map(String::as_str)
    }

    /// Labels `device` (or takes its label away), on disk at once.
    pub(crate) fn set(&mut self, device: DeviceId, label: Option<String>) -> Result<(), Failure> {
        let mut next = self.by_device.clone();
        match label {
            Some(label) => next.insert(device, label),
            None => next.remove(&device),
        };
        let text: BTreeMap<String, &String> = next
            .iter()
            .map(|(id, label)| (id.to_string(), label))
            .collect();
        let json = serde_json::to_vec_pretty(&text).expect("a map of strings encodes");
        write_whole(&self.path, &json)?;
        self.by_device = next;
        Ok(())
    }
}

/// What each device is called here: every registered device of `state` and each of `others`
/// (devices known only by their objects), by label, else the name it gave itself (cleaned of
/// anything that could pass for other text on a terminal), else its short id; made unique
/// with the plain name going, in order, to a device labelled here, a device whose membership
/// holds (`holds`), then the others, each group in the order they registered.
pub(crate) fn names(
    state: &State,
    labels: &Labels,
    holds: &BTreeSet<DeviceId>,
    others: impl IntoIterator<Item = DeviceId>,
) -> BTreeMap<DeviceId, String> {
    let mut devices: Vec<(Option<ferry_core::Hlc>, DeviceId)> = state
        .devices()
        .map(|(id, entry)| (Some(entry.added), *id))
        .collect();
    let registered: BTreeSet<DeviceId> = devices.iter().map(|(_, id)| *id).collect();
    devices.extend(
        others
            .into_iter()
            .filter(|id| !registered.contains(id))
            .map(|id| (None, id)),
    );
    devices.sort_by_key(|(added, id)| {
        let rank = match (
            labels.get(id).is_some(),
            holds.contains(id),
            added.is_some(),
        ) {
            (true, _, _) => 0,
            (false, true, _) => 1,
            (false, false, true) => 2,
            (false, false, false) => 3,
        };
        (rank, *added, *id)
    });
    devices.dedup_by_key(|(_, id)| *id);
    let mut taken = BTreeSet::new();
    let mut names = BTreeMap::new();
    for (_, id) in devices {
        let base = labels
            .get(&id)
            .map(str::to_owned)
            .or_else(|| state.own_name(&id).map(|name| shown(&name)))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| id.short());
        let mut name = base.clone();
        let mut n = 1;
        while !taken.insert(name.to_lowercase()) {
            n += 1;
            name = format!("{base} ({n})");
        }
        names.insert(id, name);
    }
    names
}

/// A name another device chose, as it may be shown: one line of at most 64 characters,
/// without control characters, nor the invisible ones that reorder or hide text.
fn shown(name: &str) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    name.chars()
        .filter(|c| !invisible(*c))
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_labels_are_a_clear_error_and_missing_ones_none() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(dir.path()), None).unwrap();
        assert!(Labels::load(&home).unwrap().by_device.is_empty());
        for broken in [&b"{\"ab\": 3"[..], b"\xff\xfe", b"[1, 2]"] {
            std::fs::write(home.labels_file(), broken).unwrap();
            let error = Labels::load(&home).unwrap_err().message;
            assert!(error.contains("labels.json is damaged"), "{error}");
        }
        let mut labels = Labels::load(&home).unwrap_or_default();
        labels.path = home.labels_file();
        let id = DeviceId([7; 16]);
        labels.set(id, Some("desk".into())).unwrap();
        assert_eq!(Labels::load(&home).unwrap().get(&id), Some("desk"));
    }

    #[test]
    fn a_name_shows_without_what_could_pass_for_other_text() {
        assert_eq!(shown("lap\ttop\n\u{1b}[2J"), "laptop[2J");
        assert_eq!(shown("\u{202e}pot\u{200b}pal "), "potpal");
        assert_eq!(shown(&"x".repeat(100)).len(), 64);
    }
}
