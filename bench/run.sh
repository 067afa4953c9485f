#!/bin/sh
# bench/run.sh: wsring beside HAProxy and NGINX on the same backends and the
# same load (bench/README.md). `make bench` builds the tools and runs this;
# by hand: make all build/bench/echo_backend build/bench/loadgen && sh bench/run.sh
#
# Environment (all optional):
#   BUILD=build          where the bench tools were built
#   BENCH_SECONDS=5      length of each timed measurement
#   BENCH_REPS=3         repetitions (proxies interleaved: A B C A B C ...)
#   BENCH_MODES="idle handshake small bulk http wss_handshake wss_small"
#                        wss_*: the same loads over TLS (loadgen --tls) on a second listener of
#                        each proxy, all with the same EC P-256 certificate made here
#   BENCH_PROXIES="wsring haproxy nginx"
#   BENCH_THREADS="1 2"  worker threads/processes per proxy
#   BENCH_PIN=0          1: 1-thread runs put the proxy on CPU 1, load generator and backends
#                        on CPU 0 (off by default: see bench/README.md)
#   BENCH_LOAD_SCHED=auto  auto: in 1-thread rows the load generator and the backends run
#                        SCHED_BATCH, so their wake-ups do not preempt the proxy measured; in
#                        rows with more threads they run under the default policy (the proxy
#                        fills the cores: batch would starve the load side). batch / other:
#                        that policy in every row (see bench/README.md)
#   BENCH_PORT_BASE=29100  backends +1..+3, proxy +80 (TLS +81), wsring admin +90
#   BENCH_RESULTS=bench/RESULTS.md   where the report is written ("-" for stdout only)
#   BENCH_QUIET_PCT=30   before each timed measurement wait until other jobs use at most this
#   BENCH_QUIET_WAIT=20  % of one core (sampled over 0.5 s), for at most QUIET_WAIT seconds
#   BENCH_QUIET_BUDGET=180  each and QUIET_BUDGET seconds in all (the machine may be shared)
#   BENCH_KEEP=1         keep the work directory (configs, logs, raw rows)
# Everything listens on and connects to 127.0.0.1 only.
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bench
WSRING=$BUILD/wsring
SECS=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
MODES=${BENCH_MODES:-idle handshake small bulk http wss_handshake wss_small}
PROXIES=${BENCH_PROXIES:-wsring haproxy nginx}
THREADS=${BENCH_THREADS:-1 2}
PIN=${BENCH_PIN:-0}
LOAD_SCHED=${BENCH_LOAD_SCHED:-auto}
case $LOAD_SCHED in auto | batch | other) ;; *)
    echo "bench: BENCH_LOAD_SCHED must be auto, batch or other, not '$LOAD_SCHED'" >&2
    exit 2
    ;;
esac
BASE=${BENCH_PORT_BASE:-29100}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}
PPORT=$((BASE + 80))
TPORT=$((BASE + 81))
APORT=$((BASE + 90))
BPORTS="$((BASE + 1)) $((BASE + 2)) $((BASE + 3))"
BNAMES="ws-a ws-b ws-c"
IDLE_CONNS=9900
QUIET_PCT=${BENCH_QUIET_PCT:-30}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-180}
QUIET_SPENT=0
NOISY=0
USERS=10000
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
WORK=$(mktemp -d /tmp/wsring-bench.XXXXXX)
RAW=$WORK/raw.tsv
BACKEND_PIDS=""
PROXY_PID=""
LOAD_PID=""
T_START=$(date +%s)

log() { printf 'bench: %s\n' "$*" >&2; }

# Stops one process we started (TERM, then KILL after 3 s) and reaps it.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    stop_pid "$LOAD_PID"
    stop_pid "$PROXY_PID"
    for p in $BACKEND_PIDS; do stop_pid "$p"; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools and peers ------------------------------------------------------

for f in "$BIN/echo_backend" "$BIN/loadgen" "$WSRING"; do
    if [ ! -x "$f" ]; then
        log "missing $f: run 'make all $BUILD/bench/echo_backend $BUILD/bench/loadgen' (or make bench)"
        exit 1
    fi
done

HAPROXY=$(command -v haproxy || ls /usr/sbin/haproxy 2>/dev/null)
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null)
need=""
case " $PROXIES " in *" haproxy "*) [ -n "$HAPROXY" ] || need="$need haproxy" ;; esac
case " $PROXIES " in *" nginx "*) [ -n "$NGINX" ] || need="$need nginx" ;; esac
if [ -n "$need" ]; then
    log "installing$need with apt-get"
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot install$need; running wsring and direct only"
    elif ! apt-get update -q >"$WORK/apt.log" 2>&1; then
        log "apt-get update failed (see below); running wsring and direct only"
        tail -5 "$WORK/apt.log" >&2
    elif ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >>"$WORK/apt.log" 2>&1; then
        log "apt-get install$need failed (see below); running what is installed"
        tail -5 "$WORK/apt.log" >&2
    fi
    HAPROXY=$(command -v haproxy || ls /usr/sbin/haproxy 2>/dev/null)
    NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null)
