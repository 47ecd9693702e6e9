//! Certificates for the tests' TLS servers (the relay, brokers): a throwaway CA and a
//! certificate for 127.0.0.1 it signed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` command
/// (installed by scripts/test.sh) in `dir`. Returns (CA, server certificate, server key), PEM.
pub fn certificates(dir: &Path) -> [PathBuf; 3] {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1"])
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .expect("the openssl command is needed (scripts/test.sh installs it)");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "-subj",
        "/CN=ferry test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "-subj",
        "/CN=ferry test server",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-keyout",
        "relay.key",
        "-out",
        "relay.pem",
    ]);
    [path("ca.pem"), path("relay.pem"), path("relay.key")]
}
