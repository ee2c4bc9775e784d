#!/usr/bin/env bash
# compare.sh - Outpost next to Postfix on this machine, in one run.
#
# Postfix's smtp-source is the common load generator for both servers, so the
# ratios compare servers, not clients. Everything listens on 127.0.0.1 only.
# Every load run is bounded in count (message totals below) and in time
# (RUN_TIMEOUT per run, TOTAL_BUDGET for the whole script, enforced by a
# watchdog); every server this script starts is stopped on exit (trap).
#
# Usage: benches/compare.sh [--postfix-only | --outpost-only] [MODE...]
#   sink     Postfix smtp-sink (no disk)          vs  outpost serve --sink
#   durable  Postfix (queue, fsync, -> discard:)  vs  outpost serve --transport example.net=discard
#   relay    end to end: Postfix (queue, smtp client) vs outpost --transport, both
#            relaying to the same smtp-sink as the next hop; a run ends when the
#            server has logged status=sent for every message. Each run also prints
#            p50/p99 of the delay= its status=sent lines give (queued -> delivered)
#   loadgen  outpost bench (the project's generator) against Outpost: plain,
#            pipelining, STARTTLS+AUTH+pipelining; sink and durable servers
#   idle     IDLE_CONNS idle connections held open against Outpost; its RSS
#   outlook  one connection per message as Outlook sends: STARTTLS + AUTH LOGIN, every
#            handshake full; Postfix (+ Dovecot SASL) vs outpost --submission, both durable
#            (discard after the queue), ECDSA P-256 and RSA-2048 certificates; sessions/s,
#            p50/p99 per session, and Outpost's share of the TLS handshake limit
#   large    LARGE_SESSIONS (50) sessions each sending one LARGE_SIZE (25 MiB) message, both
#            servers durable as in `durable`: MB/s, msgs/s and each server's peak memory
#            (not part of `all`: each load writes 1.25 GiB on each server)
#   all      sink durable loadgen idle (the default)
#   --postfix-only  only the Postfix halves (no cargo build, no Outpost)
#   --outpost-only  only the Outpost halves
#
# Knobs (environment), defaults in brackets:
#   SESSIONS [16]  SIZES ["1024 65536"]  RUNS [3]  RCPTS [1]
#   SINK_MSGS_1K [30000] SINK_MSGS_64K [6000] DURABLE_MSGS_1K [8000] DURABLE_MSGS_64K [3000]
#   MSGS=<n>       one message count for every smtp-source run (overrides the four above)
#   BENCH_MSGS [200]  messages per session for outpost bench runs
#   IDLE_CONNS [10000]  RUN_TIMEOUT [180]  TOTAL_BUDGET [2400]
#   LARGE_SESSIONS [50]  LARGE_SIZE [26214400]  smtp-source -l, body octets before CRLF
#   LARGE_LOADS ["serial parallel"]  one smtp-source of 50 sessions / 50 smtp-sources of one
#   PORT_BASE [2530]  ports PORT_BASE..PORT_BASE+4 must be free on 127.0.0.1
#   OUTPOST_BIN [target/release/outpost]  SKIP_BUILD=1 to use it as it is
#   OUTPOST_FLAGS []  extra flags for every Outpost server, e.g. "--workers 0"
#   OUTLOOK_MSGS [BENCH_MSGS]  sessions (= messages) per bench session in outlook mode
#   OUT_DIR [new /var/tmp/outpost-compare-results.*]  CSV results and charts (gnuplot)
#
# Output: one line per run
#   <bench> <server> <size> <msgs> <secs> <msgs_per_s>  # busy=<machine %> server=<server CPU %>
#   large-<load> <server> <size> <msgs> <secs> <msgs_per_s> mb_per_s=<MB/s> peak_rss_mb=<MB>  # ...
# (CPU in % of one core; this machine kind has 2 cores, so busy <= 200%), then for each
# (bench, size) the median of RUNS runs, and a table of ratios outpost/postfix.
# The two servers' runs alternate (postfix, outpost, postfix, ...), so drift in the
# machine's background load hits both alike; only ratios from one run mean much.
# The same results go to OUT_DIR (its path is printed at the end): ratios.csv, latency.csv,
# the `outpost bench --csv` files of the outlook runs, and ratios.png / latency.png drawn
# by gnuplot (gnuplot-nox is installed with apt-get if missing; without it, no charts).
#
# Postfix: installed with apt-get if missing ("No configuration"), configured for
# the run (main.cf and master.cf are backed up and restored on exit), started and
# stopped. If a Postfix is already running, the Postfix-durable half is skipped
# rather than reconfiguring someone's live mail server.
set -u -o pipefail
export LC_ALL=C

cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

SESSIONS=${SESSIONS:-16}
SIZES=${SIZES:-"1024 65536"}
RUNS=${RUNS:-3}
RCPTS=${RCPTS:-1}
SINK_MSGS_1K=${SINK_MSGS_1K:-30000}
SINK_MSGS_64K=${SINK_MSGS_64K:-6000}
DURABLE_MSGS_1K=${DURABLE_MSGS_1K:-8000}
DURABLE_MSGS_64K=${DURABLE_MSGS_64K:-3000}
BENCH_MSGS=${BENCH_MSGS:-200}
IDLE_CONNS=${IDLE_CONNS:-10000}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
TOTAL_BUDGET=${TOTAL_BUDGET:-2400}
PORT_BASE=${PORT_BASE:-2530}
OUTPOST_BIN=${OUTPOST_BIN:-$REPO/target/release/outpost}
OUTPOST_FLAGS=${OUTPOST_FLAGS:-}
OUTLOOK_MSGS=${OUTLOOK_MSGS:-$BENCH_MSGS}
OUT_DIR=${OUT_DIR:-}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
FROM=bench@example.com
TO=rcpt@example.net

PORT_POSTFIX_SINK=$PORT_BASE
PORT_POSTFIX=$((PORT_BASE + 1))
PORT_OUTPOST_SINK=$((PORT_BASE + 2))
PORT_OUTPOST=$((PORT_BASE + 3))
PORT_OUTPOST_SUBMISSION=$((PORT_BASE + 4))

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
START_EPOCH=$(date +%s)

SIDES="postfix outpost"
MODES=""
for arg in "$@"; do
  case "$arg" in
    --postfix-only) SIDES=postfix ;;
    --outpost-only) SIDES=outpost ;;
    sink|durable|relay|loadgen|idle|outlook|large) MODES="$MODES $arg" ;;
    all) MODES="$MODES sink durable loadgen idle" ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$MODES" ] || MODES="sink durable loadgen idle"
