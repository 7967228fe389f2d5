# Sourced by the bench/peers wrappers. Needs PEERS_DIR set to bench/peers.
# shellcheck shell=bash

peers_log() { echo "bench/peers: $*" >&2; }
peers_die() { local code="$1"; shift; echo "bench/peers: error: $*" >&2; exit "$code"; }

# Java options for the peers' and tools' JVMs. Heap capped so peak RSS reflects the job rather than
# the JVM's default (1/4 of RAM); override with PEER_JAVA_OPTS.
PEER_JAVA_OPTS="${PEER_JAVA_OPTS:--Xms256m -Xmx1g -XX:+UseG1GC}"
SLF4J_OPTS="-Dorg.slf4j.simpleLogger.defaultLogLevel=${PEER_LOG_LEVEL:-warn} -Dorg.slf4j.simpleLogger.logFile=System.err -Dorg.slf4j.simpleLogger.showDateTime=true"

# Build (if needed) and print the java command line prefix for the shared tools (KillTest, CountRecords).
tools_java() { # CLASS args...
  "$PEERS_DIR/lib/build-java" "$PEERS_DIR/common" peer-tools.jar
  local cls="$1"; shift
  # shellcheck disable=SC2086
  java -Xmx512m $SLF4J_OPTS -cp "$PEERS_DIR/common/target/peer-tools.jar:$PEERS_DIR/common/target/lib/*" \
    "dev.tidemark.bench.peers.$cls" "$@"
}

# Splits "$@" into KILL_ARGS (options of the kill test) and PEER_ARGS (everything else), and
# notes the values the kill test needs. Sets KILL_TEST=1 if --kill-test is present.
split_kill_args() {
  KILL_TEST=0 KILL_ARGS=() PEER_ARGS=() ARG_BOOTSTRAP="" ARG_OUTPUT=""
  while (($#)); do
    case "$1" in
      --kill-test) KILL_TEST=1; shift ;;
      --kills|--records-before-kill|--settle-ms) KILL_ARGS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
      --kill-timeout-s) KILL_ARGS+=(--timeout-s "${2:?$1 needs a value}"); shift 2 ;;
      --bootstrap) ARG_BOOTSTRAP="${2:-}"; PEER_ARGS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
      --output) ARG_OUTPUT="${2:-}"; PEER_ARGS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
      *) PEER_ARGS+=("$1"); shift ;;
    esac
  done
}
