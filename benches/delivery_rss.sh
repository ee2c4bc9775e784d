#!/usr/bin/env bash
# Peak memory of delivery: COUNT messages of SIZE_MIB MiB delivered at once,
# each to its own domain (one connection per destination at a time, so
# distinct domains are what makes them concurrent), over loopback to a
# second `outpost serve --sink`.
#
#   benches/delivery_rss.sh [BINARY]        (default: target/release/outpost)
#   COUNT=20 SIZE_MIB=25 benches/delivery_rss.sh target/release/outpost
#
# Steps: (1) the server under test accepts the messages while the sink is
# down, so each is deferred once; (2) it is stopped, the sink is started and
# `outpost queue flush` makes every message due; (3) the server starts again,
# delivers all of them at start-up, and its VmHWM (peak resident set, from
# /proc/PID/status) is read once the queue is empty. Only step 3 is
# measured: a fresh process that does nothing but deliver.
#
# Needs python3 (smtplib) and about COUNT x SIZE_MIB MiB of disk in $TMPDIR.
# Everything listens on 127.0.0.1 and is removed at the end.
set -euo pipefail

BIN=${1:-target/release/outpost}
COUNT=${COUNT:-20}
SIZE_MIB=${SIZE_MIB:-25}
PORT_SERVER=${PORT_SERVER:-42525}
PORT_SINK=${PORT_SINK:-42526}
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/outpost-rss.XXXXXX")
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMPD"
}
trap cleanup EXIT

wait_listening() { # PORT PID
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

transports=()
for i in $(seq 1 "$COUNT"); do
  transports+=(--transport "d$i.test=127.0.0.1:$PORT_SINK")
done
server_args=(serve --data-dir "$TMPD/server" --hostname server.test
  --smtp "127.0.0.1:$PORT_SERVER" --submission off --submissions off
  --max-message-size "$((SIZE_MIB + 1))MiB" --max-outbound-connections "$COUNT"
  --max-messages-per-day 0 --max-recipients-per-day 0
  "${transports[@]}")

# (1) Accept COUNT messages; with the sink down each is deferred once.
"$BIN" "${server_args[@]}" >"$TMPD/accept.out" 2>"$TMPD/accept.log" &
server=$!
PIDS+=("$server")
wait_listening "$PORT_SERVER" "$server" || { cat "$TMPD/accept.log"; exit 1; }
python3 - "$PORT_SERVER" "$COUNT" "$SIZE_MIB" <<'EOF'
import smtplib, sys
port, count, mib = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
line = b"x" * 76 + b"\r\n"
dotted = b"." + b"y" * 75 + b"\r\n"   # every tenth line needs dot-stuffing
head = b"From: a@server.test\r\nSubject: big\r\n\r\n"
lines = (mib * 1024 * 1024 - 64 * 1024) // len(line)
body = head + b"".join(dotted if i % 10 == 0 else line for i in range(lines))
with smtplib.SMTP("127.0.0.1", port) as s:
    for i in range(1, count + 1):
        s.sendmail("a@server.test", [f"r@d{i}.test"], body)
EOF
for _ in $(seq 1 600); do
  [ "$(grep -c 'status=deferred' "$TMPD/accept.log" || true)" -ge "$COUNT" ] && break
  sleep 0.1
done
kill -TERM "$server"
wait "$server" || true

# (2) The sink, and every message due now.
"$BIN" serve --sink --data-dir "$TMPD/sink" --hostname sink.test \
  --smtp "127.0.0.1:$PORT_SINK" --submission off --submissions off \
  --max-message-size 1GiB >"$TMPD/sink.out" 2>"$TMPD/sink.log" &
sink=$!
PIDS+=("$sink")
wait_listening "$PORT_SINK" "$sink" || { cat "$TMPD/sink.log"; exit 1; }
"$BIN" queue flush --data-dir "$TMPD/server" >/dev/null

# (3) Deliver everything at start-up; read the peak once the queue is empty.
start=$(date +%s.%N)
"$BIN" "${server_args[@]}" >"$TMPD/deliver.out" 2>"$TMPD/deliver.log" &
server=$!
PIDS+=("$server")
for _ in $(seq 1 6000); do
  compgen -G "$TMPD/server/queue/*.msg" >/dev/null || break
  sleep 0.05
done
end=$(date +%s.%N)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")
sent=$(grep -c 'status=sent' "$TMPD/deliver.log" || true)
left=$(compgen -G "$TMPD/server/queue/*.msg" | wc -l || true)
echo "binary=$BIN count=$COUNT size=${SIZE_MIB}MiB delivered=$sent left=$left" \
  "seconds=$(echo "$end - $start" | bc) VmHWM=${hwm}kB ($((hwm / 1024)) MiB)"