side() { case " $SIDES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

note() { echo "# $*"; }
die() { echo "compare.sh: $*" >&2; exit 2; }

# ---- cleanup: everything started here is stopped here ------------------------
TMPD=$(mktemp -d /tmp/outpost-compare.XXXXXX)
# Outpost's spool goes on the disk Postfix's queue lives on (never tmpfs, where
# fsync costs nothing), so the durable comparison is fair.
DATA_ROOT=$(mktemp -d /var/tmp/outpost-compare.XXXXXX)
SERVER_PIDS=()
POSTFIX_STARTED=0
POSTFIX_BACKUP=""
WATCHDOG_PID=""

cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
  if [ "$POSTFIX_STARTED" = 1 ]; then
    timeout 30 postfix stop >/dev/null 2>&1
    postsuper -d ALL >/dev/null 2>&1
  fi
  if [ -n "$POSTFIX_BACKUP" ]; then
    local f
    for f in main.cf master.cf; do
      if [ -f "$POSTFIX_BACKUP/$f" ]; then cp -p "$POSTFIX_BACKUP/$f" "/etc/postfix/$f"
      elif [ -f "$POSTFIX_BACKUP/$f.absent" ]; then rm -f "/etc/postfix/$f"; fi
    done
  fi
  [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
  stop_dovecot
  rm -rf "$TMPD" "$DATA_ROOT"
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM
# The whole script is bounded in time even if a step hangs in a way no per-run
# timeout catches: the watchdog sends SIGTERM, the trap cleans up.
(
  sleep "$TOTAL_BUDGET" &
  trap 'kill $! 2>/dev/null; exit 0' TERM
  wait $!
  # Only if the script is still our parent: never signal a recycled PID.
  if [ "$(awk '{print $4}' /proc/$BASHPID/stat)" = "$$" ]; then
    echo "compare.sh: TOTAL_BUDGET of ${TOTAL_BUDGET}s exceeded" >&2
    kill -TERM $$
  fi
) 2>/dev/null &
WATCHDOG_PID=$!

budget_left() { echo $((TOTAL_BUDGET - ($(date +%s) - START_EPOCH))); }

# ---- small helpers ------------------------------------------------------------
stop_server() { # PID: one this script started; SIGTERM, then SIGKILL after 5 s
  local pid=$1 i kept=()
  kill "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  # Forget it, so the exit trap never signals a recycled PID.
  for i in "${SERVER_PIDS[@]}"; do [ "$i" = "$pid" ] || kept+=("$i"); done
  SERVER_PIDS=("${kept[@]}")
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_listening() { # PORT PID: up to 15 s for PORT to listen while PID lives
  local i
  for i in $(seq 150); do
    ss -Hltn "src 127.0.0.1 and sport = :$1" 2>/dev/null | grep -q . && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

machine_ticks() { # busy and total jiffies of the whole machine
  awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; print busy, busy+$5+$6}' /proc/stat
}

tree_ticks() { # CPU jiffies of PID, its reaped children and its live children
  local pid=$1 total=0 child
  [ -r "/proc/$pid/stat" ] || { echo 0; return; }
  # Fields after the ") " that ends the command name: utime is the 12th, cstime the 15th.
  total=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12+$13+$14+$15}')
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    [ -r "/proc/$child/stat" ] || continue
    total=$((total + $(sed 's/.*) //' "/proc/$child/stat" | awk '{print $12+$13}')))
  done
  echo "$total"
}

settle() { # PID: wait (<= 60 s) until the server's CPU use stops: its backlog is done
  local pid=$1 i a b
  for i in $(seq 120); do
    a=$(tree_ticks "$pid"); sleep 0.5; b=$(tree_ticks "$pid")
    [ $((b - a)) -le 1 ] && return 0
  done
  note "server $pid still busy after 60 s"
}

msgs_for() { # BENCH SIZE
  if [ -n "${MSGS:-}" ]; then echo "$MSGS"; return; fi
  case "$1:$2" in
    sink:1024) echo "$SINK_MSGS_1K" ;;
    sink:*) echo "$SINK_MSGS_64K" ;;
    durable:1024|relay:1024) echo "$DURABLE_MSGS_1K" ;;
    *) echo "$DURABLE_MSGS_64K" ;;
  esac
}

median() { sort -n | awk '{v[NR]=$1} END{if (NR) print v[int((NR+1)/2)]}'; }

# ---- one smtp-source run --------------------------------------------------------
declare -A RATES=()   # "bench server size" -> rates of the runs, space separated
declare -A RAW=()     # "bench server size" -> median rate
declare -A SENT_LOG=()  # server -> its log of deliveries (relay runs wait for them)
SOURCE_FAILED=0

sent_count() { grep -c 'status=sent' "$1" 2>/dev/null || :; }

