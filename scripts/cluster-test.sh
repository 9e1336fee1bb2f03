#!/usr/bin/env bash
# cluster-test.sh: bring up a Magpie cluster on this machine as separate
# processes and either run the fault test with the checker, or leave the
# cluster up for you to poke at.
#
#   scripts/cluster-test.sh [--port-base N] [--seed N] [test]   # fault run + checker (≈4 minutes)
#   scripts/cluster-test.sh [--port-base N] up       # start the topology and wait for Ctrl-C
#   scripts/cluster-test.sh [--port-base N] w5       # benchmark W5: cross-node latency and throughput
#   scripts/cluster-test.sh [--port-base N] w6       # benchmark W6: kill -9 of a gateway with 16 k connections
#
# Topology: 3 nats-server processes (built from the nats-server module in
# go.mod) forming a JetStream cluster, 2 `magpie logic` and 3 `magpie
# gateway` processes, and a private PostgreSQL server made with initdb in a
# temporary directory (the newest /usr/lib/postgresql/*/bin; as root it
# runs as the postgres account). The machine's own PostgreSQL is never
# used, so the restart fault cannot touch it. Everything started is
# stopped on exit.
#
# --port-base N: every port the run listens on comes from N … N+999
# (skipping ports in use); default: free ports anywhere.
# --seed N: draw the mixed fault schedule (scenario 12) from N, to replay
# a run; default: a new seed, printed.
#
# Environment:
#   MAGPIE_CLUSTER_USERS   users in the fault run (default 16; 2 devices each)
#   MAGPIE_CLUSTER_RATE    messages per second per device (default 4)
#   MAGPIE_CLUSTER_SETTLE  seconds of traffic between faults (default 4)
#   MAGPIE_CLUSTER_MIXED   faults in the mixed schedule (default 6)
#   MAGPIE_CLUSTER_SOAK    seconds of the soak after it (default 30)
#   MAGPIE_CLUSTER_STORM   connections dropped at once in the reconnect storm (default 1000)
#   MAGPIE_CLUSTER_SLOW_BURST  messages to the slow consumer's user (default 1200)
#   MAGPIE_CLUSTER_CHURN   seconds of multi-device churn, scenario 11 (default 20)
#   MAGPIE_CLUSTER_MQTT    users with one MQTT device each (persistent sessions; default 4)
#   MAGPIE_CLUSTER_TIMEOUT the fault run's go test -timeout (default 30m); the run itself
#                          stops 2 minutes before it, with its report
#   MAGPIE_W5_RATE, MAGPIE_W5_PAIRS, MAGPIE_W6_CONNS   benchmark sizes (docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
# The e2e cluster tests run only with the PostgreSQL tests enabled; they
# start their own server and never connect to this one.
export MAGPIE_TEST_POSTGRES="${MAGPIE_TEST_POSTGRES:-unused}"

portbase=0
seed=0
while [ $# -gt 0 ]; do
	case "$1" in
	--port-base)
		[ $# -ge 2 ] || { echo "$0: --port-base needs a port number" >&2; exit 2; }
		portbase="$2"
		shift 2
		;;
	--port-base=*)
		portbase="${1#*=}"
		shift
		;;
	--seed)
		[ $# -ge 2 ] || { echo "$0: --seed needs a number" >&2; exit 2; }
		seed="$2"
		shift 2
		;;
	--seed=*)
		seed="${1#*=}"
		shift
		;;
	-*)
		echo "$0: unknown flag $1" >&2
		exit 2
		;;
	*) break ;;
	esac
done
case "$portbase" in
'' | *[!0-9]*) echo "$0: --port-base must be a port number, got '$portbase'" >&2; exit 2 ;;
esac
if [ "$portbase" -ne 0 ] && { [ "$portbase" -lt 1024 ] || [ "$portbase" -gt 64535 ]; }; then
	echo "$0: --port-base must be in 1024-64535 (the run uses 1000 ports from it), got $portbase" >&2
	exit 2
fi
export MAGPIE_CLUSTER_PORT_BASE="$portbase"
case "$seed" in
'' | *[!0-9]*) echo "$0: --seed must be a positive number, got '$seed'" >&2; exit 2 ;;
esac
export MAGPIE_CLUSTER_SEED="$seed"

case "${1:-test}" in
test)
	# The fault run is the e2e test: one code path for people and CI.
	exec go test -tags e2e -count=1 -v -timeout "${MAGPIE_CLUSTER_TIMEOUT:-30m}" -run 'TestClusterFaults$' ./e2e/
	;;
w5 | w6)
	# The benchmarks are e2e tests too, run only on request; figures are
	# logged, never asserted (docs/benchmarks.md records them).
	export MAGPIE_CLUSTER_BENCH="$1"
	exec go test -tags e2e -count=1 -v -timeout 30m -run "TestCluster${1^^}\$" ./e2e/
	;;
up)
	;;
*)
	echo "usage: $0 [--port-base N] [--seed N] [test|up|w5|w6]" >&2
	exit 2
	;;
