#!/usr/bin/env bash
# The peer benchmark (issue 17; not run by CI): the flow users compare, webhook -> set
# fields -> items_count/items_sum -> ok/echo_id -> respond with the whole object, in n8n
# 2.8.4 (SQLite, default execution saving) and in `flowd serve` (release build, three
# transform steps and a respond), one after the other on this machine, under the same wrk
# load (2 threads, each response checked by check.lua) at 10 and 50 keep-alive connections.
# Prints for both: executions/s, p50/p99, CPU per execution (user + system of the process
# tree, from /proc), bytes on disk per execution (growth of the files' sizes and of the
# blocks the file system allocated to them), peak RSS, and the ratios.
#
# n8n is installed from the npm registry into a cache directory outside the repo (as
# pinned by n8n/package-lock.json; native modules built from source against the system's
# Node headers, so nothing but the registry is downloaded); wrk comes from Debian (apt).
#
# Usage: benches/peer/run.sh
# Environment: DURATION (per run, default 20s), CONNECTIONS (default "10 50"),
# FLOWD_BIN (a flowd binary; default: cargo build --release), FLOWD_PEER_CACHE (default
# ~/.cache/flowd-peer), N8N_PORT (15678), FLOWD_PORT (18080; the admin API gets +1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${FLOWD_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flowd-peer}
duration=${DURATION:-20s}
connections=${CONNECTIONS:-10 50}
n8n_port=${N8N_PORT:-15678}
flowd_port=${FLOWD_PORT:-18080}
hz=$(getconf CLK_TCK)
page_kb=$(($(getconf PAGESIZE) / 1024))
body=$here/body.json