# Waits (<= TMO s) until LOG shows WANT status=sent lines; false if not.
wait_sent() { # LOG WANT TMO
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(sent_count "$1")" -lt "$2" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

source_run() { # BENCH SERVER PORT PID SIZE MSGS
  local bench=$1 server=$2 port=$3 pid=$4 size=$5 n=$6
  local left tmo b0 t0 b1 t1 s0 s1 w0 w1 rc secs rate cpu
  left=$(budget_left)
  if [ "$left" -le 10 ]; then note "budget exhausted, skipping $bench $server $size"; return; fi
  tmo=$RUN_TIMEOUT; [ "$left" -lt "$tmo" ] && tmo=$((left - 5))
  local log=${SENT_LOG[$server]:-} sent0=0
  [ "$bench" = relay ] && sent0=$(sent_count "$log")
  read -r b0 t0 < <(machine_ticks); s0=$(tree_ticks "$pid"); w0=$(date +%s.%N)
  # -d: many messages per connection; -s: concurrent sessions; -m: total messages.
  timeout "$tmo" "$SMTP_SOURCE" -4 -d -s "$SESSIONS" -m "$n" -l "$size" -r "$RCPTS" \
    -f "$FROM" -t "$TO" -M bench.client "127.0.0.1:$port" >"$TMPD/source.out" 2>&1
  rc=$?
  # End to end: until the server has handed every message to the next hop.
  if [ "$bench" = relay ] && [ "$rc" -eq 0 ] && ! wait_sent "$log" $((sent0 + n * RCPTS)) "$tmo"; then
    echo "not every message was relayed within ${tmo}s" >>"$TMPD/source.out"; rc=124
  fi
  w1=$(date +%s.%N); read -r b1 t1 < <(machine_ticks); s1=$(tree_ticks "$pid")
  secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.3f", b-a}')
  if [ "$rc" -ne 0 ] || grep -qiE 'error|fatal|warning' "$TMPD/source.out"; then
    echo "$bench $server $size $n $secs FAIL  # rc=$rc $(head -c 300 "$TMPD/source.out" | tr '\n' ' ')"
    SOURCE_FAILED=$((SOURCE_FAILED + 1))
    return
  fi
  rate=$(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
  cpu=$(awk -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" \
          -v hz="$HZ" -v secs="$secs" -v ncpu="$NCPU" 'BEGIN{
          busy = (t1 > t0) ? 100 * ncpu * (b1 - b0) / (t1 - t0) : 0
          printf "busy=%.0f%% server=%.0f%%", busy, 100 * (s1 - s0) / hz / secs }')
  echo "$bench $server $size $n $secs $rate  # $cpu"
  [ "$bench" = relay ] && relay_latency "$server" "$size" "$log" "$sent0"
  RATES["$bench $server $size"]="${RATES["$bench $server $size"]:-} $rate"
}

background_busy() { # machine CPU busy over one second, in % of one core
  local b0 t0 b1 t1
  read -r b0 t0 < <(machine_ticks); sleep 1; read -r b1 t1 < <(machine_ticks)
  awk -v a="$b0" -v b="$b1" -v c="$t0" -v d="$t1" -v n="$NCPU" \
    'BEGIN{printf "%.0f", (d > c) ? 100 * n * (b - a) / (d - c) : 0}'
}

# compare BENCH SIZE then "server port pid" triples; runs alternate between servers.
compare() {
  local bench=$1 size=$2; shift 2
  local n r triple server port pid busy
  n=$(msgs_for "$bench" "$size")
  busy=$(background_busy)
  # Other work on a small machine skews every number; say so next to them.
  [ "$busy" -gt 25 ] && note "warning: the machine is already ${busy}% busy (of one core) before the $bench $size runs"
  for r in $(seq "$RUNS"); do
    for triple in "$@"; do
      read -r server port pid <<<"$triple"
      source_run "$bench" "$server" "$port" "$pid" "$size" "$n"
      settle "$pid"
      [ "$server" = postfix ] && [ "$bench" = durable ] && postfix_drain
    done
  done
  for triple in "$@"; do
    read -r server port pid <<<"$triple"
    local key="$bench $server $size" m
    m=$(echo "${RATES[$key]:-}" | tr ' ' '\n' | grep . | median)
    [ -n "$m" ] && RAW[$key]=$m && echo "$bench-median $server $size $n - $m  # runs:${RATES[$key]}"
  done
}

# ---- Postfix ------------------------------------------------------------------------
install_postfix() {
  [ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] && command -v postfix >/dev/null && return 0
  note "installing postfix (apt-get, 'No configuration')"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  timeout 600 apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq postfix >"$TMPD/apt.log" 2>&1 \
    || { tail -20 "$TMPD/apt.log" >&2; die "apt-get install postfix failed"; }
  [ -x "$SMTP_SOURCE" ] || die "no $SMTP_SOURCE after installing postfix"
}

postfix_drain() { # wait (<= 120 s) until Postfix's queue is empty
  local i
  for i in $(seq 1200); do
    [ -z "$(postqueue -j 2>/dev/null | head -c 1)" ] && return 0
    sleep 0.1
  done
  note "postfix queue not empty after 120 s"
}

configure_postfix() {
  local f
  # The configuration as found, saved once: later modes reconfigure what an
  # earlier mode of this run changed, and the exit trap restores the original.
  if [ -z "$POSTFIX_BACKUP" ]; then
    POSTFIX_BACKUP=$TMPD/postfix-backup
    mkdir -p "$POSTFIX_BACKUP"
    for f in main.cf master.cf; do
      if [ -f "/etc/postfix/$f" ]; then cp -p "/etc/postfix/$f" "$POSTFIX_BACKUP/$f"
      else touch "$POSTFIX_BACKUP/$f.absent"; fi
    done
  fi
  # "No configuration" leaves main.cf out; start from the packaged defaults.
  if [ ! -f /etc/postfix/main.cf ]; then
    cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf 2>/dev/null || : >/etc/postfix/main.cf
  fi
  [ -f /etc/postfix/master.cf ] || cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf \
    || die "no /etc/postfix/master.cf"
  # Relay anything from loopback, deliver nothing locally, discard every message
  # after it was queued: the durable accept path is what is measured.
  postconf -e \
    "myhostname = bench.localdomain" \
    "mydestination =" \
    "inet_interfaces = loopback-only" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "smtpd_relay_restrictions = permit_mynetworks reject" \
    "default_transport = discard:bench" \
    "relay_transport = discard:bench" \
    "local_transport = discard:bench" \
    "maillog_file = /var/log/postfix.log" \
    "smtputf8_enable = no" \
    "compatibility_level = 3.6" || die "postconf failed"
  # One listener only, on our loopback port. The Debian chroot is set up by the init
  # wrapper, which is not used here, so no service runs chrooted.
  postconf -M# smtp/inet >/dev/null 2>&1
  postconf -Me "127.0.0.1:$PORT_POSTFIX/inet = 127.0.0.1:$PORT_POSTFIX inet n - n - - smtpd"
  postconf -F '*/*/chroot = n'
  newaliases >/dev/null 2>&1
  postfix check || die "postfix check failed"
}

start_postfix() { # sets POSTFIX_PID, or returns 1
  if postfix status >/dev/null 2>&1; then
    note "a Postfix is already running here; not reconfiguring it - skipping the Postfix durable half"
    return 1
  fi
  port_free "$PORT_POSTFIX" || { note "port $PORT_POSTFIX busy; skipping Postfix"; return 1; }
  configure_postfix
  postsuper -d ALL >/dev/null 2>&1
  touch /var/log/postfix.log
  timeout 60 postfix start >/dev/null 2>&1 || { note "postfix start failed (see /var/log/postfix.log)"; return 1; }
  POSTFIX_STARTED=1
  POSTFIX_PID=$(tr -d ' ' </var/spool/postfix/pid/master.pid)
  wait_listening "$PORT_POSTFIX" "$POSTFIX_PID" || { note "postfix does not listen on $PORT_POSTFIX"; return 1; }
  POSTFIX_SENT_BEFORE=$(grep -c 'status=sent' /var/log/postfix.log || :)
}

stop_postfix() {
  [ "$POSTFIX_STARTED" = 1 ] || return 0
  postfix_drain
  local delivered
  delivered=$(( $(grep -c 'status=sent' /var/log/postfix.log || :) - POSTFIX_SENT_BEFORE ))
  note "postfix check: $delivered messages delivered to discard: in this run (queue then empty)"
  note "postfix queue on $(findmnt -no FSTYPE,SOURCE -T /var/spool/postfix)"
  timeout 30 postfix stop >/dev/null 2>&1
  POSTFIX_STARTED=0
}

start_smtp_sink() { # sets SINK_PID
  port_free "$PORT_POSTFIX_SINK" || die "port $PORT_POSTFIX_SINK busy"
  # -u nobody: smtp-sink refuses to run as root; -m: concurrent connections; 1024: backlog.
  "$SMTP_SINK" -u nobody -4 -m 1024 "127.0.0.1:$PORT_POSTFIX_SINK" 1024 >"$TMPD/smtp-sink.log" 2>&1 &
  SINK_PID=$!
  SERVER_PIDS+=("$SINK_PID")
  wait_listening "$PORT_POSTFIX_SINK" "$SINK_PID" || die "smtp-sink did not start: $(cat "$TMPD/smtp-sink.log")"
}

# ---- Outpost --------------------------------------------------------------------------
OUTPOST_READY=""
build_outpost() { # once; returns 1 if there is no usable binary
  case "$OUTPOST_READY" in yes) return 0 ;; no) return 1 ;; esac
  OUTPOST_READY=no
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    note "cargo build --release"
    timeout 1800 cargo build --release --quiet || { note "cargo build failed"; return 1; }
  fi
  [ -x "$OUTPOST_BIN" ] || { note "no $OUTPOST_BIN"; return 1; }
  OUTPOST_READY=yes
}

# start_outpost NAME PORT FLAGS... : sets OUTPOST_PID, or returns 1
start_outpost() {
  local name=$1 port=$2; shift 2
  build_outpost || return 1
  port_free "$port" || { note "port $port busy"; return 1; }
  local dir=$DATA_ROOT/$name
  mkdir -p "$dir"
  "$OUTPOST_BIN" serve --data-dir "$dir" --smtp "127.0.0.1:$port" \
    --submissions off --relay-networks 127.0.0.0/8 --hostname bench.local \
    --max-messages-per-day 0 --max-recipients-per-day 0 \
    $OUTPOST_FLAGS "$@" >"$TMPD/outpost-$name.log" 2>&1 &
  OUTPOST_PID=$!
  SERVER_PIDS+=("$OUTPOST_PID")
  if ! wait_listening "$port" "$OUTPOST_PID"; then
    note "outpost ($name) did not start; its output:"
    sed 's/^/#   /' "$TMPD/outpost-$name.log" | head -20
    return 1
  fi
  note "outpost ($name) pid $OUTPOST_PID on 127.0.0.1:$port, data in $dir ($(findmnt -no FSTYPE -T "$dir"))"
}


