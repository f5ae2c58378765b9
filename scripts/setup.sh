#!/usr/bin/env bash
# Installs and prepares what the tests need. Idempotent; safe to run again.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# mDNS tests speak on the loopback interface only: `lo` gets its MULTICAST flag, and a
# loopback-only host gets 224.0.0.0/4 routed to `lo` (go-micro's mDNS sends by the routing
# table). See the script for why.
bash "$(dirname "$0")/loopback-multicast.sh"

# The real servers the plugin tests run (each test starts its own on a free loopback port;
# the packages' own system services are not used).
# openssl: the TLS tests make their throwaway CAs and server certificates with it.
# Nothing here is needed to build but a C compiler and make for the kafka feature (librdkafka's
# bundled sources) and perl for kafka-tls (OpenSSL's bundled sources); no feature of rmicro
# needs a system library or protoc.
# dnsmasq-base: the DNS server of the dns registry's tests (the binary only, no service).
# prometheus: scrapes a service's /metrics in the metrics test.
# chromium, chromium-driver: the headless browser the dashboard's test drives (WebDriver);
# fonts-wqy-microhei: the CJK glyphs of the seed's data in its screenshot.
packages=(mosquitto nats-server rabbitmq-server redis-server etcd-server openssl dnsmasq-base prometheus chromium chromium-driver fonts-wqy-microhei)
have cc || packages+=(gcc)
# g++: libFuzzer (C++), built by libfuzzer-sys for the fuzz targets (scripts/fuzz.sh).
have c++ || packages+=(g++)
have make || packages+=(make)
have perl && perl -MIPC::Cmd -MFile::Compare -e1 2>/dev/null || packages+=(perl)
# Java servers (ZooKeeper, Kafka, ActiveMQ Artemis) come as jars from Maven Central, fetched with Maven and run with java.
have mvn || packages+=(maven)
# A JDK, not a JRE: the Artemis login test runs a single-source Java program (java Foo.java
# compiles it in memory, which needs the jdk.compiler module).
java --list-modules 2>/dev/null | grep -q '^jdk.compiler' || packages+=(default-jdk-headless)
missing=()
for p in "${packages[@]}"; do
  # Installed, not merely known (a removed package keeps a `deinstall ... config-files` entry).
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # policy-rc.d keeps the packages from starting their system-wide services.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $sudo rm -f /usr/sbin/policy-rc.d
fi
# Stop system-wide instances a package may have started anyway: tests use their own ports.
for svc in mosquitto nats-server rabbitmq-server redis-server etcd; do
  pkill -x "$svc" 2>/dev/null || true
done

# Consul is not in Debian: build it once from the Go module proxy (see the script).
bash "$(dirname "$0")/consul.sh"
# nsqd is not in Debian: build it once from the Go module proxy (see the script).
bash "$(dirname "$0")/nsq.sh"
# Google's Pub/Sub fake (pstest), for machines without the Cloud SDK's emulator (see the script).
bash "$(dirname "$0")/pstest.sh" >/dev/null
# ZooKeeper's jars, from Maven Central (see the script).
bash "$(dirname "$0")/zookeeper.sh" >/dev/null
# Kafka 4.4's jars (KRaft mode, no ZooKeeper), from Maven Central (see the script).
bash "$(dirname "$0")/kafka.sh" >/dev/null
# ActiveMQ Artemis's jars, the MQTT tests' second server (see the script).
bash "$(dirname "$0")/activemq.sh" >/dev/null
# Jaeger v2, the tracing tests' OTLP receiver, from the Go module proxy (see the script;
# about 6 minutes the first time).
bash "$(dirname "$0")/jaeger.sh" >/dev/null
# The go-micro programs of the interop tests (tests/interop), from the Go module proxy too.
bash "$(dirname "$0")/interop.sh"

# cargo-expand pins real `cargo expand` output in the macrotest cases.
if ! have cargo-expand; then
  echo "setup: installing cargo-expand (once; a few minutes)"
  cargo install cargo-expand --locked --quiet
fi
