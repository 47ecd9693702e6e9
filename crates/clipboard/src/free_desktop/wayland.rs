//! Clipboard events on Wayland, through a data-control protocol: `ext_data_control_v1` (the
//! standard one, offered by newer KDE Plasma, sway and other wlroots compositors) where the
//! compositor offers it, else `zwlr_data_control_v1` (older wlroots compositors and KDE). The
//! compositor announces each new selection with the types it is offered in, and the watcher
//! reads the one it wants through a pipe. The two protocols have the same shape: one watcher
//! speaks both ([`Offer`]). GNOME offers neither; there the X11 watcher works through XWayland.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::mpsc;
use std::thread;

use tracing::{info, warn};
use wayland_client::globals::{GlobalListContents, registry_queue_init};
use wayland_client::protocol::{wl_registry, wl_seat::WlSeat};
use wayland_client::{Connection, Dispatch, EventQueue, QueueHandle, event_created_child};
use wayland_protocols::ext::data_control::v1::client::ext_data_control_device_v1::{
    self, ExtDataControlDeviceV1,
};
use wayland_protocols::ext::data_control::v1::client::ext_data_control_manager_v1::ExtDataControlManagerV1;
use wayland_protocols::ext::data_control::v1::client::ext_data_control_offer_v1::{
    self, ExtDataControlOfferV1,
};
use wayland_protocols_wlr::data_control::v1::client::zwlr_data_control_device_v1::{
    self, ZwlrDataControlDeviceV1,
};
use wayland_protocols_wlr::data_control::v1::client::zwlr_data_control_manager_v1::ZwlrDataControlManagerV1;
use wayland_protocols_wlr::data_control::v1::client::zwlr_data_control_offer_v1::{
    self, ZwlrDataControlOfferV1,
};

use super::x11::{ANSWER_TIMEOUT, SECRET_HINT};
use crate::{Clip, ClipboardError, Observed, Source, WatchConfig};

/// Text types, best first: what wl-copy, browsers and toolkits offer.
const TEXT_TYPES: [&str; 3] = ["text/plain;charset=utf-8", "UTF8_STRING", "text/plain"];
const PNG: &str = "image/png";

/// A selection the compositor offers, in either protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Offer {
    Ext(ExtDataControlOfferV1),
    Wlr(ZwlrDataControlOfferV1),
}

impl Offer {
    /// Asks the owner to write the content as `kind` into `fd`.
    fn receive(&self, kind: String, fd: BorrowedFd<'_>) {
        match self {
            Offer::Ext(offer) => offer.receive(kind, fd),
            Offer::Wlr(offer) => offer.receive(kind, fd),
        }
    }

    fn destroy(&self) {
        match self {
            Offer::Ext(offer) => offer.destroy(),
            Offer::Wlr(offer) => offer.destroy(),
        }
    }
}

/// What the compositor told the watcher so far.
#[derive(Default)]
struct Events {
    /// Offers the compositor introduced, oldest first, with their types, until they are
    /// selected or overtaken by a newer selection.
    offers: Vec<(Offer, Vec<String>)>,
    /// The newest clipboard selection not yet handled (`Some(None)`: the clipboard was cleared).
    selection: Option<Option<Offer>>,
    /// The compositor withdrew the data-control device.
    finished: bool,
}

impl Events {
    fn offered(&mut self, offer: Offer) {
        self.offers.push((offer, Vec::new()));
    }

    fn type_offered(&mut self, offer: &Offer, kind: String) {
        if let Some((_, types)) = self.offers.iter_mut().find(|(o, _)| o == offer) {
            types.push(kind);
        }
    }
}

pub(crate) struct WaylandWatcher {
    conn: Connection,
    queue: EventQueue<Events>,
    events: Events,
    config: WatchConfig,
    source: Source,
}

fn wayland_error(error: impl std::fmt::Display) -> ClipboardError {
    ClipboardError::Wayland(error.to_string())
}