# ---- modes ------------------------------------------------------------------------------
mode_sink() {
  echo; note "== sink: Postfix smtp-sink vs outpost serve --sink (no disk), smtp-source -d -s $SESSIONS"
  local pairs=() size
  if side postfix; then install_postfix; start_smtp_sink; pairs+=("postfix $PORT_POSTFIX_SINK $SINK_PID"); fi
  if side outpost && start_outpost sink "$PORT_OUTPOST_SINK" --submission off --sink; then
    pairs+=("outpost $PORT_OUTPOST_SINK $OUTPOST_PID")
  fi
  [ ${#pairs[@]} -gt 0 ] || return
  for size in $SIZES; do compare sink "$size" "${pairs[@]}"; done
  side outpost && [ -n "${OUTPOST_PID:-}" ] && stop_server "$OUTPOST_PID"
  OUTPOST_PID=""
  side postfix && stop_server "$SINK_PID"
}

mode_durable() {
  echo; note "== durable: Postfix (queue + fsync, discard:) vs outpost --transport example.net=discard"
  local pairs=() size
  if side postfix; then
    install_postfix
    start_postfix && pairs+=("postfix $PORT_POSTFIX $POSTFIX_PID")
  fi
  if side outpost && start_outpost durable "$PORT_OUTPOST" --submission off \
       --transport example.net=discard; then
    pairs+=("outpost $PORT_OUTPOST $OUTPOST_PID")
  fi
  [ ${#pairs[@]} -gt 0 ] || return
  for size in $SIZES; do compare durable "$size" "${pairs[@]}"; done
  side postfix && stop_postfix
  side outpost && [ -n "${OUTPOST_PID:-}" ] && stop_server "$OUTPOST_PID"
  OUTPOST_PID=""
}

# relay_latency SERVER SIZE LOG SKIP: p50/p99 of delay= over the status=sent lines of
# LOG after the first SKIP (this run's). Both servers write delay= in seconds from
# arrival in the queue to the next hop's 2xx (Postfix: delay=0.12, delays=a/b/c/d).
declare -A LATENCY=()  # "server size" -> "p50 p99" of each run, space separated
relay_latency() {
  local server=$1 size=$2 log=$3 skip=$4 p
  p=$(grep 'status=sent' "$log" | tail -n +$((skip + 1)) \
        | sed -n 's/.*[ ,]delay=\([0-9.]*\).*/\1/p' | sort -n \
        | awk '{v[NR]=$1} END{if (!NR) exit
                 i50=int(0.50*NR); if (i50<0.50*NR) i50++
                 i99=int(0.99*NR); if (i99<0.99*NR) i99++
                 printf "%.2f %.2f %d", v[i50], v[i99], NR}')
  [ -n "$p" ] || { note "relay latency $server $size: no delay= in $log"; return; }
  set -- $p
  note "relay latency $server $size: p50=${1}s p99=${2}s over $3 deliveries (queued -> next hop)"
  LATENCY["$server $size"]="${LATENCY["$server $size"]:-} $1/$2"
}

# The p50/p99 pair of the run whose p50 is the median, for the summary.
latency_median() { # SERVER SIZE
  echo "${LATENCY["$1 $2"]:-}" | tr ' ' '\n' | grep . | sort -t/ -k1,1n \
    | awk '{v[NR]=$0} END{if (NR) print v[int((NR+1)/2)]}'
}

mode_relay() {
  echo; note "== relay: end to end, Postfix (queue, smtp client) vs outpost --transport, both to smtp-sink"
  local pairs=() size next_hop="127.0.0.1:$PORT_POSTFIX_SINK"
  if side postfix || side outpost; then install_postfix; start_smtp_sink; fi
  if side postfix && start_postfix; then
    # From the queue to the next hop, as a smarthost: Postfix's smtp client with its
    # default concurrency (20 per destination) and connection cache.
    postconf -e "default_transport = smtp" "relay_transport = smtp" \
      "relayhost = [127.0.0.1]:$PORT_POSTFIX_SINK" "smtp_tls_security_level = none" \
      && postfix reload >/dev/null 2>&1 && sleep 1
    SENT_LOG[postfix]=/var/log/postfix.log
    pairs+=("postfix $PORT_POSTFIX $POSTFIX_PID")
  fi
  if side outpost && start_outpost relay "$PORT_OUTPOST" --submission off \
       --transport "example.net=$next_hop"; then
    SENT_LOG[outpost]=$TMPD/outpost-relay.log
    pairs+=("outpost $PORT_OUTPOST $OUTPOST_PID")
  fi
  [ ${#pairs[@]} -gt 0 ] || return
  for size in $SIZES; do compare relay "$size" "${pairs[@]}"; done
  side postfix && stop_postfix
  side outpost && [ -n "${OUTPOST_PID:-}" ] && stop_server "$OUTPOST_PID"
  OUTPOST_PID=""
  stop_server "$SINK_PID"
}

# outpost bench against one server; prints its result line prefixed with a label
bench_run() { # LABEL PORT ARGS...
  local label=$1 port=$2; shift 2
  local left; left=$(budget_left)
  [ "$left" -gt 10 ] || { note "budget exhausted, skipping $label"; return; }
  local limit=$((RUN_TIMEOUT < left - 5 ? RUN_TIMEOUT : left - 5))
  timeout $((limit + 10)) "$OUTPOST_BIN" bench --server "127.0.0.1:$port" --sessions "$SESSIONS" \
    --messages "$BENCH_MSGS" --duration-limit "$limit" "$@" >"$TMPD/bench.out" 2>&1
  local rc=$?
  local line; line=$(grep '^result ' "$TMPD/bench.out")
  # The generator prints its first few errors as "outpost bench: ..." lines.
  local why; why=$(grep -m1 '^outpost bench: session' "$TMPD/bench.out" | head -c 200)
  if [ -n "$line" ]; then echo "$label $line  # rc=$rc${why:+ first error: $why}"
  else echo "$label FAIL rc=$rc $(head -c 300 "$TMPD/bench.out" | tr '\n' ' ')"; fi
}

mode_loadgen() {
  side outpost || return
  echo; note "== loadgen: outpost bench against Outpost ($SESSIONS sessions x $BENCH_MSGS messages)"
  build_outpost || return
  # A user for AUTH PLAIN: address:SHA-512-crypt hash, as `openssl passwd -6` writes it.
  local pass=bench-pass-$RANDOM$RANDOM
  echo "$FROM:$(openssl passwd -6 "$pass")" >"$TMPD/users"
  local tls="--starttls --insecure --auth $FROM:$pass"
  local name port_smtp mode size
  for mode in sink durable; do
    local extra=(--sink); [ "$mode" = durable ] && extra=(--transport example.net=discard)
    port_smtp=$PORT_OUTPOST_SINK; [ "$mode" = durable ] && port_smtp=$PORT_OUTPOST
    name=bench-$mode
    start_outpost "$name" "$port_smtp" --submission "127.0.0.1:$PORT_OUTPOST_SUBMISSION" \
      --users "$TMPD/users" "${extra[@]}" || continue
    for size in $SIZES; do
      if [ "$mode" = sink ]; then
        bench_run "loadgen-$mode-plain" "$port_smtp" --size "$size"
        bench_run "loadgen-$mode-pipelining" "$port_smtp" --size "$size" --pipelining
        bench_run "loadgen-$mode-no-reuse" "$port_smtp" --size "$size" --no-reuse
      fi
      # shellcheck disable=SC2086 # $tls is a word list on purpose
      bench_run "loadgen-$mode-starttls-auth-pipelining" "$PORT_OUTPOST_SUBMISSION" \
        --size "$size" --pipelining $tls
      settle "$OUTPOST_PID"
    done
    stop_server "$OUTPOST_PID"
  done
}

mode_idle() {
  side outpost || return
  echo; note "== idle: $IDLE_CONNS idle connections held against Outpost"
  # One descriptor per connection on each side, plus headroom.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  local need=$((IDLE_CONNS + 100))
  [ "$(ulimit -n)" -ge "$need" ] || { note "fd limit $(ulimit -n) < $need; lower IDLE_CONNS"; return; }
  start_outpost idle "$PORT_OUTPOST_SINK" --submission off --sink \
    --max-connections $((IDLE_CONNS + 1000)) || return
  local base; base=$(awk '/^VmRSS/{print $2}' "/proc/$OUTPOST_PID/status")
  python3 - "$PORT_OUTPOST_SINK" "$IDLE_CONNS" "$OUTPOST_PID" "$base" <<'EOF'
import selectors, socket, sys, time
port, want, pid, base_kb = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
deadline = time.monotonic() + 120          # the whole step is bounded in time
socks, greeted, failed = [], 0, 0
sel = selectors.DefaultSelector()
def collect(timeout):
    global greeted
    for key, _ in sel.select(timeout):
        try:
            data = key.fileobj.recv(512)
        except OSError:
            data = b""
        sel.unregister(key.fileobj)
        if data.startswith(b"220"):
            greeted += 1
for i in range(want):
    if time.monotonic() > deadline:
        break
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        failed += 1
        s.close()
        continue
    s.setblocking(False)
    socks.append(s)
    sel.register(s, selectors.EVENT_READ)
    if i % 200 == 199:
        collect(0)                          # keep the greetings flowing
while greeted < len(socks) and time.monotonic() < deadline and sel.get_map():
    collect(1)
time.sleep(2)                               # let the server settle with every connection idle
def status(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0
rss, hwm, threads = status("VmRSS:"), status("VmHWM:"), status("Threads:")
per = (rss - base_kb) / max(greeted, 1)
print(f"idle-connections opened={len(socks)} greeted={greeted} failed={failed} "
      f"rss_mb={rss/1024:.1f} peak_rss_mb={hwm/1024:.1f} base_rss_mb={base_kb/1024:.1f} "
      f"per_conn_kb={per:.1f} threads={threads}")
for s in socks:
    s.close()
EOF
  stop_server "$OUTPOST_PID"
  note "goal: under 100 MB with 10,000 idle connections (Postfix would need one smtpd process each)"
}

# ---- outlook: one connection per message, STARTTLS + AUTH LOGIN --------------------------
DOVECOT_DIR=""
declare -A OUTLOOK=()   # "cert server" -> "sessions_per_s p50_ms p99_ms" (medians)

# Dovecot for Postfix's SASL: its own config and auth socket in a directory the
# postfix user can reach (TMPD is root's only); passdb is a passwd-file.
start_dovecot() { # USER PASSWORD_HASH; sets DOVECOT_DIR, or returns 1
  if ! command -v dovecot >/dev/null; then
    note "installing dovecot-core (apt-get)"
    timeout 600 apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq dovecot-core >"$TMPD/apt-dovecot.log" 2>&1 \
      || { tail -5 "$TMPD/apt-dovecot.log" | sed 's/^/#   /'; note "apt-get install dovecot-core failed"; return 1; }
  fi
  DOVECOT_DIR=$(mktemp -d /tmp/outpost-compare-dovecot.XXXXXX)
  chmod 755 "$DOVECOT_DIR"
  mkdir -p "$DOVECOT_DIR/run" "$DOVECOT_DIR/state"
  echo "$1:$2" >"$DOVECOT_DIR/passwd"
  chmod 644 "$DOVECOT_DIR/passwd"   # read by Dovecot's auth process (user dovecot)
  cat >"$DOVECOT_DIR/dovecot.conf" <<CONF
base_dir = $DOVECOT_DIR/run
state_dir = $DOVECOT_DIR/state
log_path = $DOVECOT_DIR/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $DOVECOT_DIR/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
CONF
  dovecot -c "$DOVECOT_DIR/dovecot.conf" 2>"$DOVECOT_DIR/start.log" \
    || { note "dovecot did not start: $(head -c 300 "$DOVECOT_DIR/start.log")"; return 1; }
  local i
  for i in $(seq 50); do [ -S "$DOVECOT_DIR/run/auth-postfix" ] && return 0; sleep 0.1; done
  note "dovecot has no auth socket"; return 1
}

stop_dovecot() { # the Dovecot this script started, then its directory
  [ -n "$DOVECOT_DIR" ] || return 0
  local pid i
  pid=$(cat "$DOVECOT_DIR/run/master.pid" 2>/dev/null)
  if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dovecot ]; then
    kill "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -rf "$DOVECOT_DIR"
  DOVECOT_DIR=""
}

# Postfix as a submission service: the durable setup, its listener requiring
# STARTTLS and SASL (Dovecot), relaying only for authenticated clients.
postfix_submission() { # CERT KEY
  postconf -e "smtpd_tls_chain_files = $2, $1" "smtpd_sasl_type = dovecot" \
    "smtpd_sasl_path = $DOVECOT_DIR/run/auth-postfix" "smtpd_sasl_security_options = noanonymous" \
    "smtpd_tls_loglevel = 0" || return 1
  postconf -Me "127.0.0.1:$PORT_POSTFIX/inet = 127.0.0.1:$PORT_POSTFIX inet n - n - - smtpd \
    -o syslog_name=postfix/submission -o smtpd_tls_security_level=encrypt \
    -o smtpd_tls_auth_only=yes -o smtpd_sasl_auth_enable=yes \
    -o smtpd_relay_restrictions=permit_sasl_authenticated,reject" || return 1
  postfix check && postfix reload >/dev/null 2>&1 && sleep 1
}

postfix_submission_off() { # back to the plain durable setup for later modes
  postconf -X smtpd_tls_chain_files smtpd_sasl_type smtpd_sasl_path \
    smtpd_sasl_security_options smtpd_tls_loglevel 2>/dev/null
}

make_cert() { # KIND DIR: a self-signed certificate and key, ecdsa (P-256) or rsa (2048)
  local kind=$1 dir=$2 newkey
  case "$kind" in
    ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
    *) newkey=(-newkey rsa:2048) ;;
  esac
  openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=bench.local \
    -addext subjectAltName=DNS:bench.local -keyout "$dir/$kind-key.pem" -out "$dir/$kind-cert.pem" \
    >/dev/null 2>&1
}

# Server-side full TLS 1.3 handshakes per second on one core, from the criterion
# bench (benches/tls_handshake.rs); run once if its results are missing.
handshakes_per_core() { # ecdsa_p256 | rsa_2048
  local est=$REPO/target/criterion/tls_handshake_$1/tls13_full/new/estimates.json
  if [ ! -f "$est" ] && [ "${SKIP_BUILD:-0}" != 1 ] && [ "$(budget_left)" -gt 300 ]; then
    note "cargo bench --bench tls_handshake (TLS handshake cost per core)"
    timeout 600 cargo bench --quiet --bench tls_handshake -- tls13_full >"$TMPD/tls_handshake.log" 2>&1 \
      || note "cargo bench --bench tls_handshake failed"
  fi
  [ -f "$est" ] || return 1
  python3 -c 'import json,sys; print("%.0f" % (1e9 / json.load(open(sys.argv[1]))["median"]["point_estimate"]))' "$est"
}

# One outlook run against one server: outpost bench, then its result recorded.
outlook_run() { # CERT SERVER PORT RUN PASSWORD
  local cert=$1 server=$2 port=$3 r=$4 pass=$5 line rate p50 p99
  ensure_out_dir
  BENCH_MSGS=$OUTLOOK_MSGS bench_run "outlook-$cert $server" "$port" --size 1024 --no-reuse \
    --starttls --insecure --auth-mechanism login --auth "$FROM:$pass" --tls-resumption off \
    --progress never --csv "$OUT_DIR/outlook-$cert-$server-$r.csv"
  line=$(grep '^result ' "$TMPD/bench.out") || return
  grep -q '^messages: .* 0 failed, 0 not attempted' "$TMPD/bench.out" \
    || note "outlook-$cert $server: not every session sent its message (see the rc and first error)"
  rate=$(sed -n 's/.* msgs_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  OUTLOOK_RUNS["$cert $server"]="${OUTLOOK_RUNS["$cert $server"]:-}$rate $p50 $p99
"
}
declare -A OUTLOOK_RUNS=()  # "cert server" -> one "rate p50 p99" line per run

mode_outlook() {
  echo; note "== outlook: $SESSIONS sessions x $OUTLOOK_MSGS connections each, one message per connection," \
    "EHLO STARTTLS EHLO AUTH LOGIN MAIL RCPT DATA QUIT, full TLS handshakes, durable (discard after the queue)"
  build_outpost || return
  local pass=bench-pass-$RANDOM$RANDOM hash cert r server port triple
  hash=$(openssl passwd -6 "$pass")
  echo "$FROM:$hash" >"$TMPD/outlook-users"
  local have_postfix=0 have_outpost=0
  if side postfix; then
    install_postfix
    if start_dovecot "$FROM" "$hash" && start_postfix; then have_postfix=1; fi
  fi
  for cert in ecdsa rsa; do
    make_cert "$cert" "$TMPD" || { note "openssl could not make the $cert certificate"; continue; }
    local triples=()
    if [ "$have_postfix" = 1 ]; then
      if postfix_submission "$TMPD/$cert-cert.pem" "$TMPD/$cert-key.pem"; then
        triples+=("postfix $PORT_POSTFIX $POSTFIX_PID")
      else
        note "postfix submission setup failed"
      fi
    fi
    have_outpost=0
    if side outpost && start_outpost "outlook-$cert" "$PORT_OUTPOST" --submission "127.0.0.1:$PORT_OUTPOST_SUBMISSION" \
         --users "$TMPD/outlook-users" --tls-cert "$TMPD/$cert-cert.pem" --tls-key "$TMPD/$cert-key.pem" \
         --transport example.net=discard \
       && wait_listening "$PORT_OUTPOST_SUBMISSION" "$OUTPOST_PID"; then
      triples+=("outpost $PORT_OUTPOST_SUBMISSION $OUTPOST_PID")
      have_outpost=1
    fi
    for r in $(seq "$RUNS"); do
      for triple in "${triples[@]}"; do
        read -r server port pid <<<"$triple"
        outlook_run "$cert" "$server" "$port" "$r" "$pass"
        settle "$pid"
        [ "$server" = postfix ] && postfix_drain
      done
    done
    [ "$have_outpost" = 1 ] && stop_server "$OUTPOST_PID"
    OUTPOST_PID=""
    for server in postfix outpost; do outlook_medians "$cert" "$server"; done
  done
  if [ "$have_postfix" = 1 ]; then stop_postfix; postfix_submission_off; fi
  stop_dovecot
  outlook_table
}

outlook_medians() { # CERT SERVER: medians of the runs into OUTLOOK and RAW (for ratios.csv)
  local runs=${OUTLOOK_RUNS["$1 $2"]:-} rate p50 p99
  [ -n "$runs" ] || return
  rate=$(awk '{print $1}' <<<"$runs" | grep . | median)
  p50=$(awk '{print $2}' <<<"$runs" | grep . | median)
  p99=$(awk '{print $3}' <<<"$runs" | grep . | median)
  OUTLOOK["$1 $2"]="$rate $p50 $p99"
  RAW["outlook-$1 $2 1024"]=$rate
  record_latency "outlook-$1" "$2" "$p50" "$p99"
}

outlook_table() {
  echo; note "== outlook (medians of $RUNS runs): sessions/s = connections that sent their message per second;"
  note "   latency = one whole session, connect to the reply to QUIT"
  printf '%-6s %-8s %12s %10s %10s %8s  %s\n' cert server sessions/s p50_ms p99_ms ratio goal
  local cert server o p ratio rate p50 p99 limit kind
  for cert in ecdsa rsa; do
    o=${OUTLOOK["$cert outpost"]:-}; p=${OUTLOOK["$cert postfix"]:-}
    for server in postfix outpost; do
      [ -n "${OUTLOOK["$cert $server"]:-}" ] || continue
      read -r rate p50 p99 <<<"${OUTLOOK["$cert $server"]}"
      ratio=-
      [ "$server" = outpost ] && [ -n "$p" ] && ratio=$(awk -v o="${o%% *}" -v p="${p%% *}" 'BEGIN{printf "%.2fx", (p > 0) ? o / p : 0}')
      printf '%-6s %-8s %12s %10s %10s %8s  %s\n' "$cert" "$server" "$rate" "$p50" "$p99" "$ratio" \
        "$([ "$server" = outpost ] && echo '>= 3x')"
    done
    [ -n "$o" ] || continue
    kind=ecdsa_p256; [ "$cert" = rsa ] && kind=rsa_2048
    if limit=$(handshakes_per_core "$kind"); then
      awk -v x="${o%% *}" -v l="$limit" -v n="$NCPU" -v k="$kind" 'BEGIN{
        printf "# Outpost reached %.0f sessions/s = %.0f%% of the %d-core handshake limit (%s: %d full TLS 1.3 handshakes/s per core, %d on %d cores)\n",
          x, 100 * x / (l * n), n, k, l, l * n, n }'
    else
      note "no handshake cost for $kind (cargo bench --bench tls_handshake)"
    fi
  done
}

# ---- results directory and charts ------------------------------------------------------------
ensure_out_dir() { # OUT_DIR, made on first use and kept after the run
  [ -n "$OUT_DIR" ] || OUT_DIR=$(mktemp -d /var/tmp/outpost-compare-results.XXXXXX)
  mkdir -p "$OUT_DIR"
}

# The relay delays of SIZE (p50/p99 medians, in seconds) as latency.csv rows, in ms.
record_relay_latency() { # SIZE
  local server m
  for server in postfix outpost; do
    m=$(latency_median "$server" "$1")
    [ -n "$m" ] || continue
    # shellcheck disable=SC2046 # two numbers, split on purpose
    record_latency "relay-$(($1 / 1024))K" "$server" \
      $(echo "$m" | awk -F/ '{printf "%.0f %.0f", $1 * 1000, $2 * 1000}')
  done
}

record_latency() { # BENCH SERVER P50_MS P99_MS: one row of latency.csv
  ensure_out_dir
  [ -f "$OUT_DIR/latency.csv" ] || echo "# bench,server,p50_ms,p99_ms" >"$OUT_DIR/latency.csv"
  echo "$1,$2,$3,$4" >>"$OUT_DIR/latency.csv"
}

goal_for() { # BENCH SIZE: the ratio Outpost aims at, if there is one
  case "$1:$2" in
    sink:1024) echo 1 ;; sink:65536) echo 2 ;; durable:1024) echo 5 ;; relay:*|outlook-*) echo 3 ;;
  esac
}

write_ratios_csv() { # every (bench, size) with medians for both servers
  local key bench server size p o
  echo "# label,bench,size,postfix,outpost,ratio,goal" >"$OUT_DIR/ratios.csv"
  for key in "${!RAW[@]}"; do
    read -r bench server size <<<"$key"
    [ "$server" = outpost ] || continue
    p=${RAW["$bench postfix $size"]:-}; o=${RAW[$key]}
    [ -n "$p" ] || continue
    awk -v b="$bench" -v s="$size" -v p="$p" -v o="$o" -v g="$(goal_for "$bench" "$size")" 'BEGIN{
      label = (s >= 1048576 && s % 1048576 == 0) ? s / 1048576 "M" : (s >= 1024 && s % 1024 == 0) ? s / 1024 "K" : s
      printf "%s %s,%s,%s,%s,%s,%.3f,%s\n", b, label, b, s, p, o, (p > 0) ? o / p : 0, g }'
  done | sort -t, -k2,2 -k3,3n >>"$OUT_DIR/ratios.csv"
}

