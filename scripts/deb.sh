#!/usr/bin/env bash
# Builds the Debian packages of ferry and ferry-relay into target/debian (or the cargo target
# folder's debian/), with cargo-deb (installed with `cargo install --locked cargo-deb` if missing).
#
#   scripts/deb.sh [--profile NAME]
#
# Install them with `sudo dpkg -i target/debian/ferry_*.deb target/debian/ferry-relay_*.deb`:
# ferry brings its systemd user unit (enable it with `ferry service install` once the device is
# set up), completions and manual pages; ferry-relay runs as a service of its own user, with its
# settings in /etc/default/ferry-relay. The profile is release unless named (the tests use
# `quick`: unoptimised, built in a few minutes).
set -euo pipefail

profile=release
while [[ $# -gt 0 ]]; do
    case $1 in
        --profile) profile=${2:?--profile needs a name}; shift 2 ;;
        --profile=*) profile=${1#*=}; shift ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "Installing cargo-deb (cargo install --locked cargo-deb)..."
    cargo install --locked --quiet cargo-deb
fi

cargo build --locked --profile "$profile" -p ferry -p ferry-relay
target=${CARGO_TARGET_DIR:-target}
built=$target/$profile
# What cargo-deb takes from target/release/assets: the completions and manual pages, as the
# programs just built write them (pages compressed, as Debian keeps them).
assets=$built/assets
rm -rf "$assets"
mkdir -p "$assets/completions" "$assets/man/ferry" "$assets/man/relay"
"$built/ferry" completions bash >"$assets/completions/ferry"
"$built/ferry" completions zsh >"$assets/completions/_ferry"
"$built/ferry" completions fish >"$assets/completions/ferry.fish"
"$built/ferry" man --output "$assets/man/ferry" >/dev/null
"$built/ferry-relay" --man-page >"$assets/man/relay/ferry-relay.1"
gzip -9n "$assets"/man/*/*.1

output=$target/debian
for package in ferry ferry-relay; do
    cargo deb --locked --no-build --profile "$profile" -p "$package" --output "$output" --quiet >/dev/null
done
echo "Built the packages in $output:"
ls -1 "$output"/ferry_*.deb "$output"/ferry-relay_*.deb
echo "Install them with: sudo dpkg -i $output/ferry_*.deb $output/ferry-relay_*.deb"
