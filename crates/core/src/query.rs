//! Reading the state: history, clips, collections, aliases, settings, trash, counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ferry_protocol::DeviceId;

use crate::canonical::Register;
use crate::clip::{ClipContent, ClipId, CollectionId};
use crate::hlc::Hlc;
use crate::op::Versioned;
use crate::state::{ClipEntry, State};

/// A clip as queries show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipView<'a> {
    /// Its id.
    pub id: ClipId,
    /// Its content.
    pub content: &'a ClipContent,
    /// When it was first copied (its device is [`source`](Self::source)).
    pub first: Hlc,
    /// When it was last copied.
    pub last_used: Hlc,
    /// Pinned.
    pub pinned: bool,
    /// A favourite.
    pub favourite: bool,
    /// When it went to the trash, if it is there.
    pub trashed_at: Option<Hlc>,
}

impl ClipView<'_> {
    /// The device that first copied it.
    pub fn source(&self) -> DeviceId {
        self.first.device
    }

    /// Where the next history page starts after this clip.
    pub fn cursor(&self) -> HistoryCursor {
        HistoryCursor(self.last_used)
    }
}

/// A position in the history: pages continue after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HistoryCursor(Hlc);

/// A collection as queries show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionView {
    /// Its id.
    pub id: CollectionId,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: Hlc,
    /// How many visible clips it holds.
    pub len: usize,
}

/// How concurrent values of an alias or setting are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Show every concurrent value, marked as a conflict.
    #[default]
    KeepBoth,
    /// Show the value written last (in hybrid logical time).
    Latest,
    /// Prefer the newest value written on this device.
    LocalWins,
    /// Prefer the newest value written on another device.
    RemoteWins,
}

crate::spelled!(pub Strategy, "conflict strategy", {
    Latest = "latest",
    KeepBoth = "keep_both",
    LocalWins = "local_wins",
    RemoteWins = "remote_wins",
});

/// The strategy for each kind of register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resolution {
    /// For aliases.
    pub aliases: Strategy,
    /// For settings.
    pub settings: Strategy,
}

/// An alias or setting after its strategy was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The values shown, newest first: one, or several under `keep_both` when writes were
    /// concurrent.
    pub values: Vec<Versioned>,
    /// Whether concurrent writes disagree (the register holds more than one value).
    pub conflict: bool,
}

impl Resolved {
    /// The value shown first.
    pub fn value(&self) -> Option<&str> {
        self.values.first().and_then(|v| v.value.as_deref())
    }
}

/// Counts and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Clips in the history (not in the trash).
    pub clips: usize,
    /// Bytes of their content.
    pub bytes: u64,
    /// Clips in the trash.
    pub trashed: usize,
    /// Pinned clips.
    pub pinned: usize,
    /// Favourite clips.
    pub favourites: usize,
    /// Collections.
    pub collections: usize,
    /// Aliases.
    pub aliases: usize,
    /// Settings.
    pub settings: usize,
}

fn view(id: ClipId, entry: &ClipEntry) -> Option<ClipView<'_>> {
    Some(ClipView {
        id,
        content: entry.content.as_ref()?,
        first: entry.first,
        last_used: entry.last_used,
        pinned: entry.pinned(),
        favourite: entry.favourite(),
        trashed_at: entry.trashed_at(),
    })
}

impl State {
    /// Clips with content, newest first, trash included.
    fn by_last_use(&self) -> impl Iterator<Item = ClipView<'_>> + '_ {
        self.history.newest_first(None).filter_map(|slot| {
            let (id, entry) = self.data.clips.at(slot);
            view(id, entry)
        })
    }