install_gnuplot() {
  command -v gnuplot >/dev/null && return 0
  note "installing gnuplot-nox (apt-get)"
  timeout 600 apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq gnuplot-nox >"$TMPD/apt-gnuplot.log" 2>&1
  command -v gnuplot >/dev/null
}

# Charts from the CSV files; a missing or failing gnuplot costs the charts, not the run.
# shellcheck disable=SC2016 # $0, $6 and $7 in the plot commands are gnuplot's, not the shell's
draw_charts() {
  local rows; rows=$(grep -vc '^#' "$OUT_DIR/ratios.csv")
  [ "$rows" -gt 0 ] || [ -f "$OUT_DIR/latency.csv" ] || return 0
  install_gnuplot || { note "no gnuplot: no charts (the CSV files are there)"; return 0; }
  local common='set terminal pngcairo size 1000,560 font "sans,11"; set datafile separator ",";
    set style fill solid 0.85 border -1; set grid ytics; set key top left; set yrange [0:*]; set xtics nomirror'
  if [ "$rows" -gt 0 ]; then
    gnuplot -e "$common" -e 'set output "'"$OUT_DIR"'/ratios.png";
      set title "Outpost / Postfix, medians (higher is better; red: goal, dashed: parity)";
      set ylabel "ratio (x)"; set boxwidth 0.6; set xtics rotate by -25;
      set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "gray40";
      f = "'"$OUT_DIR"'/ratios.csv";
      plot f using 0:6:xticlabels(1) with boxes lc rgb "#4472c4" title "ratio",
           f using ($0-0.35):7:(0.7):(0) with vectors nohead lw 4 lc rgb "#c00000" title "goal",
           f using 0:6:(sprintf("%.2fx", $6)) with labels offset 0,0.7 notitle' \
      2>>"$OUT_DIR/gnuplot.log" || note "gnuplot failed on ratios.png (see $OUT_DIR/gnuplot.log)"
  fi
  if [ -f "$OUT_DIR/latency.csv" ]; then
    gnuplot -e "$common" -e 'set output "'"$OUT_DIR"'/latency.png";
      set title "Latency percentiles, medians of the runs (lower is better)"; set ylabel "ms";
      set style data histograms; set style histogram clustered gap 1; set xtics rotate by -25;
      f = "'"$OUT_DIR"'/latency.csv";
      plot f using 3:xticlabels(strcol(1)." ".strcol(2)) lc rgb "#4472c4" title "p50",
           f using 4 lc rgb "#ed7d31" title "p99"' \
      2>>"$OUT_DIR/gnuplot.log" || note "gnuplot failed on latency.png (see $OUT_DIR/gnuplot.log)"
  fi
}

