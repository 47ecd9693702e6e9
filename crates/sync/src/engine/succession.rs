//! Generations, seen from one device (SPEC §11): which devices a new key goes to, writing a
//! device's own candidate, and what the candidates in storage mean for this device.
//!
//! ```text
//! rotation_plan(remove, include) ─▶ recipients (members once the removed are out) + left out
//! rotate(old key, new key, plan)  ─▶ new header, prev, head/next/<own tag>
//! succession(removed here)        ─▶ None | Follow | Removed | LeftOut | Dispute
//! ```
//!
//! Nothing here moves the device to the new generation: that is the caller's next step once
//! it holds the new key.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use ferry_core::Membership;
use ferry_protocol::generation::{MAX_DEVICES, Plan, Storage, Successor};
use ferry_protocol::{DeviceId, DeviceKeys, DeviceTag, KdfParams, ObjectName, RepoHeader, SyncKey};
use ferry_store::{Store, StoreError};

use super::follow::Halt;
use super::{Engine, NextGeneration};
use crate::SyncError;
use crate::generation::{self, Choice, Creator, Lineage, Prepared, Valid, Verdict};
use crate::transfer::now_ms;

/// Who a rotation hands the new key to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPlan {
    /// The devices removed.
    pub revoked: Vec<DeviceId>,
    /// The devices that receive the new key, with their registered keys (this device first).
    pub recipients: Vec<(DeviceId, DeviceKeys)>,
    /// Registered devices that receive nothing and are not removed: their membership does
    /// not hold once the removed devices are out, and the person did not include them.
    pub left_out: Vec<DeviceId>,
}

/// Where the next generation is.
#[derive(Clone)]
pub enum Destination {
    /// In this store, with the credentials the devices have.
    Here,
    /// In this store, with new credentials (the old ones are to be replaced at the provider):
    /// `store` is it opened with them.
    Credentials {
        /// The store's URL and the new credentials, handed to every device.
        storage: Storage,
        /// The store, opened with them.
        store: Arc<dyn Store>,
    },
    /// In other storage, opened as `store`.
    Moved {
        /// Its URL and credentials, handed to every device.
        storage: Storage,
        /// The store.
        store: Arc<dyn Store>,
    },
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Here => f.write_str("Here"),
            Destination::Credentials { storage, .. } => {
                f.debug_tuple("Credentials").field(storage).finish()
            }
            Destination::Moved { storage, .. } => f.debug_tuple("Moved").field(storage).finish(),
        }
    }
}

/// What the candidates for the next generation mean for this device.
#[derive(Debug)]
pub enum Succession {
    /// There is no new generation.
    None,
    /// Move to the new generation with the handed key (and storage, when it moved):
    /// [`Engine::follow`].
    Follow(NextGeneration),
    /// The chosen candidate removes this device: it writes nothing more.
    Removed {
        /// The device that removed it.
        by: DeviceId,
        /// When, in Unix milliseconds.
        at_ms: u64,
    },
    /// The chosen candidate leaves this device out without removing it (its membership did
    /// not hold, and it was not included): it writes nothing more.
    LeftOut {
        /// The device that made it.
        by: DeviceId,
        /// When, in Unix milliseconds.
        at_ms: u64,
    },
    /// Two devices removed each other: the device writes nothing under the current key until
    /// the person removes one of them here.
    Dispute {
        /// Each candidate's creator and the devices it removes.
        sides: Vec<(DeviceId, Vec<DeviceId>)>,
    },
}

