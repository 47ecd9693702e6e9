#!/usr/bin/env bash
# Runs every test of the Ferry workspace, after installing the system packages the tests need.
#
# As root (CI, containers) it installs missing packages with apt-get; as another user it prints
# the exact command to run and stops. Under CI=true a missing tool is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suite needs: a C compiler for the crates that build C (aws-lc-sys,
# the bundled SQLite later), and openssl to make the relay's test certificates. Later suites add
# the Xvfb clipboard and its helpers.
packages=(gcc libc6-dev openssl)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
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

cargo test --workspace --locked

# README's first command, end to end, in a throwaway folder: create a repository, append twice.
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
cargo run --quiet --locked -p ferry-protocol --example folder_repo -- "$demo" "first" >/dev/null
cargo run --quiet --locked -p ferry-protocol --example folder_repo -- "$demo" "second" \
    | grep -q 'second' || { echo "the folder repository example did not read its data back" >&2; exit 1; }
echo "folder repository example: ok"
