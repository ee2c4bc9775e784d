#!/usr/bin/env bash
# Peak memory of the accepting side with big messages: how much the server
# holds while many clients send large messages at once. Two loads, each
# against a fresh `outpost serve` whose mail for example.net is discarded
# after it is spooled (so only accepting is measured, not a Maildir):
#
#   slow: SLOW_SESSIONS (500) connections, each sending a SLOW_MB (5) MB
#         message in 64 KiB pieces spread over SLOW_SECONDS (20) s, all at
#         the same time;
#   fast: FAST_SESSIONS (50) connections, each sending FAST_MIB (25) MiB
#         as fast as it can, all at the same time.
#
# For each load it prints the server's VmHWM (peak resident set, from
# /proc/PID/status) and how many messages were acknowledged.
#
#   benches/accept_rss.sh [BINARY...]     (default: target/release/outpost)
#   benches/accept_rss.sh /tmp/outpost-old target/release/outpost
#
# With several binaries the loads run for each in turn, for a side-by-side
# table. Needs python3 and about SLOW_SESSIONS x SLOW_MB of free disk in
# $TMPDIR. Everything listens on 127.0.0.1, every load is bounded by
# LOAD_TIMEOUT (120 s), and all is removed at the end.
set -euo pipefail

BINS=("$@")
[ ${#BINS[@]} -eq 0 ] && BINS=(target/release/outpost)
SLOW_SESSIONS=${SLOW_SESSIONS:-500}
SLOW_MB=${SLOW_MB:-5}
SLOW_SECONDS=${SLOW_SECONDS:-20}
FAST_SESSIONS=${FAST_SESSIONS:-50}
FAST_MIB=${FAST_MIB:-25}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-120}
PORT=${PORT:-42527}
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/outpost-accept-rss.XXXXXX")
SERVER=""

cleanup() {
  [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMPD"
}
trap cleanup EXIT
ulimit -n 4096 2>/dev/null || true

# The load: SESSIONS connections send one message of SIZE octets each, in
# 64 KiB pieces, taking about SECONDS (0: as fast as possible). Prints how
# many were answered 250.
cat >"$TMPD/load.py" <<'PY'
import asyncio, sys
port, sessions, size, seconds, timeout = (int(a) for a in sys.argv[1:6])
line = b"x" * 76 + b"\r\n"
dotted = b".." + b"y" * 74 + b"\r\n"   # every tenth line dot-stuffed on the wire
head = b"From: a@example.org\r\nSubject: big\r\n\r\n"
body = head + b"".join(dotted if i % 10 == 0 else line for i in range(size // len(line)))
PIECE = 64 * 1024
pieces = [body[i:i + PIECE] for i in range(0, len(body), PIECE)]
pause = seconds / len(pieces) if seconds else 0

async def reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line

async def session(ready, go):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await reply(reader)
    for command in (b"EHLO load.test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>", b"DATA"):
        writer.write(command + b"\r\n")
        await reply(reader)
    ready.append(1)
    await go.wait()
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    writer.write(b".\r\n")
    answer = await reply(reader)
    writer.write(b"QUIT\r\n")
    writer.close()
    return answer.startswith(b"250")

async def main():
    ready, go = [], asyncio.Event()
    tasks = [asyncio.create_task(session(ready, go)) for _ in range(sessions)]
    while len(ready) < sessions and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    go.set()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)
    print(sum(1 for d in done if d is True))

asyncio.run(main())
PY

peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

run_load() { # BINARY NAME SESSIONS SIZE SECONDS
  local bin=$1 name=$2 data="$TMPD/data"
  rm -rf "$data"
  "$bin" serve --data-dir "$data" --hostname bench.test --local-domains bench.test \
    --smtp "127.0.0.1:$PORT" --submission off --submissions off \
    --max-connections 2000 --max-connections-per-ip 2000 \
    --max-messages-per-day 0 --max-recipients-per-day 0 \
    --transport example.net=discard >"$TMPD/out" 2>"$TMPD/log" &
  SERVER=$!
  for _ in $(seq 1 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break
    sleep 0.05
  done
  local acked
  acked=$(timeout $((LOAD_TIMEOUT + 10)) python3 "$TMPD/load.py" "$PORT" "$3" "$4" "$5" "$LOAD_TIMEOUT" || echo "failed")
  local peak
  peak=$(peak_kib "$SERVER")
  kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  printf '%-28s %-5s %4s x %5s MB  acked %5s  peak RSS %6d MB\n' \
    "$(basename "$bin")" "$name" "$3" "$(( $4 / 1000000 ))" "$acked" "$(( peak / 1024 ))"
}

for bin in "${BINS[@]}"; do
  run_load "$bin" slow "$SLOW_SESSIONS" "$((SLOW_MB * 1000 * 1000))" "$SLOW_SECONDS"
  run_load "$bin" fast "$FAST_SESSIONS" "$((FAST_MIB * 1024 * 1024))" 0
done