    /// The newest clip in the history.
    pub fn newest(&self) -> Option<ClipView<'_>> {
        self.by_last_use().find(|c| c.trashed_at.is_none())
    }

    /// One page of the history, newest first: up to `limit` clips after `after` (from the top
    /// when `None`). The trash is not part of the history.
    pub fn history(&self, after: Option<HistoryCursor>, limit: usize) -> Vec<ClipView<'_>> {
        // Every copy has its own stamp, so no two clips share a last-use time: the page starts
        // strictly below the cursor's.
        self.history
            .newest_first(after.map(|cursor| cursor.0))
            .filter_map(|slot| {
                let (id, entry) = self.data.clips.at(slot);
                view(id, entry)
            })
            .filter(|c| c.trashed_at.is_none())
            .take(limit)
            .collect()
    }

    /// A clip by id, whether in the history or the trash.
    pub fn clip(&self, id: &ClipId) -> Option<ClipView<'_>> {
        view(*id, self.data.clips.get(id)?)
    }

    /// Pinned clips, newest first.
    pub fn pinned(&self) -> Vec<ClipView<'_>> {
        self.by_last_use()
            .filter(|c| c.pinned && c.trashed_at.is_none())
            .collect()
    }

    /// Favourite clips, newest first.
    pub fn favourites(&self) -> Vec<ClipView<'_>> {
        self.by_last_use()
            .filter(|c| c.favourite && c.trashed_at.is_none())
            .collect()
    }

    /// The trash, most recently deleted first.
    pub fn trash(&self) -> Vec<ClipView<'_>> {
        let mut trashed: Vec<_> = self
            .by_last_use()
            .filter(|c| c.trashed_at.is_some())
            .collect();
        trashed.sort_by_key(|c| std::cmp::Reverse(c.trashed_at));
        trashed
    }

    /// The collections, by name.
    pub fn collections(&self) -> Vec<CollectionView> {
        let mut all: Vec<_> = self
            .data
            .collections
            .keys()
            .filter_map(|id| self.collection(id).map(|(view, _)| view))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        all
    }

    /// A collection and its visible clips, newest first.
    pub fn collection(&self, id: &CollectionId) -> Option<(CollectionView, Vec<ClipView<'_>>)> {
        let entry = self.data.collections.get(id)?;
        if !entry.is_visible() {
            return None;
        }
        let mut clips: Vec<_> = entry
            .members
            .0
            .read()
            .val
            .into_iter()
            .filter_map(|clip| self.clip(&clip))
            .filter(|c| c.trashed_at.is_none())
            .collect();
        clips.sort_by_key(|c| std::cmp::Reverse(c.cursor()));
        let view = CollectionView {
            id: *id,
            name: entry.name.val.clone(),
            created: entry.created?,
            len: clips.len(),
        };
        Some((view, clips))
    }

    /// One alias, resolved.
    pub fn alias(&self, name: &str, strategy: Strategy, local: DeviceId) -> Option<Resolved> {
        resolve(self.data.aliases.get(name)?, strategy, local)
    }

    /// Every alias, by name, resolved.
    pub fn aliases(&self, strategy: Strategy, local: DeviceId) -> Vec<(&str, Resolved)> {
        resolve_all(&self.data.aliases, strategy, local)
    }

    /// One synced setting, resolved.
    pub fn setting(&self, key: &str, strategy: Strategy, local: DeviceId) -> Option<Resolved> {
        resolve(self.data.settings.get(key)?, strategy, local)
    }

    /// Every synced setting, by key, resolved.
    pub fn settings(&self, strategy: Strategy, local: DeviceId) -> Vec<(&str, Resolved)> {
        resolve_all(&self.data.settings, strategy, local)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for clip in self.by_last_use() {
            if clip.trashed_at.is_some() {
                stats.trashed += 1;
                continue;
            }
            stats.clips += 1;
            stats.bytes += clip.content.size();
            stats.pinned += usize::from(clip.pinned);
            stats.favourites += usize::from(clip.favourite);
        }
        stats.collections = self
            .data
            .collections
            .values()
            .filter(|c| c.is_visible())
            .count();
        stats.aliases = self.aliases(Strategy::Latest, DeviceId([0; 16])).len();
        stats.settings = self.settings(Strategy::Latest, DeviceId([0; 16])).len();
        stats
    }
}

/// Every register of a map that shows a value, by key.
fn resolve_all(
    registers: &BTreeMap<String, Register>,
    strategy: Strategy,
    local: DeviceId,
) -> Vec<(&str, Resolved)> {
    registers
        .iter()
        .filter_map(|(key, register)| Some((key.as_str(), resolve(register, strategy, local)?)))
        .collect()
}

/// Applies a strategy to a register's concurrent values. `None` when what is shown is a deletion.
fn resolve(register: &Register, strategy: Strategy, local: DeviceId) -> Option<Resolved> {
    let mut values = register.values();
    values.reverse(); // newest first
    let conflict = values.len() > 1;
    let newest_where = |pred: &dyn Fn(&Versioned) -> bool| -> Option<Versioned> {
        values.iter().find(|v| pred(v)).or(values.first()).cloned()
    };
    let shown = match strategy {
        Strategy::KeepBoth => values
            .iter()
            .filter(|v| v.value.is_some())
            .cloned()
            .collect(),
        Strategy::Latest => newest_where(&|_| true).into_iter().collect(),
        Strategy::LocalWins => newest_where(&|v| v.hlc.device == local)
            .into_iter()
            .collect(),
        Strategy::RemoteWins => newest_where(&|v| v.hlc.device != local)
            .into_iter()
            .collect(),
    };
    let shown: Vec<Versioned> = shown;
    if shown.iter().all(|v| v.value.is_none()) {
        return None;
    }
    Some(Resolved {
        values: shown,
        conflict,
    })
}
