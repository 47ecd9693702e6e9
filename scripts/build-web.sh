#!/usr/bin/env bash
# Builds the browser page into OUT_DIR (default: the target folder's web/), ready for
# `ferry-relay --web OUT_DIR` or any static host: the WebAssembly and its JavaScript bindings
# (wasm-bindgen), the page's own files from clients/web/page, each script, style and module
# renamed after a hash of its content (so they can be cached for a year), and a gzip copy of
# each beside it.
#
# Installs what it needs when missing: the wasm32 target (rustup) and wasm-bindgen-cli of the
# exact version of the wasm-bindgen crate (cargo install, from source, once).
set -euo pipefail
# The folder named here, before the script moves to the repository's root.
out=${1:+$(realpath -m "$1")}
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
out=${out:-$(realpath -m "$target/web")}
wasm_bindgen=0.2.130
# Written into every build: a folder holding it may be replaced by the next build.
marker=.ferry-web-build

if [[ -e $out && ! -e $out/$marker ]] && [[ -n $(ls -A "$out" 2>/dev/null) ]]; then
    echo "build-web: $out is not empty and holds no earlier build of the page: give an empty or new folder" >&2
    exit 1
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
if [[ $(wasm-bindgen --version 2>/dev/null) != "wasm-bindgen $wasm_bindgen" ]]; then
    # Not --locked: a crate its lock file names was yanked since. Built apart from the
    # workspace's target folder, which it would only fill.
    cli_build=$(mktemp -d)
    cargo install --quiet wasm-bindgen-cli --version "$wasm_bindgen" --target-dir "$cli_build"
    rm -rf "$cli_build"
fi

cargo build --quiet --locked --release -p ferry-web --target wasm32-unknown-unknown
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$work" \
    "$target/wasm32-unknown-unknown/release/ferry_web.wasm"
cp clients/web/page/* "$work/"

# Renames $work/NAME.EXT to NAME.HASH.EXT (16 hex digits of its SHA-256, as the relay expects
# of a file it may cache for a year) and rewrites the quoted references to it in the files
# named after it.
hashed() {
    local file=$1 name ext hash new pattern
    shift
    name=${file%.*}
    ext=${file##*.}
    hash=$(sha256sum "$work/$file" | cut -c1-16)
    new="$name.$hash.$ext"
    mv "$work/$file" "$work/$new"
    pattern=${file//./\\.}
    for referrer in "$@"; do
        sed -i "s|\\([\"'/]\\)$pattern\\([\"']\\)|\\1$new\\2|g" "$work/$referrer"
    done
}
# Leaves first: the module, then the bindings that load it, then the page's script; the icon
# and the style before the page that names them.
hashed ferry_web_bg.wasm ferry_web.js
hashed ferry_web.js app.js
hashed icon.svg index.html style.css
hashed style.css index.html
hashed app.js index.html
# Every name that was hashed is gone from every file: a reference left would be a 404.
for name in ferry_web_bg.wasm ferry_web.js icon.svg style.css app.js; do
    if grep -lF "$name" "$work"/* >/dev/null; then
        echo "build-web: $(grep -lF "$name" "$work"/* | xargs -n1 basename) still name $name" >&2
        exit 1
    fi
done
for file in "$work"/*.{wasm,js,css,html,svg}; do
    gzip -9 -n -k "$file"
done
touch "$work/$marker"
# Readable by whoever serves it (mktemp made the folder for this user alone).
chmod 755 "$work"

# The new build replaces the old one whole.
mkdir -p "$(dirname "$out")"
rm -rf "$out.old"
[[ -e $out ]] && mv "$out" "$out.old"
mv "$work" "$out"
rm -rf "$out.old"
trap - EXIT
echo "The page is in $out ($(du -sh "$out" | cut -f1)): serve it with ferry-relay --web $out"
