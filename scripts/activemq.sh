#!/usr/bin/env bash
# ActiveMQ (Apache-2.0) from Maven Central as the tests' MQTT server: its jars and what they
# need at run time, fetched once by scripts/jars.sh into $HOME/.cache/rmicro/jars/activemq-<flavour>.
# Prints that directory on its last line.
#
#   bash scripts/activemq.sh            # ActiveMQ Artemis 2.40.0 (what the tests use)
#   bash scripts/activemq.sh classic    # ActiveMQ Classic 6.3.1, for comparison only
#
# Artemis (the MQTT tests' server): the embedded server's own main class reads
# <work>/etc/broker.xml and keeps its journal in <work>/data:
#   java -cp '<dir>/*' org.apache.activemq.artemis.core.server.embedded.Main <work>
# with an acceptor such as `tcp://127.0.0.1:PORT?protocols=MQTT` (MQTT 3.1, 3.1.1 and 5;
# shared subscriptions `$share/<group>/<filter>` for 3.1.1 clients too).
#
# Classic: MQTT 3.1/3.1.1 only; a `$share/...` filter is granted but delivers nothing, so the
# MQTT broker's queues do not work on it. Started as
#   java -cp '<dir>/*' org.apache.activemq.console.Main start \
#     "broker:(mqtt://127.0.0.1:PORT)?persistent=false&useJmx=false"
#
# Both need Java 17. slf4j-simple gives the server a log (to its standard error).
set -euo pipefail
here="$(dirname "$0")"
case "${1:-artemis}" in
  artemis)
    exec bash "$here/jars.sh" activemq-artemis \
      org.apache.activemq:artemis-server:2.40.0 \
      org.apache.activemq:artemis-mqtt-protocol:2.40.0 \
      org.slf4j:slf4j-simple:2.0.13
    ;;
  classic)
    exec bash "$here/jars.sh" activemq-classic \
      org.apache.activemq:activemq-broker:6.3.1 \
      org.apache.activemq:activemq-mqtt:6.3.1 \
      org.apache.activemq:activemq-console:6.3.1 \
      org.slf4j:slf4j-simple:2.0.13
    ;;
  *)
    echo "usage: bash scripts/activemq.sh [artemis|classic]" >&2
    exit 2
    ;;
esac