impl WaylandWatcher {
    /// Connects to the compositor of `WAYLAND_DISPLAY` and subscribes to the clipboard of its
    /// first seat, through `ext_data_control_v1` where it is offered, else
    /// `zwlr_data_control_v1`. A compositor with neither is [`ClipboardError::NoEvents`].
    pub(crate) fn connect(config: WatchConfig) -> Result<WaylandWatcher, ClipboardError> {
        let conn = Connection::connect_to_env()
            .map_err(|e| ClipboardError::NoDisplay(format!("no Wayland compositor: {e}")))?;
        let (globals, mut queue) = registry_queue_init::<Events>(&conn).map_err(wayland_error)?;
        let handle = queue.handle();
        // Which protocol first: without one the seat does not matter (GNOME has a seat, and no
        // data-control).
        let offered = |interface: &str| {
            globals
                .contents()
                .with_list(|list| list.iter().any(|global| global.interface == interface))
        };
        let ext = offered("ext_data_control_manager_v1");
        if !ext && !offered("zwlr_data_control_manager_v1") {
            return Err(ClipboardError::NoEvents(
                "the Wayland compositor offers neither ext_data_control_v1 nor \
                 zwlr_data_control_v1, as on GNOME"
                    .into(),
            ));
        }
        let seat: WlSeat = globals
            .bind(&handle, 1..=8, ())
            .map_err(|e| ClipboardError::NoEvents(format!("the compositor has no seat: {e}")))?;
        let source = if ext {
            let manager: ExtDataControlManagerV1 =
                globals.bind(&handle, 1..=1, ()).map_err(wayland_error)?;
            manager.get_data_device(&seat, &handle, ());
            Source::ExtDataControl
        } else {
            let manager: ZwlrDataControlManagerV1 =
                globals.bind(&handle, 1..=2, ()).map_err(wayland_error)?;
            manager.get_data_device(&seat, &handle, ());
            Source::WlrDataControl
        };
        let mut events = Events::default();
        // The first selection is what was on the clipboard before: not a copy.
        queue.roundtrip(&mut events).map_err(wayland_error)?;
        events.selection = None;
        Ok(WaylandWatcher {
            conn,
            queue,
            events,
            config,
            source,
        })
    }

    /// Which protocol it speaks.
    pub(crate) fn source(&self) -> Source {
        self.source.clone()
    }

