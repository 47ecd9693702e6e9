//! `ferry collection`: named sets of clips.

use std::fmt;

use ferry_core::{CollectionId, DataKind};
use serde::Serialize;

use super::clip::Clips;
use crate::cli::CollectionAction;
use crate::device::{Changed, Device};
use crate::error::Failure;
use crate::output::{Done, Lines, Output, counted};

/// One collection as `collection ls` lists it.
#[derive(Serialize)]
struct Collection {
    id: String,
    name: String,
    clips: usize,
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}", self.name, counted(self.clips as u64, "clip"))
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Collections(Vec<Collection>);

impl fmt::Display for Collections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
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

/// `ferry collection …`.
pub(crate) fn run(
    device: &mut Device,
    action: CollectionAction,
    out: &mut Output,
) -> Result<Changed, Failure> {
    let kind = DataKind::Collections;
    match action {
        CollectionAction::Ls => {
            let collections = device.engine.state_for(kind).collections();
            out.report(&Collections(
                collections
                    .into_iter()
                    .map(|c| Collection {
                        id: c.id.to_string(),
                        name: c.name.to_owned(),
                        clips: c.len,
                    })
                    .collect(),
            ));
            Ok(Changed::No)
        }
        CollectionAction::Show { name } => {
            let id = find_collection(device, &name)?;
            let clips = match device.engine.state_for(kind).collection(&id) {
                Some((_, clips)) => clips,
                None => Vec::new(),
            };
            out.report(&Clips::new(device, &clips));
            Ok(Changed::No)
        }
        CollectionAction::Create { name } => {
            if find_collection(device, &name).is_ok() {
                return Err(Failure::new(format!(
                    "a collection named `{name}` exists already"
                )));
            }
            let done = Done::new(
                "collection created",
                &name,
                format!("Collection {name} created."),
            );
            device.engine.record(kind, |replica, _, now| {
                replica.create_collection(name, now).1
            })?;
            out.done(&done);
            Ok(Changed::Yes)
        }
        CollectionAction::Add { name, id } => {
            let collection = find_collection(device, &name)?;
            let clip = device.find_clip(&id)?;
            device.engine.record(kind, |replica, _, now| {
                replica.add_to_collection(collection, clip, now)
            })?;
            let line = format!("Added clip {} to {name}.", clip.short());
            out.done(&Done::new("added", clip, line));
            Ok(Changed::Yes)
        }
        CollectionAction::Remove { name, id } => {
            let collection = find_collection(device, &name)?;
            let clip = device.find_clip(&id)?;
            device.engine.record(kind, |replica, _, now| {
                replica.remove_from_collection(collection, clip, now)
            })?;
            let line = format!(
                "Took clip {} out of {name} (it stays in the history).",
                clip.short()
            );
            out.done(&Done::new("removed", clip, line));
            Ok(Changed::Yes)
        }
        CollectionAction::Rename { name, new_name } => {
            let collection = find_collection(device, &name)?;
            let line = format!("Collection {name} is now {new_name}.");
            let done = Done::new("collection renamed", &new_name, line);
            device.engine.record(kind, |replica, _, now| {
                replica.rename_collection(collection, new_name, now)
            })?;
            out.done(&done);
            Ok(Changed::Yes)
        }
        CollectionAction::Rm { name } => {
            let collection = find_collection(device, &name)?;
            device.engine.record(kind, |replica, _, now| {
                replica.delete_collection(collection, now)
            })?;
            let line = format!("Collection {name} deleted (its clips stay in the history).");
            out.done(&Done::new("collection deleted", &name, line));
            Ok(Changed::Yes)
        }
    }
}
