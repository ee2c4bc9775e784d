#!/bin/sh
# Prints each measured function's median throughput as a ratio of the
# references measured in the same run over the same bytes (memchr_lf, copy).
# Usage: cargo bench --bench proto 2>&1 | tee run.txt; sh benches/ratios.sh run.txt
set -eu
awk '
function gib(v, u) {
    if (u == "TiB/s") return v * 1024
    if (u == "GiB/s") return v
    if (u == "MiB/s") return v / 1024
    if (u == "KiB/s") return v / 1048576
    return v / 1073741824
}
# The id starts the line (before `time:` or alone when it is long).
/^[a-z_0-9]+\/[^ ]*/ { name = $1; change = 0 }
# Criterion compares with the previous run under `change:`; not a throughput.
/change:/ { change = 1 }
/thrpt:/ && !change {
    # thrpt:  [low unit median unit high unit]
    value = gib($4 + 0, $5)
    n = split(name, part, "/")
    # Ids are group/function or group/function/size; the reference of the
    # same group (and size) is the one compared with.
    if (n == 2) { key = part[1]; fn = part[2] }
    else { key = part[1] "/" part[2] "/" part[4]; fn = part[3] }
    thrpt[key, fn] = value
    if (!(key in seen)) { seen[key] = 1; order[++count] = key }
    if (fn != "memchr_lf" && fn != "copy") subject[key] = fn
}
END {
    printf "%-28s %-22s %10s %10s %10s %9s %9s\n", "group", "function", "GiB/s", "memchr", "copy", "x memchr", "x copy"
    for (i = 1; i <= count; i++) {
        key = order[i]; fn = subject[key]
        s = thrpt[key, fn]; m = thrpt[key, "memchr_lf"]; c = thrpt[key, "copy"]
        printf "%-28s %-22s %10.3f %10.3f %10.3f %9.3f %9.3f\n", key, fn, s, m, c, s / m, s / c
    }
}' "$1"