impl Engine {
    /// The generation this device is on.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Who a rotation that removes `revoke` gives the new key to: every registered device
    /// but the removed ones (now and by earlier generations), whose membership holds once the
    /// removed devices' attestations no longer count, and the devices of `include` whatever
    /// their membership.
    pub fn rotation_plan(
        &self,
        revoke: &[DeviceId],
        include: &[DeviceId],
    ) -> Result<RotationPlan, SyncError> {
        let state = self.replica.state();
        let removed: BTreeSet<DeviceId> = revoke.iter().copied().collect();
        if removed.contains(&self.device) {
            return Err(SyncError::GenerationRefused {
                reason: "a device cannot remove itself with a new key; remove it from another \
                         device, or leave with `ferry leave`"
                    .into(),
            });
        }
        for device in revoke.iter().chain(include) {
            if state.device(device).is_none() {
                return Err(SyncError::GenerationRefused {
                    reason: format!("device {} is not in the roster", device.short()),
                });
            }
        }
        // Devices an earlier generation removed stay out, and their attestations with them.
        let earlier = self.removed();
        let out: BTreeSet<DeviceId> = removed.union(&earlier).copied().collect();
        let memberships = state.memberships_without(self.first_device()?, &out);
        let mut recipients = vec![(self.device, self.identity.public())];
        let mut left_out = Vec::new();
        for (device, entry) in state.devices() {
            if *device == self.device || out.contains(device) {
                continue;
            }
            let holds = memberships.get(device).is_some_and(Membership::holds);
            if holds || include.contains(device) {
                recipients.push((*device, entry.keys));
            } else {
                left_out.push(*device);
            }
        }
        Ok(RotationPlan {
            revoked: removed.into_iter().collect(),
            recipients,
            left_out,
        })
    }

