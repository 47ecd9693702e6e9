//! Joining a repository from the page: the new-device side of pairing (SPEC §9), as
//! `ferry join` does it, with the frames carried by the page over the relay's WebSocket.

use ferry_protocol::pairing::{
    self, AbortReason, Bundle, Credentials, Message, Outcome, PairingCode, Reply, Role, Session,
};
use ferry_protocol::{DeviceId, Identity, SyncKey};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use zeroize::{Zeroize, Zeroizing};

/// The first byte of what [`Paired::export`] writes: how the rest is laid out.
const FORMAT: u8 = 1;

/// The code in `text` (as shown, or the `ferry://` link it is in), written as the device that
/// shows it writes it; fails saying what is wrong with it, before anything is used up.
#[wasm_bindgen(js_name = checkCode)]
pub fn check_code(text: &str) -> Result<String, JsError> {
    PairingCode::parse(text)
        .map(|(code, _)| code.to_string())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// The new-device side of one pairing attempt, from the code to the bundle.
#[wasm_bindgen]
pub struct Joining {
    session: Session,
    identity: Identity,
    reply: Reply,
    nameplate: u16,
    relay: Option<String>,
    replied: bool,
    send_now: bool,
    /// The frame that tells the other side why this side ended, until it is taken.
    last: Option<Vec<u8>>,
}

#[wasm_bindgen]
impl Joining {
    /// Starts joining with `code` (as shown, or the `ferry://` link it is in), as a device
    /// named `name`, with a new identity of its own.
    #[wasm_bindgen(constructor)]
    pub fn new(code: &str, name: &str) -> Result<Joining, JsError> {
        let (code, relay) = PairingCode::parse(code).map_err(|e| JsError::new(&e.to_string()))?;
        let fail = |e: ferry_protocol::Error| JsError::new(&e.to_string());
        let identity = Identity::generate().map_err(fail)?;
        let reply = Reply {
            device: DeviceId::generate().map_err(fail)?,
            name: name.trim().to_owned(),
            keys: identity.public(),
        };
        let session = Session::new(Role::Join, &code).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Joining {
            session,
            identity,
            reply,
            nameplate: code.nameplate(),
            relay,
            replied: false,
            send_now: true,
            last: None,
        })
    }

    /// The relay topic where the two devices meet (it depends on the code's number alone).
    pub fn topic(&self) -> String {
        pairing::topic(self.nameplate).to_string()
    }

    /// The relay the code names, when it names one.
    pub fn relay(&self) -> Option<String> {
        self.relay.clone()
    }

    /// Every frame this side has to send so far, to publish now and again every two seconds
    /// while the other side may have missed them (the relay keeps no history).
    pub fn outgoing(&self) -> js_sys::Array {
        self.session
            .frames()
            .iter()
            .map(|frame| js_sys::Uint8Array::from(frame.as_slice()))
            .collect()
    }

    /// Whether the frames should go out at once (the other side just showed up, or there is
    /// something new), rather than at the next republish; asking clears it.
    #[wasm_bindgen(js_name = sendNow)]
    pub fn send_now(&mut self) -> bool {
        std::mem::take(&mut self.send_now)
    }

    /// Whether the other side has answered at all.
    pub fn answered(&self) -> bool {
        self.session.answered()
    }

    /// Whether the other side has proven that it holds the same code: the code is used up.
    pub fn confirmed(&self) -> bool {
        self.session.confirmed()
    }

    /// Takes a frame from the other side: the settings once they have all come, else nothing
    /// yet. Fails when the code was wrong, the other side gave up, or the settings name a
    /// storage a browser cannot reach (the other side is told why).
    pub fn receive(&mut self, frame: &[u8]) -> Result<Option<Paired>, JsError> {
        let progress = self.session.receive(frame).map_err(|error| {
            if let Some(reason) = error.abort_reason() {
                self.last = Some(self.session.abort(reason));
            }
            JsError::new(&error.to_string())
        })?;
        self.send_now |= progress.send_now;
        if progress.confirmed && !self.replied {
            self.session
                .send(&Message::Reply(self.reply.clone()))
                .map_err(|e| JsError::new(&e.to_string()))?;
            self.replied = true;
            self.send_now = true;
        }
        let Some(Message::Bundle(bundle)) = progress.message else {
            return Ok(None);
        };
        if let Err(why) = reachable_from_a_browser(&bundle) {
            self.finish(false, &why)?;
            return Err(JsError::new(&why));
        }
        Ok(Some(Paired::from_bundle(
            bundle,
            &self.identity,
            &self.reply,
        )))
    }

    /// Tells the other side how installing the settings went: `joined`, or not and why.
    pub fn finish(&mut self, joined: bool, detail: &str) -> Result<(), JsError> {
        let outcome = Outcome {
            joined,
            detail: detail.to_owned(),
        };
        self.send_now = true;
        self.session
            .send(&Message::Outcome(outcome))
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// The frame that tells the other side this attempt was cancelled.
    pub fn cancel(&self) -> Vec<u8> {
        self.session.abort(AbortReason::Cancelled)
    }

    /// After [`receive`](Self::receive) failed: the frame that tells the other side why (a
    /// wrong code, say), to publish once; taking it clears it.
    #[wasm_bindgen(js_name = lastFrame)]
    pub fn last_frame(&mut self) -> Option<Vec<u8>> {
        self.last.take()
    }
}

/// Whether a browser can reach the storage `bundle` names: a bucket or a WebDAV server can
/// (when they allow the page's origin), a folder on the other device's disk cannot.
fn reachable_from_a_browser(bundle: &Bundle) -> Result<(), String> {
    let store = bundle.store.trim();
    let scheme = store
        .split_once("://")
        .map_or(String::new(), |(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_str() {
        "s3" | "webdav" | "webdavs" | "webdav+http" | "webdav+https" => Ok(()),
        _ => Err(format!(
            "this repository is a folder that only {} reaches (on its disk, or held on its \
             LAN): a browser cannot read it. Move the repository to an S3 bucket first (`ferry \
             store move s3://BUCKET/PREFIX` on that device), then pair this browser again",
            bundle.name
        )),
    }
}

/// What a browser device keeps: the repository's key and storage, its own identity, and who
/// paired it. Never shown to the page's script as such: it takes [`Paired::export`]'s bytes
/// and keeps them sealed under a key of its own.
#[derive(Serialize, Deserialize)]
struct Kept {
    sync_key: [u8; 32],
    identity: Vec<u8>,
    device: DeviceId,
    name: String,
    store: String,
    credentials: Credentials,
    relay: Option<String>,
    by: String,
    by_device: DeviceId,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.sync_key.zeroize();
        self.identity.zeroize();
        self.credentials.zeroize();
    }
}

/// A browser device paired with a repository.
#[wasm_bindgen]
pub struct Paired {
    kept: Kept,
}

impl Paired {
    fn from_bundle(bundle: Bundle, identity: &Identity, reply: &Reply) -> Paired {
        let kept = Kept {
            sync_key: bundle.sync_key,
            identity: identity.to_secret_bytes().to_vec(),
            device: reply.device,
            name: reply.name.clone(),
            store: bundle.store.clone(),
            credentials: bundle.credentials.clone(),
            relay: bundle.relay.clone(),
            by: bundle.name.clone(),
            by_device: bundle.device,
        };
        Paired { kept }
    }

    /// The repository's sync key.
    pub fn sync_key(&self) -> SyncKey {
        SyncKey::from_bytes(self.kept.sync_key)
    }

    /// This device's identity.
    pub fn identity(&self) -> Identity {
        let mut bytes = Zeroizing::new([0u8; Identity::SECRET_LEN]);
        bytes.copy_from_slice(&self.kept.identity);
        Identity::from_secret_bytes(&bytes)
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.kept.device
    }

    /// The storage's credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.kept.credentials
    }
}

#[wasm_bindgen]
impl Paired {
    /// This device's id.
    pub fn device(&self) -> String {
        self.kept.device.to_string()
    }

    /// This device's name.
    pub fn name(&self) -> String {
        self.kept.name.clone()
    }

    /// The storage URL (no credentials in it).
    pub fn store(&self) -> String {
        self.kept.store.clone()
    }

    /// The relay the repository's devices use, when they use one.
    pub fn relay(&self) -> Option<String> {
        self.kept.relay.clone()
    }

    /// The name of the device that paired this one.
    pub fn by(&self) -> String {
        self.kept.by.clone()
    }

    /// The sync key's id, as `ferry status` shows it.
    #[wasm_bindgen(js_name = keyId)]
    pub fn key_id(&self) -> String {
        self.sync_key().keys().id.to_string()
    }

    /// Everything this device keeps, as bytes for the page to seal and store (and then to
    /// overwrite).
    pub fn export(&self) -> js_sys::Uint8Array {
        // Serialising plain data into a vector does not fail.
        let body = Zeroizing::new(postcard::to_allocvec(&self.kept).unwrap_or_default());
        let bytes = js_sys::Uint8Array::new_with_length(body.len() as u32 + 1);
        bytes.set_index(0, FORMAT);
        bytes.subarray(1, body.len() as u32 + 1).copy_from(&body);
        bytes
    }

    /// What [`export`](Self::export) wrote, read back.
    pub fn import(bytes: &[u8]) -> Result<Paired, JsError> {
        let unreadable = || {
            JsError::new(
                "what this browser kept of its pairing cannot be read: choose \"Forget this \
                 browser\", remove it on another device (`ferry devices remove`), and pair again",
            )
        };
        let (&format, body) = bytes.split_first().ok_or_else(unreadable)?;
        if format != FORMAT {
            return Err(unreadable());
        }
        let (kept, rest): (Kept, _) = postcard::take_from_bytes(body).map_err(|_| unreadable())?;
        if !rest.is_empty() || kept.identity.len() != Identity::SECRET_LEN {
            return Err(unreadable());
        }
        Ok(Paired { kept })
    }
}
