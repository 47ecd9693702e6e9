#!/usr/bin/env bash
# Installs ferry and ferry-relay, with their shell completions and manual pages.
#
#   scripts/install.sh [--prefix DIR]
#
# The programs go to DIR/bin, the completions where bash, zsh and fish look for them under
# DIR/share, the manual pages to DIR/share/man/man1. DIR is ~/.local for a user (its bin is on
# PATH on most desktops) and /usr/local for root. FERRY_BUILD=debug builds without
# optimisations (quick, for trying things out); CARGO_TARGET_DIR, when set, is reused.
set -euo pipefail

prefix=
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z $prefix ]]; then
    if [[ $(id -u) == 0 ]]; then prefix=/usr/local; else prefix=$HOME/.local; fi
fi
# Folders given relative to where the script was started from stay so after the cd below.
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
[[ -n ${CARGO_TARGET_DIR:-} ]] && mkdir -p "$CARGO_TARGET_DIR" && CARGO_TARGET_DIR=$(cd "$CARGO_TARGET_DIR" && pwd)
cd "$(dirname "$0")/.."

flags=(--locked --force --quiet --root "$prefix")
[[ ${FERRY_BUILD:-release} == debug ]] && flags+=(--debug)
[[ -n ${CARGO_TARGET_DIR:-} ]] && flags+=(--target-dir "$CARGO_TARGET_DIR")
cargo install "${flags[@]}" --path clients/cli
cargo install "${flags[@]}" --path relay

bin=$prefix/bin
share=$prefix/share
mkdir -p "$share/bash-completion/completions" "$share/zsh/site-functions" \
    "$share/fish/vendor_completions.d" "$share/man/man1"
"$bin/ferry" completions bash >"$share/bash-completion/completions/ferry"
"$bin/ferry" completions zsh >"$share/zsh/site-functions/_ferry"
"$bin/ferry" completions fish >"$share/fish/vendor_completions.d/ferry.fish"
"$bin/ferry" man --output "$share/man/man1" >/dev/null
"$bin/ferry-relay" --man-page >"$share/man/man1/ferry-relay.1"

echo "Installed ferry and ferry-relay in $bin,"
echo "their completions under $share (bash-completion, zsh, fish) and manual pages in $share/man/man1."
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "$bin is not on PATH: add it (export PATH=\"$bin:\$PATH\" in your shell's profile)." ;;
esac
echo "Next: \`ferry service install\` runs the agent at every login."