    /// Writes this device's candidate for the next generation: the key `new` (its passphrase
    /// parameters in `kdf`), handed to `plan`'s recipients, at `destination`. `old` is the
    /// current key. Safe to run again with the same keys after a crash. Whether the devices
    /// follow it is [`succession`](Self::succession)'s to say, on each device.
    pub async fn rotate(
        &mut self,
        old: &SyncKey,
        new: &SyncKey,
        kdf: Option<KdfParams>,
        plan: &RotationPlan,
        destination: Destination,
    ) -> Result<Successor, SyncError> {
        if old.key_id() != self.keys.id {
            return Err(SyncError::GenerationRefused {
                reason: "the key given as the current one is not this repository's".into(),
            });
        }
        let header = self.current_header().await?;
        let (moved, storage, to) = match destination {
            Destination::Here => (false, None, self.remote.shared_store()),
            Destination::Credentials { storage, store } => (false, Some(storage), store),
            Destination::Moved { storage, store } => (true, Some(storage), store),
        };
        // The old storage is to be emptied: every blob that clips name goes along, so this
        // device fetches those it does not hold (it writes them under the new key when it
        // moves).
        if moved {
            for id in self.live_blobs() {
                match self.blob(id).await {
                    Ok(_) => {}
                    // A broken or missing one cannot go along; the rest do.
                    Err(error) if !error.is_transient() => {
                        tracing::warn!(blob = %id, %error, "a blob cannot be moved: it is left behind");
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let successor = Successor {
            generation: self.generation + 1,
            key_id: new.key_id(),
            moved,
        };
        let made = Plan {
            successor,
            key: new,
            storage,
            creator: self.device,
            time_ms: now_ms(),
            revoked: plan.revoked.clone(),
            recipients: plan.recipients.clone(),
        };
        let prepared = Prepared::new(old, &self.identity, &made, kdf, header.repo_id)?;
        generation::commit_to(
            self.remote.store(),
            &*to,
            self.remote.retry(),
            self.remote.root(),
            &prepared,
            &self.keys,
            &self.identity.public(),
        )
        .await?;
        Ok(successor)
    }

    /// What a generation after this one must descend from, made by the device whose keys
    /// are `creator`.
    pub(super) async fn lineage(&self, creator: DeviceKeys) -> Result<Lineage, SyncError> {
        Ok(Lineage {
            repo_id: self.current_header().await?.repo_id,
            old: self.keys.id,
            creator,
        })
    }

    /// The repository's id, from the header of the generation this device is on.
    pub async fn repo_id(&self) -> Result<[u8; 16], SyncError> {
        Ok(self.current_header().await?.repo_id)
    }

    /// The header of the generation this device is on.
    async fn current_header(&self) -> Result<RepoHeader, SyncError> {
        let bytes = self
            .remote
            .get(&ObjectName::Repo)
            .await
            .map_err(|error| match error {
                StoreError::NotFound { .. } => SyncError::NoRepository,
                error => error.into(),
            })?;
        let header = RepoHeader::from_bytes(&bytes)?;
        header.verify(&self.keys)?;
        Ok(header)
    }

    /// Records that the person removed `device` on this device (SPEC §11.3): from now on
    /// the candidates it makes are left out of this device's choice, which settles a dispute
    /// between it and another device. It is this device's own word, kept in its database.
    pub fn remove_here(&mut self, device: DeviceId) -> Result<(), SyncError> {
        if device == self.device {
            return Err(SyncError::GenerationRefused {
                reason: "a device cannot remove itself".into(),
            });
        }
        self.db.remove_here(device)?;
        // What that device's candidate said no longer counts here, and a dispute may be
        // settled: the next look says.
        let settled = match &self.halted {
            Some(Halt::Removed { by, .. } | Halt::LeftOut { by, .. }) => *by == device,
            Some(Halt::Dispute { .. }) => true,
            None => false,
        };
        if settled {
            self.halted = None;
        }
        Ok(())
    }

    /// What the candidates for the next generation mean for this device (SPEC §11.3), the
    /// devices the person removed here (those recorded with [`remove_here`]
    /// (Engine::remove_here), and `removed_here`) left out of the choice. Candidates that are
    /// refused are said in the log and never stop the device.
    pub async fn succession(
        &self,
        removed_here: &BTreeSet<DeviceId>,
    ) -> Result<Succession, SyncError> {
        let removed_here: BTreeSet<DeviceId> = removed_here
            .union(&self.db.removed_here()?)
            .copied()
            .collect();
        let removed_here = &removed_here;
        // Only members' candidates are read: a creator whose membership does not hold is
        // refused anyway, and names planted under other tags cost a listing, not reads.
        let memberships = self.memberships()?;
        let state = self.replica.state();
        let tags: BTreeSet<_> = memberships
            .iter()
            .filter(|(_, membership)| membership.holds())
            .map(|(id, _)| self.keys.names.device_tag(id))
            .collect();
        let (store, retry) = (self.remote.store(), self.remote.retry());
        let root = self.remote.root();
        let wanted = |tag: &DeviceTag| tags.contains(tag);
        let found = generation::candidates(store, retry, root, wanted, MAX_DEVICES).await?;
        let creator = |device: &DeviceId| {
            state.device(device).map(|entry| Creator {
                keys: entry.keys,
                holds: memberships.get(device).is_some_and(Membership::holds),
            })
        };
        let mut valid: Vec<Valid> = Vec::new();
        for (tag, read) in found {
            let checked = read.and_then(|next| {
                generation::validate(&next, self.generation, &self.keys, creator, |device| {
                    removed_here.contains(device)
                })
            });
            match checked {
                Ok(candidate) => valid.push(candidate),
                Err(error) => {
                    tracing::warn!(creator = %tag, %error, "a candidate for a new key was refused");
                }
            }
        }
        let first = self.first_device()?;
        let members_without = |removed: &BTreeSet<DeviceId>| {
            let removed = removed.union(removed_here).copied().collect();
            state
                .memberships_without(first, &removed)
                .into_iter()
                .filter(|(_, membership)| membership.holds())
                .map(|(device, _)| device)
                .collect()
        };
        Ok(match generation::choose(&valid, members_without) {
            Choice::Stay => Succession::None,
            Choice::Dispute(sides) => Succession::Dispute {
                sides: sides
                    .into_iter()
                    .map(|side| (side.rotation.creator, side.rotation.revoked.clone()))
                    .collect(),
            },
            Choice::Follow(chosen) => {
                let by = chosen.rotation.creator;
                let at_ms = chosen.rotation.time_ms;
                let revoked = chosen.rotation.revoked.clone();
                let recipients = chosen.rotation.wraps.iter().map(|w| w.device).collect();
                match generation::verdict(chosen, self.keys.id, &self.identity, self.device)? {
                    Verdict::Removed { by, at_ms } => Succession::Removed { by, at_ms },
                    Verdict::LeftOut { by, at_ms } => Succession::LeftOut { by, at_ms },
                    Verdict::Follow {
                        successor,
                        handover,
                    } => {
                        // A generation in other storage (or reached with other credentials)
                        // is checked there, by the move.
                        if handover.storage.is_none() {
                            let keys = handover.key.keys();
                            let lineage = self.lineage(chosen.creator_keys).await?;
                            generation::check_new_header(store, retry, &successor, &keys, lineage)
                                .await?;
                        }
                        Succession::Follow(NextGeneration {
                            successor,
                            handover,
                            by,
                            at_ms,
                            revoked,
                            recipients,
                        })
                    }
                }
            }
        })
    }
}
