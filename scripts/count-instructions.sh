#!/usr/bin/env bash
# Counts the instructions the server executes per request of one workload, under valgrind's
# callgrind: a figure that does not move with what else the machine runs (see
# docs/benchmarks.md, "How the profiles were taken").
#
#   scripts/count-instructions.sh SIXIN_BINARY SQLITE_FILE WORKLOAD [REQUESTS] [PORT]
#
# SQLITE_FILE is a database seeded by `sixin bench` (its hub user and peers); WORKLOAD is one
# of healthz, unread, fetch, sessions, send. Prints the instructions per request of the whole
# server process (user space: system calls are not counted) and leaves the profile
# (`callgrind_annotate` reads it) in /tmp/sixin-callgrind/WORKLOAD.
set -euo pipefail
bin=$1 db=$2 workload=$3 n=${4:-300} port=${5:-18123}
out=/tmp/sixin-callgrind/$workload
rm -rf "$out" && mkdir -p "$out"
base=http://127.0.0.1:$port
hub=1000000000
SIXIN_ADMIN_TOKEN=sixin-bench-admin SIXIN_SENDS_PER_SECOND=1000000000 \
  SIXIN_DAILY_SENDS_TO_STRANGERS=1000000000 SIXIN_LOG=warn \
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  "$bin" serve --listen "127.0.0.1:$port" --database "sqlite://$db" >"$out/server.log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf -o /dev/null "$base/healthz" && break; sleep 0.5; done
login=$(curl -sf -X POST -H "Authorization: Bearer sixin-bench-admin" "$base/admin/v1/users/$hub/logins")
sessdata=$(sed -E 's/.*"SESSDATA":"([^"]*)".*/\1/' <<<"$login")
csrf=$(sed -E 's/.*"bili_jct":"([^"]*)".*/\1/' <<<"$login")
# A curl config of `count` requests; talkers and seqnos from a fixed seed, so runs compare.
requests() {
  local count=$1
  RANDOM=$2
  for ((k = 0; k < count; k++)); do
    local talker=$((hub + 1 + RANDOM % 1000)) end=$((2 + RANDOM % 90))
    case $workload in
      healthz) echo "url = \"$base/healthz\"" ;;
      unread) echo "url = \"$base/session_svr/v1/session_svr/single_unread\"" ;;
      fetch) echo "url = \"$base/svr_sync/v1/svr_sync/fetch_session_msgs?talker_id=$talker&session_type=1&size=20&end_seqno=$end\"" ;;
      sessions) echo "url = \"$base/session_svr/v1/session_svr/get_sessions?session_type=1&size=20\"" ;;
      send)
        echo "url = \"$base/web_im/v1/web_im/send_msg\""
        echo "data = \"msg%5Bsender_uid%5D=$hub&msg%5Breceiver_id%5D=$talker&msg%5Breceiver_type%5D=1&msg%5Bmsg_type%5D=1&msg%5Bdev_id%5D=B3BE8D5A-0E6B-4C3F-9C25-5C5D2B1A7E11&msg%5Btimestamp%5D=1700000000&msg%5Bcontent%5D=%7B%22content%22%3A%22bench%22%7D&csrf=$csrf\""
        ;;
      *) echo "unknown workload $workload" >&2; exit 2 ;;
    esac
    echo "output = \"/dev/null\""
    echo "header = \"Cookie: SESSDATA=$sessdata\""
    if ((k + 1 < count)); then echo next; fi
  done
}
requests 200 1 >"$out/warm.cfg"
requests "$n" 2 >"$out/run.cfg"
curl -sf -K "$out/warm.cfg"
callgrind_control --zero $vg >/dev/null 2>&1
curl -sf -K "$out/run.cfg"
callgrind_control --dump $vg >/dev/null 2>&1
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out"/callgrind.out.*)
echo "$workload: $((total / n)) instructions per request ($n requests, $total in all)"