fi
RUN_PROXIES=""
for p in $PROXIES; do
    case $p in
    haproxy) [ -n "$HAPROXY" ] && RUN_PROXIES="$RUN_PROXIES haproxy" ;;
    nginx) [ -n "$NGINX" ] && RUN_PROXIES="$RUN_PROXIES nginx" ;;
    *) RUN_PROXIES="$RUN_PROXIES $p" ;;
    esac
done

for port in $BPORTS $PPORT $TPORT $APORT; do
    if ss -Htln "sport = :$port" | grep -q .; then
        log "port $port is in use; set BENCH_PORT_BASE to another base"
        exit 1
    fi
done

# One certificate for every proxy's TLS listener (HAProxy wants chain and key in one file).
make_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$WORK/tls.key" -out "$WORK/tls.crt" >"$WORK/openssl.log" 2>&1 || return 1
    cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"
}
case " $MODES " in
*" wss_"*)
    if ! make_certificate; then
        log "openssl could not make the TLS certificate; dropping the wss modes"
        MODES=$(echo $MODES | tr ' ' '\n' | grep -v '^wss_' | tr '\n' ' ')
    fi
    ;;
esac

# ---- CPU placement ----------------------------------------------------------

# load_cpus / proxy_cpus THREADS: where the load side / the proxy run (empty = anywhere).
load_cpus() { [ "$PIN" = 1 ] && [ "$1" = 1 ] && [ "$NCPU" -ge 2 ] && echo 0; }
proxy_cpus() { [ "$PIN" = 1 ] && [ "$1" = 1 ] && [ "$NCPU" -ge 2 ] && echo 1; }
all_cpus() { echo "0-$((NCPU - 1))"; }

# pin_prefix LIST: sets PFX to the taskset prefix pinning a command to LIST (none if empty).
# taskset execs the command, so $! after "${PFX[@]}" cmd & is the command's own pid.
pin_prefix() {
    PFX=()
    if [ -n "$1" ]; then PFX=(taskset -c "$1"); fi
}

# load_batch THREADS: true when the load side of rows with THREADS proxy threads runs SCHED_BATCH.
load_batch() { [ "$LOAD_SCHED" = batch ] || { [ "$LOAD_SCHED" = auto ] && [ "$1" = 1 ]; }; }

# load_prefix THREADS LIST: pin_prefix LIST, plus SCHED_BATCH when load_batch (chrt execs too).
load_prefix() {
    pin_prefix "$2"
    if load_batch "$1"; then PFX+=(chrt -b 0); fi
}

# sched_backends THREADS: the backends' policy for rows with THREADS proxy threads.
sched_backends() {
    local p
    for p in $BACKEND_PIDS; do
        if load_batch "$1"; then chrt -a -b -p 0 "$p"; else chrt -a -o -p 0 "$p"; fi >/dev/null
    done
}

place_backends() {
    local cpus=${1:-$(all_cpus)} p
    for p in $BACKEND_PIDS; do taskset -a -p -c "$cpus" "$p" >/dev/null; done
}

# ---- process accounting ---------------------------------------------------

# The proxy's processes: the one we started and its children (NGINX workers).
proxy_pids() { echo "$PROXY_PID" $(pgrep -P "$PROXY_PID" 2>/dev/null); }

