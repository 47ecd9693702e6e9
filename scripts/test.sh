#!/usr/bin/env bash
# Runs every test of the Ferry workspace, after installing the system packages the tests need.
#
# As root (CI, containers) it installs missing packages with apt-get; as another user it prints
# the exact command to run and stops. Under CI=true a missing tool is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suite needs: a C compiler for the crates that build C (aws-lc-sys,
# the bundled SQLite), openssl to make the relay's test certificates, and an X server without a
# screen plus xclip for the clipboard tests (two Xvfb displays are two desktops), the same on
# Wayland with sway's headless backend and wl-clipboard, a D-Bus session with gnome-keyring's
# Secret Service for the keychain tests, nginx with its WebDAV modules as a second real WebDAV
# server, tmux as the terminal a person types secrets into, and iproute2 and socat for the
# nearby-device tests, which run agents in network namespaces on a LAN of their own (and
# forward the storage into them when it "comes back"), the two brokers relay instances
# share publishes through (Redis and NATS), dunst, a notification daemon that prints what the
# agent tells the desktop, and weston, a Wayland compositor without data-control (as GNOME);
# for the Windows build, the MinGW-w64 cross compiler and Wine to run its tests; adduser (which
# the relay's package needs) and systemd's unit checker, for the package test; Chromium and its
# WebDriver, in which the browser page's WebAssembly is tested, and Node.js, which drives it
# through Playwright for the page's end-to-end tests.
packages=(gcc libc6-dev openssl xvfb xclip sway wl-clipboard dbus gnome-keyring
    nginx-light libnginx-mod-http-dav-ext tmux iproute2 socat redis-server nats-server dunst weston
    gcc-mingw-w64-x86-64 wine64 curl adduser systemd chromium chromium-driver nodejs)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
# npm comes with some builds of Node.js, and is a package of its own in Debian's.
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
        echo "The tests need these Debian packages: ${missing[*]}" >&2
        echo "Install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# The browser page, built as README says (which installs the wasm32 target and wasm-bindgen-cli
# when missing), for the tests that open it in Chromium (clients/cli/tests/browser.rs), with
# Playwright to drive it (playwright-core only: it never downloads a browser).
export FERRY_TEST_WEB
FERRY_TEST_WEB=$(realpath -m "${CARGO_TARGET_DIR:-target}/web-test")
rm -rf "$FERRY_TEST_WEB"
scripts/build-web.sh "$FERRY_TEST_WEB"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' || {
    echo "The browser tests need Node.js 18 or later (this is $(node --version))." >&2
    exit 1
}
npm ci --prefix clients/web/e2e --no-audit --no-fund

cargo test --workspace --locked

# The browser page's WebAssembly, inside headless Chromium (clients/web/webdriver.json holds its
# flags): the protocol vectors, the relay's wire and the page's side of pairing. The runner
# comes with wasm-bindgen-cli.
# chromedriver leaves Chromium's profile folders behind: in a temporary folder of their own.
browser_tmp=$(mktemp -d)
TMPDIR=$browser_tmp CHROMEDRIVER=/usr/bin/chromedriver \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --locked -p ferry-web --target wasm32-unknown-unknown
rm -rf "$browser_tmp"
cargo clippy --locked -p ferry-web --target wasm32-unknown-unknown --all-targets -- -D warnings
# The relay library alone, as a program embedding it builds it: without the binary's
# dependencies and the brokers, then with each broker.
for features in "" "redis" "nats"; do
    cargo clippy --locked -p ferry-relay --lib --no-default-features --features "$features" -- -D warnings
done

# Windows and macOS. The code for both is checked here on every run: Windows fully (clippy on
# every target, then the tests that need no desktop of Linux run under Wine), macOS for the
# crates without C code to compile (aws-lc, SQLite and the relay's TLS need Apple's compilers).
rustup target add x86_64-pc-windows-gnu x86_64-apple-darwin
cargo clippy --locked --workspace --all-targets --target x86_64-pc-windows-gnu -- -D warnings
cargo clippy --locked --target x86_64-apple-darwin \
    -p ferry-protocol -p ferry-core -p ferry-clipboard -p ferry-secrets -p ferry-lan -- -D warnings
# Not run under Wine, and why: the Redis and NATS brokers, nginx, openssl (which makes the test
# certificates) and mkfifo are Linux programs a Windows test cannot start; and the in-process
# WebDAV test server (dav-server on a local folder) answers 500 to concurrent writes into new
# collections under Wine, so the WebDAV conformance, crash and CLI cases stay with Linux. The CLI
# tests run here are its unit tests, those on a folder, S3 or the relay without a Linux desktop
# (cli.rs), and the agent on Windows' own clipboard (windows.rs); the rest start Xvfb, sway,
# tmux, dunst or network namespaces.
windows_skips=(--skip nats --skip redis --skip nginx --skip webdav_create_root
    --skip webdav_a_root_with_a_space
    --skip wss_works_with_the_relays_own_ca --skip a_huge_object_or_a_fifo
    --skip crash_safety_under_sigkill::webdav
    --skip webdav_backend --skip every_backend::webdav)
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$PWD/scripts/wine/run"
scripts/wine/run --start-server
trap 'scripts/wine/run --stop-server' EXIT
CARGO_INCREMENTAL=0 cargo test --locked --target x86_64-pc-windows-gnu \
    -p ferry-protocol -p ferry-core -p ferry-store -p ferry-sync -p ferry-relay \
    -p ferry-relay-client -p ferry-secrets -p ferry-lan -p ferry-clipboard -- "${windows_skips[@]}"