say() { printf '%s\n' "$*" >&2; }
die() { say "peer bench: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    say "installing wrk (Debian package)"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get install -y wrk >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null; }
fi
command -v node >/dev/null || die "node is needed for n8n (>= 20.19, <= 24.x)"

n8n_dir=$cache/n8n-2.8.4
if ! cmp -s "$here/n8n/package-lock.json" "$n8n_dir/package-lock.json" || [ ! -x "$n8n_dir/node_modules/.bin/n8n" ]; then
    say "installing n8n 2.8.4 into $n8n_dir (npm ci; a few minutes the first time)"
    mkdir -p "$n8n_dir"
    cp "$here/n8n/package.json" "$here/n8n/package-lock.json" "$n8n_dir/"
    # Native modules (sqlite3) are compiled here rather than fetched from their authors'
    # release pages; the system's Node headers spare node-gyp its download too.
    nodedir=()
    [ -f /usr/include/node/common.gypi ] && nodedir=(--nodedir=/usr)
    (cd "$n8n_dir" && npm_config_build_from_source=true npm ci --no-audit --no-fund "${nodedir[@]}" >&2)
fi
n8n=$n8n_dir/node_modules/.bin/n8n

if [ -n "${FLOWD_BIN:-}" ]; then
    flowd=$FLOWD_BIN
else
    say "building flowd (cargo build --release --bin flowd)"
    (cd "$repo" && cargo build --release --locked --bin flowd >&2)
    flowd=$repo/target/release/flowd
fi

run=$(mktemp -d "${TMPDIR:-/tmp}/flowd-peer.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT

# --- measuring a process tree ------------------------------------------------------------
# "CPU ticks RSS-KiB" of a process and its descendants: user + system time, with what its
# reaped children used (cutime, cstime), and resident memory now.
tree_stat() {
    # A process may end between the glob and the read: cat then fails, the rest counts.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" -v page_kb="$page_kb" '
        { pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, a, " ")
          parent[pid] = a[2]; cpu[pid] = a[12] + a[13] + a[14] + a[15]; rss[pid] = a[22] }
        END {
            tree[root] = 1
            for (grew = 1; grew;) { grew = 0
                for (p in parent) if (!(p in tree) && (parent[p] in tree)) { tree[p] = 1; grew = 1 } }
            for (p in tree) if (p in cpu) { c += cpu[p]; r += rss[p] }
            printf "%d %d\n", c, r * page_kb }'
}

# Samples the tree's resident memory twice a second while it lives; the peak goes to $2.
sample_rss() {
    local peak=0 kb
    echo 0 >"$2"
    while kill -0 "$1" 2>/dev/null; do
        kb=$(tree_stat "$1" | cut -d' ' -f2)
        if [ "$kb" -gt "$peak" ]; then peak=$kb; echo "$peak" >"$2"; fi
        sleep 0.5
    done
}

# Sum of the sizes of the files given (that exist).
bytes_of() {
    local total=0 f
    for f in "$@"; do [ -f "$f" ] && total=$((total + $(stat -c %s "$f"))); done
    echo "$total"
}

# Sum of the bytes the file system allocated to the files given (as du counts): redb grows
# its file in steps (doubling up to 4 GiB) by extending it, so the size runs ahead of the
# blocks written.
allocated_of() {
    local total=0 f
    for f in "$@"; do [ -f "$f" ] && total=$((total + $(stat -c '%b * %B' "$f"))); done
    echo "$total"
}

# Waits until a POST of the body to $1 is answered 200 with the flow's result (up to $2
# seconds): n8n answers 200 "n8n is starting up. Please wait" before its webhooks are
# registered.
wait_for() {
    local url=$1 deadline=$((SECONDS + $2))
    until curl -s -f -X POST -H 'content-type: application/json' --data-binary "@$body" "$url" 2>/dev/null |
        grep -q '"echo_id"'; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# wrk against $1 with $2 connections for $3; prints its RESULT line (and BAD, if any).
load() {
    BODY_FILE=$body wrk -t2 -c"$2" -d"$3" --timeout 10s -s "$here/check.lua" "$1" | grep -E '^(RESULT|BAD)'
}

field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

declare -A R
# Loads the daemon $2 (pid) at URL $3, then stops it; its database files are $4...
measure() {
    local name=$1 pid=$2 url=$3; shift 3
    local files=("$@") before before_allocated start out c0 c1 n executions
    say "$name: checking the response and warming up"
    curl -sS -X POST -H 'content-type: application/json' --data-binary "@$body" "$url" >"$run/$name.response"
    say "  response: $(cat "$run/$name.response")"
    sample_rss "$pid" "$run/$name.rss" &
    local sampler=$!
    before=$(bytes_of "${files[@]}")
    before_allocated=$(allocated_of "${files[@]}")
    out=$(load "$url" 10 3s)
    [ "$(field bad "$out")" = 0 ] || die "$name: bad responses in the warm-up: $out"
    executions=$(field requests "$out")
    for c in $connections; do
        say "$name: $c connections for $duration"
        c0=$(tree_stat "$pid" | cut -d' ' -f1)
        out=$(load "$url" "$c" "$duration")
        c1=$(tree_stat "$pid" | cut -d' ' -f1)
        [ "$(field bad "$out")" = 0 ] || die "$name: responses failed the check: $out"
        n=$(field requests "$out")
        executions=$((executions + n))
        R[$name,$c,rate]=$(awk -v n="$n" -v s="$(field seconds "$out")" 'BEGIN { printf "%.1f", n / s }')
        R[$name,$c,p50]=$(awk -v u="$(field p50_us "$out")" 'BEGIN { printf "%.2f", u / 1000 }')
        R[$name,$c,p99]=$(awk -v u="$(field p99_us "$out")" 'BEGIN { printf "%.2f", u / 1000 }')
        R[$name,$c,cpu]=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
        R[$name,$c,errors]=$(field socket_errors "$out")
        say "  $out"
    done
    R[$name,hwm]=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
    if declare -F "${name}_stored" >/dev/null; then
        R[$name,stored]=$("${name}_stored")
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    wait "$sampler" || true
    R[$name,executions]=$executions
    R[$name,rss]=$(cat "$run/$name.rss")
    local after
    after=$(bytes_of "${files[@]}")
    R[$name,disk]=$(((after - before) / executions))
    R[$name,allocated]=$((($(allocated_of "${files[@]}") - before_allocated) / executions))
    R[$name,file]=$after
    R[$name,whole]=$((after / executions))
}

say "machine load before: $(uptime)"

# --- n8n ---------------------------------------------------------------------------------
export N8N_USER_FOLDER=$run/n8n N8N_PORT=$n8n_port N8N_LISTEN_ADDRESS=127.0.0.1 \
    N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false \
    N8N_PERSONALIZATION_ENABLED=false N8N_TEMPLATES_ENABLED=false N8N_SECURE_COOKIE=false \
    N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=false DB_TYPE=sqlite NODE_ENV=production
mkdir -p "$N8N_USER_FOLDER"
say "n8n: importing the workflow"
"$n8n" import:workflow --input="$here/n8n-workflow.json" >"$run/n8n-import.log" 2>&1 || { cat "$run/n8n-import.log" >&2; die "n8n import failed"; }
"$n8n" publish:workflow --id=flowdPeerBench01 >>"$run/n8n-import.log" 2>&1 || { cat "$run/n8n-import.log" >&2; die "n8n publish failed"; }
"$n8n" start >"$run/n8n.log" 2>&1 &
n8n_pid=$!
pids+=("$n8n_pid")
wait_for "http://127.0.0.1:$n8n_port/webhook/peer" 180 || { tail -20 "$run/n8n.log" >&2; die "n8n did not answer the webhook"; }
db=$N8N_USER_FOLDER/.n8n/database.sqlite
measure n8n "$n8n_pid" "http://127.0.0.1:$n8n_port/webhook/peer" "$db" "$db-wal" "$db-shm"
# Every execution is saved (default saving): count them where n8n keeps them.
R[n8n,stored]=$(cd "$n8n_dir" && node -e '
    const db = new (require("sqlite3").Database)(process.argv[1]);
    db.get("select count(*) as n from execution_entity", (e, r) => { console.log(e ? "?" : r.n); });' "$db")

# --- flowd -------------------------------------------------------------------------------
# The executions that ended, as the daemon counts them on /metrics (read with the local
# operator token it printed: the config names no tokens), a second after the last load.
flowd_stored() {
    local token
    sleep 1
    token=$(awk '/local operator token/ { getline; print $NF; exit }' "$run/flowd.log")
    curl -sS -H "authorization: Bearer $token" "http://127.0.0.1:$((flowd_port + 1))/metrics" |
        awk '/^flowd_executions_total\{/ { n += $NF } END { print n + 0 }'
}
cp -r "$here/flowd" "$run/flowd"
sed -i "s/127.0.0.1:18080/127.0.0.1:$flowd_port/; s/127.0.0.1:18081/127.0.0.1:$((flowd_port + 1))/" "$run/flowd/flowd.toml"
"$flowd" serve --config "$run/flowd/flowd.toml" >"$run/flowd.log" 2>&1 &
flowd_pid=$!
pids+=("$flowd_pid")
wait_for "http://127.0.0.1:$flowd_port/peer" 60 || { tail -20 "$run/flowd.log" >&2; die "flowd did not answer the webhook"; }
measure flowd "$flowd_pid" "http://127.0.0.1:$flowd_port/peer" "$run/flowd/data/flowd.redb" "$run/flowd/data/flowd.wal"

# --- report ------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
echo "peer benchmark: webhook -> set fields -> items_count/items_sum -> ok/echo_id -> respond, $(wc -c <"$body")-byte JSON body"
echo "wrk -t2, keep-alive, $duration per run, every response checked; n8n 2.8.4 (SQLite, default saving) then flowd serve ($("$flowd" --version 2>/dev/null || echo release))"
printf '%-34s %14s %14s   %s\n' "" "n8n" "flowd" "ratio"
for c in $connections; do
    printf '%-34s %14s %14s   %s\n' "$c connections: executions/s" "${R[n8n,$c,rate]}" "${R[flowd,$c,rate]}" "flowd $(ratio "${R[flowd,$c,rate]}" "${R[n8n,$c,rate]}") n8n's"
    printf '%-34s %14s %14s   %s\n' "$c connections: p50 ms" "${R[n8n,$c,p50]}" "${R[flowd,$c,p50]}" "n8n $(ratio "${R[n8n,$c,p50]}" "${R[flowd,$c,p50]}") flowd's"
    printf '%-34s %14s %14s   %s\n' "$c connections: p99 ms" "${R[n8n,$c,p99]}" "${R[flowd,$c,p99]}" "n8n $(ratio "${R[n8n,$c,p99]}" "${R[flowd,$c,p99]}") flowd's"
    printf '%-34s %14s %14s   %s\n' "$c connections: CPU us per execution" "${R[n8n,$c,cpu]}" "${R[flowd,$c,cpu]}" "n8n $(ratio "${R[n8n,$c,cpu]}" "${R[flowd,$c,cpu]}") flowd's"
done
printf '%-34s %14s %14s   %s\n' "disk bytes per execution (growth)" "${R[n8n,disk]}" "${R[flowd,disk]}" "n8n $(ratio "${R[n8n,disk]}" "${R[flowd,disk]}") flowd's"
printf '%-34s %14s %14s   %s\n' "disk bytes per execution (blocks)" "${R[n8n,allocated]}" "${R[flowd,allocated]}" "n8n $(ratio "${R[n8n,allocated]}" "${R[flowd,allocated]}") flowd's"
printf '%-34s %14s %14s   %s\n' "disk bytes per execution (file)" "${R[n8n,whole]}" "${R[flowd,whole]}" "n8n $(ratio "${R[n8n,whole]}" "${R[flowd,whole]}") flowd's"
printf '%-34s %14s %14s   %s\n' "peak RSS MB (process tree, sampled)" "$(mb "${R[n8n,rss]}")" "$(mb "${R[flowd,rss]}")" "n8n $(ratio "${R[n8n,rss]}" "${R[flowd,rss]}") flowd's"
printf '%-34s %14s %14s\n' "peak RSS MB (main process VmHWM)" "$(mb "${R[n8n,hwm]}")" "$(mb "${R[flowd,hwm]}")"
printf '%-34s %14s %14s\n' "executions by wrk / stored in all" "${R[n8n,executions]} / ${R[n8n,stored]}" "${R[flowd,executions]} / ${R[flowd,stored]}"
printf '%-34s %14s %14s\n' "socket errors (timeouts included)" "$(for c in $connections; do printf '%s ' "${R[n8n,$c,errors]}"; done)" "$(for c in $connections; do printf '%s ' "${R[flowd,$c,errors]}"; done)"
echo "database files at the end: n8n $(mb "$(("${R[n8n,file]}" / 1024))") MB, flowd $(mb "$(("${R[flowd,file]}" / 1024))") MB"
echo "machine load after: $(uptime)"