write_results() { # the end of summary: CSV files and charts in OUT_DIR
  ensure_out_dir
  write_ratios_csv
  draw_charts
  note "results: $OUT_DIR ($(cd "$OUT_DIR" && echo *))"
}

# ---- large: big messages, throughput and peak memory ---------------------------------------
LARGE_SESSIONS=${LARGE_SESSIONS:-50}
LARGE_SIZE=${LARGE_SIZE:-26214400}
LARGE_LOADS=${LARGE_LOADS:-"serial parallel"}
declare -A LARGE_MBS=() LARGE_RATES=() LARGE_PEAKS=()  # "load server" -> values of the runs, space separated

# A server's memory and CPU while it works, sampled every 100 ms from /proc until
# OUT.stop exists (or for 3 x RUN_TIMEOUT), then written to OUT as
#   <peak KiB> <processes at the peak> <CPU seconds> <peak PSS KiB>
# The memory is the sum of the resident sets (statm) of ROOT and of every process
# whose parent is ROOT, at one instant; the peak is the largest such sum. For Postfix
# ROOT is the master and its children are all of Postfix at work (an smtpd per
# session, a cleanup per message being written, qmgr, trivial-rewrite, discard,
# anvil...); for Outpost it is the one process (all its threads). Pages the processes
# share (program text, libraries) count once per process, so Postfix's sum is an upper
# bound of what it takes; the sum of their PSS (smaps_rollup: shared pages split among
# the processes sharing them), sampled alike, is the lower figure next to it. The CPU
# is utime + stime of those processes over the window (a process that exits loses at
# most its last 100 ms); tree_ticks cannot see live children where
# /proc/PID/task/*/children is missing, as on this machine kind.
start_sampler() { # OUT ROOT: sets SAMPLER_PID
  python3 - "$1" "$2" "$((RUN_TIMEOUT * 3))" "$HZ" <<'EOF' &
import os, sys, time
out, root, limit, hz = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
def stat(pid):  # (parent, utime + stime) from /proc/PID/stat, or None if gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[1], int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * page_kib
    except (OSError, IndexError, ValueError):
        return 0
def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(l.split()[1]) for l in f if l.startswith("Pss:")), 0)
    except (OSError, IndexError, ValueError):
        return 0
