#!/usr/bin/env bash
# ZooKeeper 3.9.5 (Apache-2.0) from Maven Central: its jars and what they need at run time,
# fetched once by scripts/jars.sh into $HOME/.cache/rmicro/jars/zookeeper. Prints that
# directory on its last line. The zookeeper tests start it as
#   java -cp '<dir>/*' org.apache.zookeeper.server.ZooKeeperServerMain <zoo.cfg>
# metrics-core and snappy-java are named because ZooKeeper's server loads them at start while
# its pom does not bring them along; slf4j-simple gives the server a log (to its standard error).
set -euo pipefail
exec bash "$(dirname "$0")/jars.sh" zookeeper \
  org.apache.zookeeper:zookeeper:3.9.5 \
  io.dropwizard.metrics:metrics-core:4.2.25 \
  org.xerial.snappy:snappy-java:1.1.10.5 \
  org.slf4j:slf4j-simple:2.0.13