    /// Waits for copies and hands each to `on_change` until it returns `false` or the
    /// compositor goes away.
    pub(crate) fn run(mut self, mut on_change: impl FnMut(Observed) -> bool) {
        loop {
            if let Err(error) = self.queue.blocking_dispatch(&mut self.events) {
                warn!(%error, "the Wayland compositor went away: no more clipboard events");
                return;
            }
            if self.events.finished {
                warn!("the Wayland compositor withdrew clipboard events");
                return;
            }
            let Some(selection) = self.events.selection.take() else {
                continue;
            };
            let Some(offer) = selection else {
                continue;
            };
            // Offers introduced before this one were never selected (or only as the primary
            // selection): they are done with. Later ones may be about to be.
            let position = self.events.offers.iter().position(|(o, _)| *o == offer);
            let types = match position {
                Some(position) => {
                    let (_, types) = self.events.offers.remove(position);
                    for (stale, _) in self.events.offers.drain(..position) {
                        stale.destroy();
                    }
                    types
                }
                None => Vec::new(),
            };
            let read = self.read(&offer, &types);
            offer.destroy();
            match read {
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

    /// Reads an offer: `None` when it holds no type clips hold.
    fn read(&self, offer: &Offer, types: &[String]) -> Result<Option<Observed>, ClipboardError> {
        let offers = |wanted: &str| types.iter().any(|t| t == wanted);
        if offers(SECRET_HINT) {
            // Treat the hint as secret unless it clearly says otherwise.
            let hint = self.receive(offer, SECRET_HINT, 64).ok();
            if hint
                .as_ref()
                .is_none_or(|(value, _)| value.trim_ascii() == b"secret")
            {
                return Ok(Some(Observed::Secret));
            }
        }
        let (kind, is_text) = match TEXT_TYPES.into_iter().find(|t| offers(t)) {
            Some(kind) => (kind, true),
            None if offers(PNG) => (PNG, false),
            None => return Ok(None),
        };
        let (bytes, total) = self.receive(offer, kind, self.config.max_bytes)?;
        if total > self.config.max_bytes {
            return Ok(Some(Observed::TooLarge { bytes: total }));
        }
        Ok(Some(Observed::Clip(if is_text {
            Clip::Text(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Clip::Png(bytes)
        })))
    }

    /// Asks the owner for the content as `kind` and reads it from a pipe: at most `limit`
    /// bytes are kept, and the count goes on to the end (or a byte past the limit).
    fn receive(
        &self,
        offer: &Offer,
        kind: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, u64), ClipboardError> {
        let (reader, writer) = std::io::pipe().map_err(wayland_error)?;
        offer.receive(kind.to_owned(), writer.as_fd());
        self.conn.flush().map_err(wayland_error)?;
        drop(writer);
        // The owner writes from its own process; a reader thread lets a silent owner time out
        // without holding the watcher.
        let (sender, answer) = mpsc::channel();
        thread::Builder::new()
            .name("ferry-clipboard-read".into())
            .spawn(move || {
                let mut bytes = Vec::new();
                let kept = reader.take(limit.saturating_add(1)).read_to_end(&mut bytes);
                let _ = sender.send(kept.map(|n| (bytes, n as u64)));
            })
            .map_err(wayland_error)?;
        match answer.recv_timeout(ANSWER_TIMEOUT) {
            Ok(Ok((mut bytes, total))) => {
                bytes.truncate(limit as usize);
                Ok((bytes, total))
            }
            Ok(Err(error)) => Err(wayland_error(error)),
            Err(_) => Err(ClipboardError::Timeout(ANSWER_TIMEOUT)),
        }
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Events {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

// Neither the seat's events nor the managers' (they have none) matter here.
wayland_client::delegate_noop!(Events: ignore WlSeat);
wayland_client::delegate_noop!(Events: ignore ExtDataControlManagerV1);
wayland_client::delegate_noop!(Events: ignore ZwlrDataControlManagerV1);

impl Dispatch<ExtDataControlDeviceV1, ()> for Events {
    fn event(
        events: &mut Self,
        _: &ExtDataControlDeviceV1,
        event: ext_data_control_device_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            ext_data_control_device_v1::Event::DataOffer { id } => events.offered(Offer::Ext(id)),
            ext_data_control_device_v1::Event::Selection { id } => {
                events.selection = Some(id.map(Offer::Ext));
            }
            ext_data_control_device_v1::Event::Finished => events.finished = true,
            _ => {}
        }
    }

    event_created_child!(Events, ExtDataControlDeviceV1, [
        ext_data_control_device_v1::EVT_DATA_OFFER_OPCODE => (ExtDataControlOfferV1, ()),
    ]);
}

impl Dispatch<ExtDataControlOfferV1, ()> for Events {
    fn event(
        events: &mut Self,
        offer: &ExtDataControlOfferV1,
        event: ext_data_control_offer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let ext_data_control_offer_v1::Event::Offer { mime_type } = event {
            events.type_offered(&Offer::Ext(offer.clone()), mime_type);
        }
    }
}

impl Dispatch<ZwlrDataControlDeviceV1, ()> for Events {
    fn event(
        events: &mut Self,
        _: &ZwlrDataControlDeviceV1,
        event: zwlr_data_control_device_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwlr_data_control_device_v1::Event::DataOffer { id } => events.offered(Offer::Wlr(id)),
            zwlr_data_control_device_v1::Event::Selection { id } => {
                events.selection = Some(id.map(Offer::Wlr));
            }
            zwlr_data_control_device_v1::Event::Finished => events.finished = true,
            _ => {}
        }
    }

    event_created_child!(Events, ZwlrDataControlDeviceV1, [
        zwlr_data_control_device_v1::EVT_DATA_OFFER_OPCODE => (ZwlrDataControlOfferV1, ()),
    ]);
}

impl Dispatch<ZwlrDataControlOfferV1, ()> for Events {
    fn event(
        events: &mut Self,
        offer: &ZwlrDataControlOfferV1,
        event: zwlr_data_control_offer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwlr_data_control_offer_v1::Event::Offer { mime_type } = event {
            events.type_offered(&Offer::Wlr(offer.clone()), mime_type);
        }
    }
}