peak, procs, peak_pss, first, last = 0, 0, 0, None, {}
deadline = time.monotonic() + limit
while not os.path.exists(out + ".stop") and time.monotonic() < deadline:
    seen = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            s = stat(pid)
            if s and (pid == root or s[0] == root):
                seen[pid] = s[1]
    if first is None:
        first = dict(seen)
        open(out + ".ready", "w").close()
    last.update(seen)
    total = sum(rss_kib(pid) for pid in seen)
    if total > peak:
        peak, procs = total, len(seen)
    peak_pss = max(peak_pss, sum(pss_kib(pid) for pid in seen))
    time.sleep(0.1)
ticks = sum(t - (first or {}).get(pid, 0) for pid, t in last.items())
with open(out, "w") as f:
    print(peak, procs, f"{ticks / hz:.1f}", peak_pss, file=f)
EOF
  SAMPLER_PID=$!
  SERVER_PIDS+=("$SAMPLER_PID")  # stopped on exit like the servers
  local i  # the load starts once the first sample is taken
  for i in $(seq 100); do [ -e "$1.ready" ] && break; sleep 0.05; done
  rm -f "$1.ready"
}

stop_sampler() { # OUT: ends the sampling, waits for OUT
  touch "$1.stop"
  wait "$SAMPLER_PID" 2>/dev/null
  rm -f "$1.stop"
  local pid kept=()
  for pid in "${SERVER_PIDS[@]}"; do [ "$pid" = "$SAMPLER_PID" ] || kept+=("$pid"); done
  SERVER_PIDS=("${kept[@]}")
}