CARGO_INCREMENTAL=0 cargo test --locked --target x86_64-pc-windows-gnu -p ferry \
    --bin ferry --test cli --test windows -- "${windows_skips[@]}"
# Windows' Credential Manager, as Wine implements its API.
CARGO_INCREMENTAL=0 cargo test --locked --target x86_64-pc-windows-gnu -p ferry-secrets \
    --test keychain -- --ignored keychain
# ferry-relay.exe serves and stops on Ctrl-C (Wine turns SIGINT into the console's Ctrl-C).
CARGO_INCREMENTAL=0 cargo build --locked --target x86_64-pc-windows-gnu -p ferry-relay
relay_exe="${CARGO_TARGET_DIR:-target}/x86_64-pc-windows-gnu/debug/ferry-relay.exe"
relay_log=$(mktemp)
win_port=$((20000 + RANDOM % 20000))
scripts/wine/run "$relay_exe" --listen "127.0.0.1:$win_port" >"$relay_log" 2>&1 &
win_relay=$!
for _ in $(seq 120); do
    [[ $(curl -s "http://127.0.0.1:$win_port/healthz" 2>/dev/null) == ok ]] && break
    kill -0 "$win_relay" 2>/dev/null || { cat "$relay_log" >&2; echo "ferry-relay.exe stopped early" >&2; exit 1; }
    sleep 0.5
done
[[ $(curl -s "http://127.0.0.1:$win_port/healthz") == ok ]] || { cat "$relay_log" >&2; exit 1; }
kill -INT "$win_relay"
wait "$win_relay" || true
grep -q "shutting down" "$relay_log" || { cat "$relay_log" >&2; echo "ferry-relay.exe did not stop on Ctrl-C" >&2; exit 1; }
rm -f "$relay_log"
echo "ferry-relay.exe under Wine: serves /healthz, stops on Ctrl-C: ok"
scripts/wine/run --stop-server
trap - EXIT

# The OS keychain, for real: gnome-keyring's Secret Service on a private D-Bus session, unlocked
# with a throwaway password.
dbus-run-session -- sh -c 'echo -n ci | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
    cargo test --locked -p ferry-secrets -p ferry --test keychain --test admin -- --ignored keychain'

# README's first command, end to end, in a throwaway home: the first run sets the device up on
# the embedded default (a folder repository and a local relay), then the agent takes commands.
home=$(mktemp -d)
log="$home/run.log"
relay_port=$((20000 + RANDOM % 20000))
FERRY_HOME="$home" FERRY_SECRET_STORE=file FERRY_BUILD=debug FERRY_LOCAL_RELAY="127.0.0.1:$relay_port" \
    scripts/run.sh >"$log" 2>&1 &
run_pid=$!
cleanup() {
    kill -TERM "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    rm -rf "$home"
}
trap cleanup EXIT
ferry="${CARGO_TARGET_DIR:-target}/debug/ferry"
for _ in $(seq 600); do
    grep -q "agent running" "$log" 2>/dev/null && break
    kill -0 "$run_pid" 2>/dev/null || { cat "$log" >&2; echo "scripts/run.sh stopped early" >&2; exit 1; }
    sleep 0.5
done
# With its output in a log, the first run says how to see the recovery code, and never prints it.
grep -q "ferry key show --yes" "$log" || { cat "$log" >&2; echo "the first run did not say how to see the recovery code" >&2; exit 1; }
code=$(FERRY_HOME="$home" FERRY_SECRET_STORE=file "$ferry" key show --yes)
if grep -qF "$code" "$log"; then echo "the first run printed the recovery code into its log" >&2; exit 1; fi
FERRY_HOME="$home" "$ferry" copy "through the agent" >/dev/null
[[ $(FERRY_HOME="$home" "$ferry" paste) == "through the agent" ]] \
    || { cat "$log" >&2; echo "the agent did not keep the clip" >&2; exit 1; }
kill -TERM "$run_pid"
wait "$run_pid" || { cat "$log" >&2; echo "the agent did not stop cleanly" >&2; exit 1; }
grep -q "stopping: uploading what is pending" "$log"
echo "scripts/run.sh (first run on the embedded default): ok"