esac

# --- up: start the topology by hand -------------------------------------
dir="$(mktemp -d /tmp/magpie-cluster.XXXXXX)"
echo "working directory: $dir (logs: $dir/*.log)"
go build -o "$dir/magpie" ./cmd/magpie
go build -o "$dir/nats-server" github.com/nats-io/nats-server/v2

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$pgbin/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin" >&2; exit 1; }
pgdir="$(mktemp -d /tmp/magpie-pg.XXXXXX)"
asuser=()
if [ "$(id -u)" -eq 0 ]; then
	# PostgreSQL refuses to run as root.
	chown postgres: "$pgdir"
	asuser=(runuser -u postgres --)
fi

pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
	sleep 2
	for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
	if [ -f "$pgdir/data/postmaster.pid" ]; then
		"${asuser[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" stop -m fast -w >/dev/null 2>&1 || true
	fi
	rm -rf "$pgdir"
	echo "stopped; logs kept in $dir"
}
trap cleanup EXIT INT TERM

start() { # name, command...
	local name="$1"
	shift
	setsid "$@" >"$dir/$name.log" 2>&1 &
	pids+=($!)
}

# Ports: from --port-base upwards, or free ones anywhere; never one in use.
used=" "
next="$portbase"
port() { # sets P to a free loopback port not handed out before
	while :; do
		if [ "$portbase" -ne 0 ]; then
			P=$next
			next=$((next + 1))
			[ "$P" -lt $((portbase + 1000)) ] || { echo "no free port left in $portbase-$((portbase + 999))" >&2; exit 1; }
		else
			P=$((20000 + RANDOM % 30000))
		fi
		case "$used" in *" $P "*) continue ;; esac
		if ! (echo >"/dev/tcp/127.0.0.1/$P") 2>/dev/null; then
			used="$used$P "
			return
		fi
	done
}
port
pgport=$P
"${asuser[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
"${asuser[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w \
	-o "-p $pgport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pgdir -c max_connections=300" start >/dev/null
db=magpie
dburl="postgres://postgres@127.0.0.1:$pgport/$db?sslmode=disable"
psql "postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable" -qc "CREATE DATABASE $db"
declare -a np cp lp gp tp
for i in 0 1 2; do
	port; np[i]=$P; port; cp[i]=$P; port; gp[i]=$P; port; tp[i]=$P
done
for i in 0 1; do port; lp[i]=$P; done
routes="nats://127.0.0.1:${cp[0]},nats://127.0.0.1:${cp[1]},nats://127.0.0.1:${cp[2]}"
natsurls="nats://127.0.0.1:${np[0]},nats://127.0.0.1:${np[1]},nats://127.0.0.1:${np[2]}"
for i in 0 1 2; do
	start "nats-$i" "$dir/nats-server" -a 127.0.0.1 -p "${np[i]}" --server_name "nats-$i" \
		--cluster_name magpie --cluster "nats://127.0.0.1:${cp[i]}" --routes "$routes" \
		-js -sd "$dir/nats-$i"
done
secret="$(head -c24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
common=(--nats "$natsurls" --replicas 3 --registry-ttl 5s)
for i in 0 1; do
	start "logic-$i" "$dir/magpie" logic --http "127.0.0.1:${lp[i]}" --data "$dir/logic-$i" \
		--store "$dburl" --token-secret "$secret" "${common[@]}"
done
for i in 0 1 2; do
	start "gw-$i" "$dir/magpie" gateway --gateway-id "gw-$i" --http "127.0.0.1:${gp[i]}" \
		--tcp "127.0.0.1:${tp[i]}" --data "$dir/gw-$i" --drain-timeout 10s "${common[@]}"
done
for p in "${lp[@]}" "${gp[@]}"; do
	ok=
	for _ in $(seq 1 300); do
		if curl -fs "http://127.0.0.1:$p/healthz" >/dev/null 2>&1; then ok=1; break; fi
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "a node on port $p did not become healthy; see $dir/*.log" >&2; exit 1; }
done
cat <<EOF

Cluster up.
  logic (HTTP API):  http://127.0.0.1:${lp[0]}  http://127.0.0.1:${lp[1]}
  gateways (TCP):    127.0.0.1:${tp[0]} ${tp[1]} ${tp[2]}
  gateways (WS):     ws://127.0.0.1:${gp[0]}/v1/ws ws://127.0.0.1:${gp[1]}/v1/ws ws://127.0.0.1:${gp[2]}/v1/ws
  NATS:              $natsurls
  database:          $dburl

Try:  $dir/magpie chat --server http://127.0.0.1:${lp[0]} --user alice --register
Faults to try in another shell (each process leads its own process group):
  kill -9 <gateway pid>        kill -TERM <gateway pid> (drain)
  ${asuser[*]} $pgbin/pg_ctl -D $pgdir/data restart -m immediate     (the run's own PostgreSQL)
Ctrl-C stops everything, the private PostgreSQL included, and deletes its data.
EOF
wait