# Messages of at least LARGE_SIZE octets a server logged after offset FROM of LOG:
# Postfix's qmgr ("size=" once per message queued), Outpost's "queued ... size=".
large_accepted() { # LOG FROM
  tail -c +$(($2 + 1)) "$1" 2>/dev/null | awk -v min="$LARGE_SIZE" '
    /postfix\/qmgr\[|: queued / {
      if (match($0, /size=[0-9]+/) && substr($0, RSTART + 5, RLENGTH - 5) + 0 >= min) n++
    }
    END { print n + 0 }'
}

# The load: LARGE_SESSIONS sessions, one message each, from smtp-source.
#   serial:   one smtp-source -s LARGE_SESSIONS -m LARGE_SESSIONS. It opens every
#             session at once but writes a whole message body before it turns to
#             another session, so the bodies cross the wire one after another
#             (1-3 messages in progress at a time); the servers' syncs overlap.
#   parallel: LARGE_SESSIONS smtp-source processes of one session each: all the
#             bodies arrive at the same time, which is what peak memory is about.
large_load() { # LOAD PORT TIMEOUT: runs the load; its output in source.out
  local load=$1 port=$2 tmo=$3 n=$LARGE_SESSIONS
  local args=(-4 -l "$LARGE_SIZE" -f "$FROM" -t "$TO" -M bench.client "127.0.0.1:$port")
  if [ "$load" = serial ]; then
    timeout "$tmo" "$SMTP_SOURCE" -d -s "$n" -m "$n" "${args[@]}" >"$TMPD/source.out" 2>&1
    return
  fi
  local i rc=0 pids=()
  for i in $(seq "$n"); do
    timeout "$tmo" "$SMTP_SOURCE" -s 1 -m 1 "${args[@]}" >"$TMPD/source.$i.out" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=$?; done
  cat "$TMPD"/source.*.out >"$TMPD/source.out"
  rm -f "$TMPD"/source.*.out
  return "$rc"
}

large_run() { # LOAD SERVER PORT PID LOG
  local load=$1 server=$2 port=$3 pid=$4 log=$5 n=$LARGE_SESSIONS bench=large-$1
  local left tmo b0 t0 b1 t1 w0 w1 rc secs from accepted peak procs cpu_s pss
  left=$(budget_left)
  if [ "$left" -le 30 ]; then note "budget exhausted, skipping $bench $server"; return; fi
  tmo=$RUN_TIMEOUT; [ "$left" -lt $((tmo + 20)) ] && tmo=$((left - 20))
  from=$(stat -c %s "$log" 2>/dev/null || echo 0)
  start_sampler "$TMPD/large.peak" "$pid"
  read -r b0 t0 < <(machine_ticks); w0=$(date +%s.%N)
  large_load "$load" "$port" "$tmo"
  rc=$?
  w1=$(date +%s.%N); read -r b1 t1 < <(machine_ticks)
  # The sampling goes on while the server finishes (Postfix empties its queue).
  if [ "$server" = postfix ]; then postfix_drain; else settle "$pid"; fi
  stop_sampler "$TMPD/large.peak"
  peak=0 procs=0 cpu_s=- pss=0
  [ -s "$TMPD/large.peak" ] && read -r peak procs cpu_s pss <"$TMPD/large.peak"
  # Outpost is one fresh process per run: its own high-water mark is exact.
  [ "$server" = outpost ] && peak=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status")
  accepted=$(large_accepted "$log" "$from")
  secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.3f", b-a}')
  if [ "$rc" -ne 0 ] || [ "$accepted" -ne "$n" ] || grep -qiE 'error|fatal|warning' "$TMPD/source.out"; then
    echo "$bench $server $LARGE_SIZE $n $secs FAIL  # rc=$rc accepted=$accepted $(head -c 300 "$TMPD/source.out" | tr '\n' ' ')"
    SOURCE_FAILED=$((SOURCE_FAILED + 1))
    return
  fi
  local rate mbs peak_mb busy how key="$load $server"
  rate=$(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.2f", n/s}')
  mbs=$(awk -v n="$n" -v z="$LARGE_SIZE" -v s="$secs" 'BEGIN{printf "%.1f", n*z/s/1e6}')
  peak_mb=$(awk -v k="$peak" 'BEGIN{printf "%.1f", k/1024}')
  busy=$(awk -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v ncpu="$NCPU" \
    'BEGIN{printf "%.0f", (t1 > t0) ? 100 * ncpu * (b1 - b0) / (t1 - t0) : 0}')
  how="VmHWM"; [ "$server" = postfix ] && how="sum of $procs processes' RSS, sampled"
  echo "$bench $server $LARGE_SIZE $n $secs $rate mb_per_s=$mbs peak_rss_mb=$peak_mb" \
    " # busy=$busy% server_cpu_s=$cpu_s (run and drain) peak=$how" \
    "peak_pss_mb=$(awk -v k="$pss" 'BEGIN{printf "%.1f", k/1024}')"
  LARGE_RATES[$key]="${LARGE_RATES[$key]:-} $rate"
  LARGE_MBS[$key]="${LARGE_MBS[$key]:-} $mbs"
  LARGE_PEAKS[$key]="${LARGE_PEAKS[$key]:-} $peak_mb"
}

large_median() { echo "$1" | tr ' ' '\n' | grep . | median; }
large_max() { echo "$1" | tr ' ' '\n' | grep . | sort -n | tail -1; }

mode_large() {
  echo; note "== large: $LARGE_SESSIONS sessions x one message of $LARGE_SIZE octets, both durable" \
    "(Postfix queue + discard:, outpost --transport example.net=discard), loads: $LARGE_LOADS"
  # smtp-source's -l counts the body with LF line ends: on the wire every 79 octets
  # gain a CR, and a header section comes first. The size limit leaves room for both.
  local limit=$((LARGE_SIZE + LARGE_SIZE / 8 + 1048576))
  local postfix_up=0 r load dir avail need_kib=$((LARGE_SESSIONS * (limit / 1024) * 2))
  side postfix && install_postfix
  # One load leaves at most LARGE_SESSIONS messages on each side (removed after it).
  for dir in /var/spool/postfix "$DATA_ROOT"; do
    avail=$(df --output=avail -k "$dir" 2>/dev/null | tail -1)
    if [ "${avail:-0}" -lt "$need_kib" ]; then
      note "skipping large: $((${avail:-0} / 1024)) MiB free under $dir, it needs $((need_kib / 1024)) MiB"
      return
    fi
  done
  if side postfix && start_postfix; then
    # Postfix refuses messages over 10 MB by default (message_size_limit).
    postconf -e "message_size_limit = $limit" && postfix reload >/dev/null 2>&1 && sleep 1 \
      && postfix_up=1
  fi
  for r in $(seq "$RUNS"); do
    for load in $LARGE_LOADS; do
      if [ "$postfix_up" = 1 ]; then
        large_run "$load" postfix "$PORT_POSTFIX" "$POSTFIX_PID" /var/log/postfix.log
        postsuper -d ALL >/dev/null 2>&1  # normally empty already; a failed run must not pile up
      fi
      # A fresh Outpost (and spool) per load: its VmHWM is this load's peak.
      if side outpost && start_outpost "large-$load-$r" "$PORT_OUTPOST" --submission off \
           --transport example.net=discard --max-message-size "$limit"; then
        large_run "$load" outpost "$PORT_OUTPOST" "$OUTPOST_PID" "$TMPD/outpost-large-$load-$r.log"
        stop_server "$OUTPOST_PID"
        OUTPOST_PID=""
        rm -rf "${DATA_ROOT:?}/large-$load-$r"
      fi
    done
  done
  local server key
  for load in $LARGE_LOADS; do
    for server in postfix outpost; do
      key="$load $server"
      [ -n "${LARGE_MBS[$key]:-}" ] || continue
      echo "large-$load-median $server $LARGE_SIZE $LARGE_SESSIONS - $(large_median "${LARGE_RATES[$key]}")" \
        "mb_per_s=$(large_median "${LARGE_MBS[$key]}") peak_rss_mb=$(large_max "${LARGE_PEAKS[$key]}")" \
        " # runs:${LARGE_MBS[$key]} MB/s"
    done
  done
  [ "$postfix_up" = 1 ] && stop_postfix
}

# The large rows of the summary: throughput and peak memory side by side.
summary_large() {
  [ ${#LARGE_MBS[@]} -gt 0 ] || return 0
  note "large: $LARGE_SESSIONS x $LARGE_SIZE octets; MB/s median of runs, peak RSS (MB) the largest"
  local load p o ratio
  for load in $LARGE_LOADS; do
    p=$(large_median "${LARGE_MBS[$load postfix]:-}")
    o=$(large_median "${LARGE_MBS[$load outpost]:-}")
    ratio=-
    [ -n "$p" ] && [ -n "$o" ] && ratio=$(awk -v o="$o" -v p="$p" 'BEGIN{printf "%.2fx", o/p}')
    printf '%-9s %8s %14s %14s %8s  %s\n' "large" "$load" "${p:--} MB/s" "${o:--} MB/s" "$ratio" ">= 1.0x"
    p=$(large_max "${LARGE_PEAKS[$load postfix]:-}")
    o=$(large_max "${LARGE_PEAKS[$load outpost]:-}")
    printf '%-9s %8s %14s %14s %8s  %s\n' "large" "$load" "${p:--} MB" "${o:--} MB" - "outpost < 100 MB"
  done
}

# ---- summary ------------------------------------------------------------------------------
summary() {
  echo
  note "== ratios (outpost msgs/s / postfix msgs/s, medians of $RUNS runs, $SESSIONS sessions, smtp-source -d)"
  printf '%-9s %8s %14s %14s %8s  %s\n' bench size postfix outpost ratio goal
  local bench size p o ratio goal
  for bench in sink durable relay; do
    for size in $SIZES; do
      p=${RAW["$bench postfix $size"]:-}
      o=${RAW["$bench outpost $size"]:-}
      [ -z "$p" ] && [ -z "$o" ] && continue
      ratio=-
      [ -n "$p" ] && [ -n "$o" ] && ratio=$(awk -v o="$o" -v p="$p" 'BEGIN{printf "%.2fx", o/p}')
      goal=$(goal_for "$bench" "$size")
      [ -n "$goal" ] && goal=">= ${goal}x"
      printf '%-9s %8s %14s %14s %8s  %s' "$bench" "$size" "${p:--}" "${o:--}" "$ratio" "$goal"
      # Relay rows: delay p50/p99 in seconds, queued -> delivered at the next hop.
      [ "$bench" = relay ] && printf '  p50/p99 s: postfix %s outpost %s' \
        "$(latency_median postfix "$size")" "$(latency_median outpost "$size")"
      echo
      [ "$bench" = relay ] && record_relay_latency "$size"
    done
  done
  summary_large
  note "machine: $NCPU cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(uname -r)"
  [ "$SOURCE_FAILED" -eq 0 ] || note "$SOURCE_FAILED smtp-source runs failed (see FAIL lines)"
  write_results
}

note "compare.sh $(date -u +%FT%TZ) modes:$MODES sides: $SIDES sessions=$SESSIONS sizes='$SIZES' runs=$RUNS"
echo "# bench server size msgs secs msgs_per_s  # busy=machine CPU server=server CPU (% of one core)"
for mode in $MODES; do
  "mode_$mode"
done
summary
exit 0