# CPU ticks (utime + stime) summed over the proxy's processes.
proxy_ticks() {
    local p t=0 v
    for p in $(proxy_pids); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# CPU ticks of the three backends.
backend_ticks() {
    local p t=0 v
    for p in $BACKEND_PIDS; do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# Busy CPU ticks of the whole machine (user nice system irq softirq steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# Waits (within the limits above) until the machine is quiet: between measurements our own
# processes sleep, so what is busy now belongs to someone else. Counts NOISY starts.
wait_quiet() {
    local waited=0 m0 m1
    while :; do
        m0=$(machine_ticks)
        sleep 0.5
        m1=$(machine_ticks)
        [ $(((m1 - m0) * 200 / HZ)) -le "$QUIET_PCT" ] && return 0
        waited=$((waited + 1))
        QUIET_SPENT=$((QUIET_SPENT + 1))
        if [ $((waited / 2)) -ge "$QUIET_WAIT" ] || [ $((QUIET_SPENT / 2)) -ge "$QUIET_BUDGET" ]; then
            NOISY=$((NOISY + 1))
            return 1
        fi
    done
}

# VmRSS in kB summed over the proxy's processes.
proxy_rss_kb() {
    local p t=0 v
    for p in $(proxy_pids); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# ---- backends, proxies ------------------------------------------------------

start_backends() {
    local i=1 port name
    pin_prefix ""
    for port in $BPORTS; do
        name=$(echo $BNAMES | cut -d' ' -f$i)
        "${PFX[@]}" "$BIN/echo_backend" --port "$port" --name "$name" 2>"$WORK/backend-$name.log" &
        BACKEND_PIDS="$BACKEND_PIDS $!"
        i=$((i + 1))
    done
}

write_wsring_conf() { # THREADS FILE
    {
        echo "listen 127.0.0.1:$PPORT"
        if [ -f "$WORK/tls.pem" ]; then
            echo "listen 127.0.0.1:$TPORT tls"
            echo "tls_certificate $WORK/tls.crt"
            echo "tls_certificate_key $WORK/tls.key"
        fi
        echo "admin 127.0.0.1:$APORT"
        echo "workers $1"
        echo "key query:user"
        local i=1 port
        for port in $BPORTS; do
            echo "backend $(echo $BNAMES | cut -d' ' -f$i) 127.0.0.1:$port"
            i=$((i + 1))
        done
    } >"$2"
}

write_haproxy_conf() { # THREADS FILE
    {
        cat <<EOF
global
    nbthread $1
    maxconn 9960
defaults
    mode http
    option forwardfor
    maxconn 9960
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 10s
frontend fe
    bind 127.0.0.1:$PPORT
    default_backend be
EOF
        [ -f "$WORK/tls.pem" ] && echo "    bind 127.0.0.1:$TPORT ssl crt $WORK/tls.pem alpn http/1.1"
        cat <<EOF
backend be
    balance url_param user
    hash-type consistent
    http-reuse always
EOF
        local i=1 port
        for port in $BPORTS; do
            echo "    server $(echo $BNAMES | cut -d' ' -f$i) 127.0.0.1:$port"
            i=$((i + 1))
        done
    } >"$2"
}

write_nginx_conf() { # THREADS FILE
    local port
    mkdir -p "$WORK/nginx-tmp"
    {
        cat <<EOF
worker_processes $1;
worker_rlimit_nofile 20000;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events {
    worker_connections 30000;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      '';
    }
    upstream be {
        hash \$arg_user consistent;
EOF
        for port in $BPORTS; do echo "        server 127.0.0.1:$port;"; done
        cat <<EOF
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$PPORT reuseport backlog=4096;
EOF
        if [ -f "$WORK/tls.pem" ]; then
            echo "        listen 127.0.0.1:$TPORT ssl reuseport backlog=4096;"
            echo "        ssl_certificate $WORK/tls.crt;"
            echo "        ssl_certificate_key $WORK/tls.key;"
            echo "        ssl_protocols TLSv1.2 TLSv1.3;"
        fi
        cat <<EOF
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_connect_timeout 5s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
EOF
    } >"$2"
}

# start_proxy KIND THREADS: starts it pinned as configured and waits until it routes.
start_proxy() {
    local kind=$1 n=$2 conf=$WORK/$1-$2.conf i
    pin_prefix "$(proxy_cpus "$n")"
    case $kind in
    wsring)
        write_wsring_conf "$n" "$conf"
        "${PFX[@]}" "$WSRING" -c "$conf" 2>>"$WORK/wsring.log" &
        ;;
    haproxy)
        write_haproxy_conf "$n" "$conf"
        "${PFX[@]}" "$HAPROXY" -db -f "$conf" >>"$WORK/haproxy.log" 2>&1 &
        ;;
    nginx)
        write_nginx_conf "$n" "$conf"
        "${PFX[@]}" "$NGINX" -c "$conf" -p "$WORK" >>"$WORK/nginx.log" 2>&1 &
        ;;
    esac
    PROXY_PID=$!
    for i in $(seq 100); do
        if curl -s -m 1 "http://127.0.0.1:$PPORT/probe?user=probe" 2>/dev/null | grep -q '^ws-'; then
            return 0
        fi
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    log "$kind ($n) did not come up; its log:"
    tail -5 "$WORK/$kind.log" >&2
    stop_pid "$PROXY_PID"
    PROXY_PID=""
    return 1
}

stop_proxy() {
    stop_pid "$PROXY_PID"
    PROXY_PID=""
}

# ---- measurements -------------------------------------------------------------

# kv LINE KEY: the value of KEY=... in a loadgen report line.
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# row NAME THREADS REP MODE VALUE CPU100K CPUPCT P50 P99 OTHER LINE: one raw result.
row() {
    local line=${11}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
        "$7" "$8" "$9" "${10}" "$(kv "$line" errors)" "$(kv "$line" misrouted)" \
        "$(kv "$line" checked)" >>"$RAW"
    printf '  %-8s %s rep %s %-9s %10s  cpu/100k=%s cpu%%=%s other%%=%s errors=%s misrouted=%s/%s (%s)\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${10}" "$(kv "$line" errors)" "$(kv "$line" misrouted)" \
        "$(kv "$line" checked)" "$(kv "$line" route_check)" >&2
}

# measure NAME THREADS REP MODE TARGET...: runs one mode; TARGET is loadgen's routing options.
measure() {
    local name=$1 n=$2 rep=$3 mode=$4 line t0 t1 rss0 rss1 up ready
    shift 4
    load_prefix "$n" "$(load_cpus "$n")"
    if [ "$mode" = idle ]; then
        ready=$WORK/ready
        rm -f "$ready"
        rss0=$(proxy_rss_kb)
        "${PFX[@]}" "$BIN/loadgen" --mode idle --conns "$IDLE_CONNS" --users "$USERS" \
            --ready "$ready" --hold 3 "$@" >"$WORK/idle.out" 2>>"$WORK/loadgen.log" &
        LOAD_PID=$!
        while [ ! -f "$ready" ] && kill -0 "$LOAD_PID" 2>/dev/null; do sleep 0.1; done
        sleep 1
        rss1=$(proxy_rss_kb)
        wait "$LOAD_PID"
        LOAD_PID=""
        line=$(cat "$WORK/idle.out")
        up=$(kv "$line" up)
        if [ "${up:-0}" -gt 0 ]; then
            row "$name" "$n" "$rep" idle $(((rss1 - rss0) * 1024 / up)) - - - - - "$line"
        else
            row "$name" "$n" "$rep" idle NA - - - - - "${line:-errors=1}"
        fi
        return
    fi
    local m0 m1 b0 b1 w0 w1 other lmode=$mode tls="" ready=""
    case $mode in wss_*) lmode=${mode#wss_} tls=--tls ;; esac
    # wss_small: 1,000 TLS handshakes come first; the window (and the CPU count) starts after them.
    [ "$mode" = wss_small ] && ready=$WORK/ready-timed
    wait_quiet
    if [ -n "$ready" ]; then
        rm -f "$ready"
        "${PFX[@]}" "$BIN/loadgen" --mode "$lmode" $tls --seconds "$SECS" --users "$USERS" \
            --ready "$ready" "$@" >"$WORK/timed.out" 2>>"$WORK/loadgen.log" &
        LOAD_PID=$!
        while [ ! -f "$ready" ] && kill -0 "$LOAD_PID" 2>/dev/null; do sleep 0.05; done
    fi
    t0=0
    [ -n "$PROXY_PID" ] && t0=$(proxy_ticks)
    m0=$(machine_ticks)
    b0=$(backend_ticks)
    w0=$(date +%s%N)
    if [ -n "$ready" ]; then
        wait "$LOAD_PID"
        LOAD_PID=""
        line=$(cat "$WORK/timed.out")
    else
        line=$("${PFX[@]}" "$BIN/loadgen" --mode "$lmode" $tls --seconds "$SECS" --users "$USERS" "$@" \
            2>>"$WORK/loadgen.log")
    fi
    w1=$(date +%s%N)
    b1=$(backend_ticks)
    m1=$(machine_ticks)
    [ -n "$line" ] || line="errors=1"
    local value count secs c100k=- cpct=-
    secs=$(kv "$line" seconds)
    case $lmode in
    handshake) value=$(kv "$line" rate) count=$(kv "$line" handshakes) ;;
    small) value=$(kv "$line" rate) count=$(kv "$line" msgs) ;;
    bulk) value=$(kv "$line" mib_s) count=$(kv "$line" msgs) ;;
    http) value=$(kv "$line" rate) count=$(kv "$line" msgs) ;;
    esac
    t1=$t0
    if [ -n "$PROXY_PID" ]; then
        t1=$(proxy_ticks)
        if [ "$t1" = "$t0" ] && [ "${count:-0}" -gt 1000 ]; then
            log "$name $mode: the proxy used no CPU for $count operations: the load did not go through it"
            line=$(echo "$line" | sed -E 's/(^| )errors=[0-9]+/\1errors=1/')
        fi
        c100k=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v c="${count:-0}" \
            'BEGIN { if (c > 0) printf "%.3f", t / hz / c * 100000; else print "NA" }')
        cpct=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="${secs:-0}" \
            'BEGIN { if (s > 0) printf "%.0f", t / hz / s * 100; else print "NA" }')
    fi
    # CPU used by everything else on the machine during the run, in % of one core.
    other=$(awk -v m=$((m1 - m0)) -v p=$((t1 - t0)) -v b=$((b1 - b0)) -v l="$(kv "$line" cpu_s)" \
        -v hz="$HZ" -v w=$((w1 - w0)) 'BEGIN { o = (m - p - b) / hz - l; if (o < 0) o = 0;
                                            printf "%.0f", o / (w / 1e9) * 100 }')
    row "$name" "$n" "$rep" "$mode" "${value:-NA}" "$c100k" "$cpct" "$(kv "$line" p50_us)" \
        "$(kv "$line" p99_us)" "$other" "$line"
}

