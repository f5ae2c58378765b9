#!/usr/bin/env bash
# Apache Kafka 4.4.0 (Apache-2.0) from Maven Central: the broker's jars and what they need at
# run time, fetched once by scripts/jars.sh into $HOME/.cache/rmicro/jars/kafka. Prints that
# directory on its last line. The kafka tests run it in KRaft mode (no ZooKeeper), one process
# being both broker and controller: they format its storage with
#   java -cp '<dir>/*' kafka.tools.StorageTool format --config server.properties --cluster-id <id>
# and then start it as
#   java -cp '<dir>/*' kafka.Kafka server.properties
# slf4j-simple (the 1.7 line, as Kafka's slf4j-api is 1.7.36) gives the broker a log, on its
# standard error: without a binding slf4j is silent, and the tests wait for the log's
# "Kafka Server started".
#
# Once the jars are there, this also makes <dir>/kafka.jsa, a class-data-sharing archive of
# the classes a broker loads while it starts and stops (one broker run here, about 10 s, once):
# a broker started with -XX:SharedArchiveFile=<dir>/kafka.jsa and the same JVM flags and class
# path serves about a second sooner. Best effort: without it the tests are only slower.
set -euo pipefail

# The JVM flags the tests start Kafka with (tests/conformance/src/servers/kafka.rs): the
# archive is only used by a JVM started with the same class path and garbage collector.
flags=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

out="$(bash "$(dirname "$0")/jars.sh" kafka \
  org.apache.kafka:kafka_2.13:4.4.0 \
  org.slf4j:slf4j-simple:1.7.36)"
dir="${out##*$'\n'}"
printf '%s\n' "$out" | sed '$d'

archive="$dir/kafka.jsa"
if [[ ! -f "$archive" ]]; then
  echo "kafka: making the class-data-sharing archive $archive" >&2
  start=$SECONDS
  work="$(mktemp -d)"
  pid=""
  trap '[[ -z "$pid" ]] || kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
  # Two loopback ports nothing listens on.
  ports=()
  while ((${#ports[@]} < 2)); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && [[ " ${ports[*]} " != *" $p "* ]]; then
      ports+=("$p")
    fi
  done
  cat >"$work/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${ports[1]}
listeners=PLAINTEXT://127.0.0.1:${ports[0]},CONTROLLER://127.0.0.1:${ports[1]}
controller.listener.names=CONTROLLER
log.dirs=$work/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
EOF
  if java "${flags[@]}" -cp "$dir/*" kafka.tools.StorageTool format \
    --config "$work/server.properties" --cluster-id rmicro-kafka-test0000A >"$work/log" 2>&1; then
    java "${flags[@]}" -XX:ArchiveClassesAtExit="$work/kafka.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off \
      -cp "$dir/*" kafka.Kafka "$work/server.properties" >>"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
      if grep -q 'Kafka Server started' "$work/log" || ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      sleep 0.2
    done
    if grep -q 'Kafka Server started' "$work/log"; then
      # A clean stop (SIGTERM) writes the archive as the JVM exits.
      kill -TERM "$pid"
      for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
    fi
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
  if [[ -s "$work/kafka.jsa" ]]; then
    mv -f "$work/kafka.jsa" "$archive"
    echo "kafka: archive made in $((SECONDS - start)) s" >&2
  else
    tail -n 20 "$work/log" >&2
    echo "kafka: no class-data-sharing archive (log above); the tests start Kafka without one" >&2
  fi
fi
echo "$dir"