# README's install, into a throwaway prefix (a debug build in this run's target folder): both
# programs run from there, the completions and manual pages are in place, and the service unit
# that the build folder's ferry writes starts the installed one. PATH holds nothing else, so no
# systemctl is reached and nothing on this machine is enabled.
prefix=$(mktemp -d)
trap 'cleanup; rm -rf "$prefix"' EXIT
FERRY_BUILD=debug scripts/install.sh --prefix "$prefix" >"$prefix/said.txt"
"$prefix/bin/ferry" --version >/dev/null
"$prefix/bin/ferry-relay" --version >/dev/null
for file in share/bash-completion/completions/ferry share/zsh/site-functions/_ferry \
    share/fish/vendor_completions.d/ferry.fish share/man/man1/ferry.1 share/man/man1/ferry-relay.1; do
    [[ -s $prefix/$file ]] || { echo "scripts/install.sh did not write $file" >&2; exit 1; }
done
grep -q "is not on PATH" "$prefix/said.txt" || { cat "$prefix/said.txt" >&2; exit 1; }
XDG_CONFIG_HOME="$prefix/config" PATH="$prefix/bin" \
    "$ferry" --home "$prefix/home" service install 2>"$prefix/service.txt" || true
grep -qF "ExecStart=$prefix/bin/ferry --home" "$prefix/config/systemd/user/ferry.service" \
    || { cat "$prefix/service.txt" >&2; echo "the service does not start the installed ferry" >&2; exit 1; }
rm -rf "$prefix"
echo "scripts/install.sh (programs, completions, manual pages; the service starts them): ok"

# The Debian packages (scripts/deb.sh; the quick profile builds in minutes), installed with
# dpkg -i: ferry runs from PATH, with its completions, manual pages and user unit; ferry-relay's
# system unit is valid, its user exists, and the unit starts the relay as that user with its
# settings file. Without systemd as the first process (a container) the unit is started as
# systemd would start it: its User, EnvironmentFile and ExecStart, read from the installed unit,
# on a port of this test's (as a drop-in would set it). Both packages are purged after.
if [[ $(id -u) != 0 ]]; then
    [[ ${CI:-} == true ]] && { echo "the package test needs root" >&2; exit 1; }
    echo "scripts/deb.sh: not tested (dpkg -i needs root)"
    exit 0
fi
scripts/deb.sh --profile quick >/dev/null
debs=${CARGO_TARGET_DIR:-target}/debian
relay_log=$(mktemp)
relay_pid=
purge() {
    [[ -n $relay_pid ]] && { kill -TERM "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null; }
    dpkg --purge ferry ferry-relay >/dev/null 2>&1 || true
    rm -f "$relay_log"
}
trap purge EXIT
dpkg -i "$debs"/ferry_*.deb "$debs"/ferry-relay_*.deb >/dev/null 2>"$relay_log" \
    || { cat "$relay_log" >&2; echo "dpkg -i failed" >&2; exit 1; }
[[ $(command -v ferry) == /usr/bin/ferry ]] || { echo "ferry is not on PATH after dpkg -i" >&2; exit 1; }
ferry --version >/dev/null
ferry-relay --version >/dev/null
for file in /usr/share/bash-completion/completions/ferry /usr/share/zsh/vendor-completions/_ferry \
    /usr/share/fish/vendor_completions.d/ferry.fish /usr/lib/systemd/user/ferry.service \
    /usr/lib/systemd/system/ferry-relay.service /etc/default/ferry-relay; do
    [[ -s $file ]] || { echo "the packages did not install $file" >&2; exit 1; }
done
# Manual pages are checked in the packages: some images tell dpkg not to unpack them.
contents=$(dpkg-deb -c "$debs"/ferry_*.deb; dpkg-deb -c "$debs"/ferry-relay_*.deb)
for page in ferry.1.gz ferry-copy.1.gz ferry-relay.1.gz; do
    grep -q "usr/share/man/man1/$page" <<<"$contents" || { echo "the packages lack $page" >&2; exit 1; }
done
systemd-analyze verify --man=no /usr/lib/systemd/system/ferry-relay.service \
    /usr/lib/systemd/user/ferry.service
unit=/usr/lib/systemd/system/ferry-relay.service
user=$(sed -n 's/^User=//p' "$unit")
settings=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
getent passwd "$user" >/dev/null || { echo "the package did not create the $user user" >&2; exit 1; }
port=$((20000 + RANDOM % 20000))
(
    set -a
    # shellcheck source=/dev/null
    . "$settings"
    FERRY_RELAY_LISTEN=127.0.0.1:$port
    # shellcheck disable=SC2086
    exec setpriv --reuid="$user" --regid="$user" --init-groups -- $exec_start
) >"$relay_log" 2>&1 &
relay_pid=$!
for _ in $(seq 100); do
    [[ $(curl -s "http://127.0.0.1:$port/healthz" 2>/dev/null) == ok ]] && break
    sleep 0.1
done
[[ $(curl -s "http://127.0.0.1:$port/healthz") == ok ]] \
    || { cat "$relay_log" >&2; echo "the relay's unit did not start it" >&2; exit 1; }
[[ $(stat -c %U "/proc/$relay_pid") == "$user" ]] \
    || { echo "the relay runs as $(stat -c %U "/proc/$relay_pid"), not $user" >&2; exit 1; }
echo "scripts/deb.sh (packages install; ferry runs from PATH; the relay's unit starts it as $user): ok"