# ---- the run -------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "work directory $WORK; $REPS reps x ${SECS}s; proxies:$RUN_PROXIES; threads: $THREADS"
start_backends

# The owner of every user, from wsring's own /lookup (asked once per user).
write_wsring_conf 1 "$WORK/owners.conf"
sed -i "0,/^listen .*/s//listen 127.0.0.1:$PPORT/" "$WORK/owners.conf"
"$WSRING" -c "$WORK/owners.conf" 2>>"$WORK/wsring.log" &
PROXY_PID=$!
for i in $(seq 50); do curl -s -m 1 "http://127.0.0.1:$APORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
if ! "$BIN/loadgen" --mode lookup --port "$APORT" --users "$USERS" >"$WORK/owners"; then
    log "could not ask wsring's /lookup for the owners"
    exit 1
fi
stop_proxy
OWNERS=$WORK/owners
log "owners of $USERS users from /lookup: $(awk '{ print $2 }' "$OWNERS" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"

for rep in $(seq "$REPS"); do
    for n in $THREADS; do
        # The physical limit: straight to each user's owner, same CPU placement as the proxies' load.
        place_backends "$(load_cpus "$n")"
        sched_backends "$n"
        # Mode by mode, every target back to back (a fresh proxy each time): the machine's speed
        # drifts by tens of % over minutes, so the rows compared should be seconds apart.
        for mode in $MODES; do
            case $mode in
            idle | wss_*) ;; # the backends speak no TLS; direct has no proxy RSS
            *) measure direct "$n" "$rep" "$mode" --owners "$OWNERS" --direct --port 1 ;;
            esac
            for kind in $RUN_PROXIES; do
                start_proxy "$kind" "$n" || continue
                port=$PPORT
                case $mode in wss_*) port=$TPORT ;; esac
                if [ "$kind" = wsring ]; then
                    measure "$kind" "$n" "$rep" "$mode" --port "$port" --owners "$OWNERS"
                else
                    measure "$kind" "$n" "$rep" "$mode" --port "$port"
                fi
                stop_proxy
            done
        done
    done
