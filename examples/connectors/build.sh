#!/usr/bin/env bash
# Builds the JavaScript and Python example connectors from their sources, each in both
# worlds, with the toolchains pinned in js/package-lock.json and python/requirements.txt
# (installed from the npm registry and PyPI). The Rust ones are built by cargo
# (tests/fixtures/build.rs). Usage: examples/connectors/build.sh [OUT_DIR]
# (default target/connectors, where tests/connectors.rs looks for them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/connectors}
mkdir -p "$out"
out=$(cd "$out" && pwd)

(cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error)
[ -x "$out/venv/bin/python" ] || python3 -m venv "$out/venv"
"$out/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"

bin=$here/js/node_modules/.bin
# componentize-js reads the WIT inside a sandbox that sees only the working directory.
cd "$repo"
for world in action trigger; do
    # StarlingMonkey imports wasi:http for its fetch() unless told not to; flowd grants
    # outbound HTTP only to connectors the operator allows.
    "$bin/componentize-js" "examples/connectors/js/$world.js" --wit wit -n "$world-connector" \
        -d http fetch-event -o "$out/js-$world.wasm"
    # --sync: without it the component uses the component-model async ABI.
    "$bin/componentize-qjs" --sync --wit wit -n "$world-connector" \
        --js "examples/connectors/js/$world.js" -o "$out/qjs-$world.wasm" >/dev/null
    "$out/venv/bin/componentize-py" -d wit -w "$world-connector" componentize \
        -p "examples/connectors/python/$world" app -o "$out/python-$world.wasm" >/dev/null
done
# Two builds with the tools' defaults, which flowd refuses with a hint naming the fix
# (tests/connectors.rs checks the hints).
"$bin/componentize-qjs" --wit wit -n action-connector --js examples/connectors/js/action.js \
    -o "$out/qjs-async-action.wasm" >/dev/null
"$bin/componentize-js" examples/connectors/js/action.js --wit wit -n action-connector \
    -o "$out/js-default-action.wasm"
ls -l "$out"/*.wasm
