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
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
out=${1:-$target/web}
wasm_bindgen=0.2.130

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

# Renames $work/NAME.EXT to NAME.HASH.EXT and rewrites the references to it in the files
# named after it; prints the new name.
hashed() {
    local file=$1 name ext hash new
    shift
    name=${file%.*}
    ext=${file##*.}
    hash=$(sha256sum "$work/$file" | cut -c1-16)
    new="$name.$hash.$ext"
    mv "$work/$file" "$work/$new"
    for referrer in "$@"; do
        sed -i "s|\\([\"'/]\\)$file\\([\"']\\)|\\1$new\\2|g" "$work/$referrer"
    done
    echo "$new"
}
# Leaves first: the module, then the bindings that load it, then the page's script.
hashed ferry_web_bg.wasm ferry_web.js >/dev/null
bindings=$(hashed ferry_web.js app.js)
hashed app.js index.html >/dev/null
hashed style.css index.html >/dev/null
hashed icon.svg index.html >/dev/null
grep -q "$bindings" "$work"/app.*.js || { echo "build-web: app.js does not import ferry_web.js" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
cp "$work"/* "$out/"
for file in "$out"/*.{wasm,js,css,html,svg}; do
    gzip -9 -n -k "$file"
done
echo "The page is in $out ($(du -sh "$out" | cut -f1)): serve it with ferry-relay --web $out"
