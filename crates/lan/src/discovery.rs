//! mDNS: announce this device under a name only its group recognises, and dial the devices
//! of its group that announce themselves.
//!
//! The instance and host name are [`LanKey::instance_name`] of the current period with a
//! fresh nonce: re-registered under a new name when the period turns, never the machine's
//! name, user or device id. Names of the period before, the current one and the one after are
//! recognised (clocks differ).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::LanKey;
use ferry_protocol::lan::SERVICE_TYPE;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::supervisor::Internal;
use crate::{DiscoveryConfig, LanError};

/// How long the device with the larger name waits before it dials one it found: long enough
/// for the other to dial first when both saw each other's announcement, short enough not to
/// matter when the other's browse has not answered yet (a second connection, if both dial,
/// is closed by the supervisor's rule).
const DIAL_BACK: Duration = Duration::from_millis(200);

/// The running discovery: stops when dropped.
pub(crate) struct Discovery {
    daemon: ServiceDaemon,
    task: JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.daemon.shutdown();
    }
}

/// Starts announcing `listen` and browsing for the group of `key`; found addresses go to the
/// supervisor.
pub(crate) fn start(
    config: &DiscoveryConfig,
    key: LanKey,
    listen: SocketAddr,
    internal: mpsc::UnboundedSender<Internal>,
) -> Result<Discovery, LanError> {
    let failed = |error: mdns_sd::Error| LanError::Discovery(error.to_string());
    let daemon = daemon(config.mdns_port, config.loopback_only)?;
    let browse = daemon.browse(SERVICE_TYPE).map_err(failed)?;
    let period_secs = config.period.as_secs().max(1);
    let announcer = Announcer {
        daemon: daemon.clone(),
        key,
        listen,
        period_secs,
    };
    let mut current = announcer.register()?;
    let task = tokio::spawn(async move {
        loop {
            let turn = announcer.until_next_period();
            tokio::select! {
                event = browse.recv_async() => match event {
                    Ok(ServiceEvent::ServiceResolved(service)) => {
                        let instance = service
                            .fullname
                            .strip_suffix(SERVICE_TYPE)
                            .unwrap_or_default()
                            .trim_end_matches('.');
                        if instance == current || !announcer.recognises(instance) {
                            continue;
                        }
                        debug!(instance, "LAN: found a device of this group");
                        // Both devices find each other: the one with the smaller name dials,
                        // the other only if no connection came from there meanwhile.
                        let wait = if current.as_str() < instance {
                            Duration::ZERO
                        } else {
                            DIAL_BACK
                        };
                        for ip in service.get_addresses_v4() {
                            let addr = SocketAddr::new(ip.into(), service.port);
                            let _ = internal.send(Internal::Dial { addr, wait });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                () = tokio::time::sleep(turn) => {
                    let _ = announcer.daemon.unregister(&fullname(&current));
                    match announcer.register() {
                        Ok(name) => current = name,
                        Err(error) => warn!(%error, "LAN: announcing under the new name failed"),
                    }
                }
            }
        }
    });
    Ok(Discovery { daemon, task })
}

/// An mDNS daemon on `port`, on every interface or on the loopback one only.
pub(crate) fn daemon(port: u16, loopback_only: bool) -> Result<ServiceDaemon, LanError> {
    let failed = |error: mdns_sd::Error| LanError::Discovery(error.to_string());
    let daemon = ServiceDaemon::new_with_port(port).map_err(failed)?;
    if loopback_only {
        daemon.disable_interface(IfKind::All).map_err(failed)?;
        daemon
            .enable_interface(IfKind::LoopbackV4)
            .map_err(failed)?;
    }
    Ok(daemon)
}

struct Announcer {
    daemon: ServiceDaemon,
    key: LanKey,
    /// Where this device listens: an unspecified address announces every address of the
    /// enabled interfaces (and follows them as they change).
    listen: SocketAddr,
    period_secs: u64,
}

impl Announcer {
    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn period(&self) -> u64 {
        Self::now() / self.period_secs
    }

    fn until_next_period(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let next = (now.as_secs() / self.period_secs + 1) * self.period_secs;
        Duration::from_secs(next).saturating_sub(now)
    }

    fn recognises(&self, instance: &str) -> bool {
        self.key.recognises(instance, self.period())
    }

    /// Announces this device under a new name of the current period; returns the name.
    fn register(&self) -> Result<String, LanError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| LanError::Discovery(e.to_string()))?;
        let instance = self.key.instance_name(self.period(), nonce);
        let host = format!("{instance}.local.");
        let no_properties = None::<std::collections::HashMap<String, String>>;
        let ip = self.listen.ip();
        let info = if ip.is_unspecified() {
            ServiceInfo::new(
                SERVICE_TYPE,
                &instance,
                &host,
                (),
                self.listen.port(),
                no_properties,
            )
            .map(ServiceInfo::enable_addr_auto)
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &instance,
                &host,
                ip,
                self.listen.port(),
                no_properties,
            )
        }
        .map_err(|e| LanError::Discovery(e.to_string()))?;
        let mut info = info;
        // Probing (RFC 6762 §8.1: three queries 250 ms apart) guards a name another host may
        // hold; 64 random bits in every name make that a non-event, and skipping it announces
        // this device about 800 ms sooner.
        info.set_requires_probe(false);
        self.daemon
            .register(info)
            .map_err(|e| LanError::Discovery(e.to_string()))?;
        Ok(instance)
    }
}

fn fullname(instance: &str) -> String {
    format!("{instance}.{SERVICE_TYPE}")
}