done
place_backends ""
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(date +%s)

# ---- report ---------------------------------------------------------------------

# med NAME THREADS MODE COLUMN: the median over the repetitions (column 5 = value).
# median: the median of the numbers on stdin, one per line ("-" for none).
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() {
    awk -F'\t' -v n="$1" -v t="$2" -v m="$3" -v c="$4" \
        '$1 == n && $2 == t && $4 == m && $c != "NA" && $c != "-" && $c != "" { print $c }' "$RAW" |
        median
}
sumcol() {
    awk -F'\t' -v n="$1" -v t="$2" -v c="$3" '$1 == n && $2 == t && $c ~ /^[0-9]+$/ { s += $c } END { print s + 0 }' "$RAW"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

# pratio THREADS MODE COLUMN BEST PEER...: the median over repetitions of wsring's value divided by
# the peers' value of the same repetition (measured seconds apart), BEST = max or min picking
# the best peer of each repetition; "-" when no repetition has both.
pratio() {
    local n=$1 m=$2 c=$3 best=$4
    shift 4
    awk -F'\t' -v n="$n" -v m="$m" -v c="$c" -v best="$best" -v peers=" $* " '
        $2 == n && $4 == m && $c != "NA" && $c != "-" && $c != "" {
            if ($1 == "wsring") w[$3] = $c
            else if (index(peers, " " $1 " ") && (!($3 in p) || (best == "max" ? $c > p[$3] : $c < p[$3]))) p[$3] = $c
        }
        END { for (r in w) if ((r in p) && p[r] > 0) print w[r] / p[r] }' "$RAW" | median | fmt_ratio
}
fmt_ratio() { awk '{ if ($1 == "-") print "-"; else printf "%.2f\n", $1 }'; }
fmt() { awk -v a="$1" -v d="${2:-0}" 'BEGIN { if (a == "-") print "-"; else printf "%.*f", d, a }'; }

report() {
    local n name hs sm p99 cpu cpct oth bk rss err mis chk hr hp99 hcpu
    echo "| threads | target | handshakes/s | small msgs/s | small p99 ms | proxy CPU s / 100k msgs | proxy CPU % (small) | other jobs' CPU % (small) | bulk MiB/s | idle RSS B/conn | http req/s | http p99 ms | proxy CPU s / 100k http req | errors | misrouted / checked |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in $THREADS; do
        for name in direct $RUN_PROXIES; do
            hs=$(med $name $n handshake 5)
            sm=$(med $name $n small 5)
            p99=$(med $name $n small 9)
            cpu=$(med $name $n small 6)
            cpct=$(med $name $n small 7)
            oth=$(med $name $n small 10)
            bk=$(med $name $n bulk 5)
            rss=$(med $name $n idle 5)
            hr=$(med $name $n http 5)
            hp99=$(med $name $n http 9)
            hcpu=$(med $name $n http 6)
            err=$(sumcol $name $n 11)
            mis=$(sumcol $name $n 12)
            chk=$(sumcol $name $n 13)
            [ "$p99" = - ] || p99=$(awk -v v="$p99" 'BEGIN { printf "%.1f", v / 1000 }')
            [ "$hp99" = - ] || hp99=$(awk -v v="$hp99" 'BEGIN { printf "%.1f", v / 1000 }')
            echo "| $n | $name | $(fmt "$hs") | $(fmt "$sm") | $p99 | $(fmt "$cpu" 3) | $(fmt "$cpct") | $(fmt "$oth") | $(fmt "$bk") | $(fmt "$rss") | $(fmt "$hr") | $hp99 | $(fmt "$hcpu" 3) | $err | $mis / $chk |"
        done
    done
    echo
    echo "Ratios (medians; same thread count). vs direct: handshakes, small, bulk, http. vs HAProxy: every column (CPU and RSS: lower is better); http also vs NGINX."
    echo
    echo "| threads | target | hs / direct | small / direct | bulk / direct | http / direct | hs / HAProxy | small / HAProxy | CPU per msg / HAProxy | bulk / HAProxy | RSS per conn / HAProxy | http / HAProxy | http / NGINX |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in $THREADS; do
        for name in $RUN_PROXIES; do
            echo "| $n | $name | $(ratio "$(med $name $n handshake 5)" "$(med direct $n handshake 5)") | $(ratio "$(med $name $n small 5)" "$(med direct $n small 5)") | $(ratio "$(med $name $n bulk 5)" "$(med direct $n bulk 5)") | $(ratio "$(med $name $n http 5)" "$(med direct $n http 5)") | $(ratio "$(med $name $n handshake 5)" "$(med haproxy $n handshake 5)") | $(ratio "$(med $name $n small 5)" "$(med haproxy $n small 5)") | $(ratio "$(med $name $n small 6)" "$(med haproxy $n small 6)") | $(ratio "$(med $name $n bulk 5)" "$(med haproxy $n bulk 5)") | $(ratio "$(med $name $n idle 5)" "$(med haproxy $n idle 5)") | $(ratio "$(med $name $n http 5)" "$(med haproxy $n http 5)") | $(ratio "$(med $name $n http 5)" "$(med nginx $n http 5)") |"
        done
    done
    echo
    if echo " $MODES " | grep -q ' wss_'; then
        echo "TLS (the same loads over wss://, one EC P-256 certificate for all; full handshakes, no resumption). CPU per wss session = proxy CPU s per 1,000 wss handshakes (TCP + TLS + upgrade + close)."
        echo
        echo "| threads | target | wss handshakes/s | proxy CPU s / 1k wss sessions | wss small msgs/s | wss small p99 ms | proxy CPU s / 100k wss msgs |"
        echo "|---|---|---|---|---|---|---|"
        local whs wcpu wsm wp99 wmcpu
        for n in $THREADS; do
            for name in $RUN_PROXIES; do
                whs=$(med $name $n wss_handshake 5)
                wcpu=$(med $name $n wss_handshake 6)
                [ "$wcpu" = - ] || wcpu=$(awk -v v="$wcpu" 'BEGIN { printf "%.3f", v / 100 }')
                wsm=$(med $name $n wss_small 5)
                wp99=$(med $name $n wss_small 9)
                [ "$wp99" = - ] || wp99=$(awk -v v="$wp99" 'BEGIN { printf "%.1f", v / 1000 }')
                wmcpu=$(med $name $n wss_small 6)
                echo "| $n | $name | $(fmt "$whs") | $wcpu | $(fmt "$wsm") | $wp99 | $(fmt "$wmcpu" 3) |"
            done
        done
        echo
    fi
    echo "Targets for wsring (issues #4, #8, #10): small >= 1.2x HAProxy and NGINX; CPU/100k <= 0.8x HAProxy; handshakes >= 1.1x the best peer; bulk >= 1.5x HAProxy; RSS/conn <= 0.5x HAProxy; http req/s >= 1.2x the best peer; CPU per wss session <= 0.8x the best peer's with wss handshakes/s no lower; no errors; every user's routing checked."
    echo
    # check LABEL VALUE OP LIMIT: one verdict line for the rows with $n threads.
    check() {
        local verdict
        verdict=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { if (v == "-" || l == "-") print "n/a";
            else if ((op == ">=" && v + 0 >= l + 0) || (op == "<=" && v + 0 <= l + 0)) print "met"; else print "NOT met" }')
        echo "- threads $n: $1: $2 $3 $4 -> $verdict"
    }
    for n in $THREADS; do
        local ws_sm ha_sm ng_sm best
        ws_sm=$(med wsring $n small 5)
        ha_sm=$(med haproxy $n small 5)
        ng_sm=$(med nginx $n small 5)
        check "small msgs/s vs HAProxy x1.2" "$ws_sm" ">=" "$(awk -v b="$ha_sm" 'BEGIN { if (b == "-") print "-"; else print 1.2 * b }')"
        check "small msgs/s vs NGINX x1.2" "$ws_sm" ">=" "$(awk -v b="$ng_sm" 'BEGIN { if (b == "-") print "-"; else print 1.2 * b }')"
        check "CPU s/100k vs HAProxy x0.8" "$(med wsring $n small 6)" "<=" "$(awk -v b="$(med haproxy $n small 6)" 'BEGIN { if (b == "-") print "-"; else print 0.8 * b }')"
        best=$(printf '%s\n%s\n' "$(med haproxy $n handshake 5)" "$(med nginx $n handshake 5)" | grep -v '^-$' | sort -g | tail -1)
        check "handshakes/s vs best peer x1.1" "$(med wsring $n handshake 5)" ">=" "$(awk -v b="${best:--}" 'BEGIN { if (b == "-") print "-"; else print 1.1 * b }')"
        check "bulk MiB/s vs HAProxy x1.5" "$(med wsring $n bulk 5)" ">=" "$(awk -v b="$(med haproxy $n bulk 5)" 'BEGIN { if (b == "-") print "-"; else print 1.5 * b }')"
        best=$(printf '%s\n%s\n' "$(med haproxy $n http 5)" "$(med nginx $n http 5)" | grep -v '^-$' | sort -g | tail -1)
        check "http req/s vs best peer x1.2 (issue #8)" "$(med wsring $n http 5)" ">=" "$(awk -v b="${best:--}" 'BEGIN { if (b == "-") print "-"; else print 1.2 * b }')"
        check "idle RSS B/conn vs HAProxy x0.5" "$(med wsring $n idle 5)" "<=" "$(awk -v b="$(med haproxy $n idle 5)" 'BEGIN { if (b == "-") print "-"; else print 0.5 * b }')"
        if echo " $MODES " | grep -q ' wss_'; then
            local best_cpu best_hs
            best_cpu=$(printf '%s\n%s\n' "$(med haproxy $n wss_handshake 6)" "$(med nginx $n wss_handshake 6)" | grep -v '^-$' | sort -g | head -1)
            best_hs=$(printf '%s\n%s\n' "$(med haproxy $n wss_handshake 5)" "$(med nginx $n wss_handshake 5)" | grep -v '^-$' | sort -g | tail -1)
            check "CPU per wss session vs best peer x0.8" "$(med wsring $n wss_handshake 6)" "<=" "$(awk -v b="${best_cpu:--}" 'BEGIN { if (b == "-") print "-"; else print 0.8 * b }')"
            check "wss handshakes/s vs best peer x1.0" "$(med wsring $n wss_handshake 5)" ">=" "${best_hs:--}"
        fi
        check "errors" "$(sumcol wsring $n 11)" "<=" 0
        check "misrouted users" "$(sumcol wsring $n 12)" "<=" 0
    done
    echo
    echo "The same targets on paired ratios: for each repetition, wsring's value over the peer's of the same repetition (measured seconds apart, each on a fresh proxy), then the median over repetitions. The machine's speed drifts by tens of % between minutes (the direct rows show it), which ratios of per-target medians mix in; paired ratios do not."
    echo
    for n in $THREADS; do
        check "small msgs/s / HAProxy" "$(pratio "$n" small 5 max haproxy)" ">=" 1.2
        check "small msgs/s / NGINX" "$(pratio "$n" small 5 max nginx)" ">=" 1.2
        check "CPU s/100k / HAProxy" "$(pratio "$n" small 6 min haproxy)" "<=" 0.8
        check "handshakes/s / best peer" "$(pratio "$n" handshake 5 max haproxy nginx)" ">=" 1.1
        check "bulk MiB/s / HAProxy" "$(pratio "$n" bulk 5 max haproxy)" ">=" 1.5
        check "http req/s / best peer (issue #8)" "$(pratio "$n" http 5 max haproxy nginx)" ">=" 1.2
        check "idle RSS B/conn / HAProxy" "$(pratio "$n" idle 5 min haproxy)" "<=" 0.5
        if echo " $MODES " | grep -q ' wss_'; then
            check "CPU per wss session / best peer (issue #10)" "$(pratio "$n" wss_handshake 6 min haproxy nginx)" "<=" 0.8
            check "wss handshakes/s / best peer (issue #10)" "$(pratio "$n" wss_handshake 5 max haproxy nginx)" ">=" 1.0
        fi
    done
}

{
    echo "# wsring benchmark results"
    echo
    echo "Written by \`bench/run.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC'); see bench/README.md for what each column means."
    echo
    echo "## Machine and versions"
    echo
    echo "- nproc: $NCPU; CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); kernel $(uname -r); fd limit $(ulimit -Hn)"
    echo "- $("$WSRING" --version 2>&1 | head -1) (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), working tree as built)"
    [ -n "$HAPROXY" ] && echo "- $("$HAPROXY" -v 2>&1 | head -1)"
    [ -n "$NGINX" ] && echo "- $("$NGINX" -v 2>&1 | head -1)"
    echo "- load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared: other jobs were running)"
    echo "- run took $((T_END - T_START)) s: $REPS repetitions, ${SECS} s per timed measurement, proxies interleaved; $((QUIET_SPENT / 2)) s spent waiting for other jobs to quieten (<= ${QUIET_PCT}% of a core), $NOISY measurements started anyway after waiting ${QUIET_WAIT} s or once the ${QUIET_BUDGET} s budget was spent"
    echo
    echo "## Setup"
    echo
    echo "- 3 backends: \`echo_backend --port P --name ws-a|ws-b|ws-c\` (one thread each), 127.0.0.1:$BPORTS"
    echo "- wsring: \`workers N\`, \`key query:user\`, static backends; HAProxy: \`nbthread N\`, \`mode http\`, \`balance url_param user\`, \`hash-type consistent\`, \`option forwardfor\`, \`timeout tunnel 1h\`; NGINX: \`worker_processes N\`, \`hash \$arg_user consistent\`, \`proxy_http_version 1.1\` + Upgrade/Connection, \`listen ... reuseport\`, \`worker_connections 30000\`, \`worker_rlimit_nofile 20000\`, default buffers"
    if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ]; then
        echo "- placement: 1-thread rows run the proxy on CPU 1 and the load generator + backends on CPU 0 (\`taskset\`); 2-thread rows are not pinned (everything shares both cores). \"direct\" uses the same placement as the load side of its rows."
    else
        echo "- placement: nothing pinned (BENCH_PIN=0): a 1-thread proxy can use one core at most, the load generator and backends use what is left; with BENCH_PIN=1 (proxy alone on CPU 1) every proxy stalled at ~45% CPU on cross-CPU wakeups and the load side, so that placement measured the harness, not the proxies"
    fi
    case $LOAD_SCHED in
    auto) echo "- scheduling: in 1-thread rows the load generator and backends run SCHED_BATCH (\`chrt -b 0\`), so their wake-ups do not preempt the proxy measured (under the default policy every proxy took 170-310 involuntary switches per 1,000 small messages and its CPU per message moved by half from run to run); in 2-thread rows everything runs under the default policy (the proxy's threads fill both cores; SCHED_BATCH would starve the load side and every proxy would read the same rate); the proxies always run under the default policy" ;;
    batch) echo "- scheduling: the load generator and backends run SCHED_BATCH in every row (BENCH_LOAD_SCHED=batch); in rows where the proxy fills both cores that starves the load side" ;;
    other) echo "- scheduling: everything under the default policy (BENCH_LOAD_SCHED=other): in 1-thread rows the load side's wake-ups preempt the proxy, so expect wide run-to-run spread" ;;
    esac
    echo "- loads: handshake = 64 connections in flight, upgrade + close; small = 1,000 connections x 64-byte frames, one in flight each; bulk = 16 connections x 64 KiB frames, one in flight each (MiB/s of payload echoed); idle = 9,900 upgraded connections held, (VmRSS with - before) / connections; http = 64 keep-alive client connections (one client pool), each with one \`POST /echo?user=uN\` of 1 KiB in flight, the user changing on every request (10,000 users through the same 64 connections), body echoed and compared; HAProxy adds \`http-reuse always\`, NGINX upstream \`keepalive 64\` (Connection emptied upstream), wsring its per-worker backend pool (defaults \`pool_max_idle 64\`, \`pool_idle_timeout 4s\`)"
    echo "- routing: wsring and direct rows check every 101's X-Backend against the owner from wsring's /lookup (asked once for each of $USERS users); HAProxy and NGINX hash differently, so their rows check that each user always lands on the same backend"
    echo
    echo "## Results (medians of $REPS)"
    echo
    report
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "make bench        # = make all build/bench/echo_backend build/bench/loadgen && BUILD=build sh bench/run.sh"
    echo "# environment of this run: BENCH_SECONDS=$SECS BENCH_REPS=$REPS BENCH_MODES=\"$MODES\" BENCH_THREADS=\"$THREADS\" BENCH_PIN=$PIN BENCH_LOAD_SCHED=$LOAD_SCHED"
    pp="" lp=""
    if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ]; then pp="taskset -c 1 " lp="taskset -c 0 "; fi
    if [ "$LOAD_SCHED" != other ]; then lp="${lp}chrt -b 0 "; fi # auto: 1-thread rows only
    echo "${lp}$BIN/echo_backend --port P --name ws-a   # and ws-b, ws-c"
    for kind in $RUN_PROXIES; do
        case $kind in
        wsring) echo "$pp$WSRING -c wsring-N.conf" ;;
        haproxy) echo "$pp$HAPROXY -db -f haproxy-N.conf" ;;
        nginx) echo "$pp$NGINX -c nginx-N.conf -p WORKDIR" ;;
        esac
    done
    echo "$BIN/loadgen --mode lookup --port $APORT --users $USERS > owners   # once, from wsring's admin"
    echo "$lp$BIN/loadgen --mode idle --conns $IDLE_CONNS --users $USERS --ready F --hold 3 --port $PPORT [--owners owners]"
    echo "$lp$BIN/loadgen --mode handshake|small|bulk|http --seconds $SECS --users $USERS --port $PPORT [--owners owners]"
    echo "$BIN/loadgen --mode small --owners owners --direct --port 1   # direct"
    echo '```'
    echo
    echo "## Raw rows"
    echo
    echo "name, threads, rep, mode, value (handshakes/s, msgs/s, MiB/s or RSS B/conn), proxy CPU s/100k, proxy CPU %, p50 us, p99 us, other jobs' CPU %, errors, misrouted, checked"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
} >"$WORK/RESULTS.md"

cat "$WORK/RESULTS.md"
if [ "$RESULTS" != - ]; then
    cp "$WORK/RESULTS.md" "$RESULTS"
    log "report written to $RESULTS"
fi
