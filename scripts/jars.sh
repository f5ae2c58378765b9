#!/usr/bin/env bash
# Fetches a Java server's jars from Maven Central, once, with Maven itself (the registry's
# normal client), into $HOME/.cache/rmicro/jars/<name>/: the named artifacts and everything
# they need at run time. Tests then start the server with `java -cp '<dir>/*' <main class>`.
#
#   bash scripts/jars.sh <name> <group:artifact:version>...
#   bash scripts/jars.sh zookeeper org.apache.zookeeper:zookeeper:3.9.5
#
# A no-op when the directory already holds the jars of exactly these coordinates (a stamp
# file records them). Maven's own repository lives under $HOME/.cache/rmicro/m2, so nothing
# outside the cache is touched. Prints the directory on its last line.
set -euo pipefail

if (($# < 2)); then
  echo "usage: bash scripts/jars.sh <name> <group:artifact:version>..." >&2
  exit 2
fi
name=$1
shift
cache="$HOME/.cache/rmicro"
dest="$cache/jars/$name"
stamp="$dest/.coordinates"
want="$*"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$dest/*.jar" >/dev/null; then
  echo "jars: $name up to date"
  echo "$dest"
  exit 0
fi

for tool in mvn java; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "jars: \`$tool\` is needed to fetch and run $name (Debian: apt-get install maven default-jre-headless)" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
deps=""
for coord in "$@"; do
  IFS=: read -r group artifact version <<<"$coord"
  if [[ -z "$group" || -z "$artifact" || -z "$version" ]]; then
    echo "jars: \`$coord\` is not group:artifact:version" >&2
    exit 2
  fi
  deps+="<dependency><groupId>$group</groupId><artifactId>$artifact</artifactId><version>$version</version></dependency>"
done
cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rmicro.jars</groupId>
  <artifactId>$name</artifactId>
  <version>1</version>
  <dependencies>$deps</dependencies>
</project>
EOF

echo "jars: fetching $want with Maven"
start=$SECONDS
rm -rf "$dest"
mkdir -p "$dest"
if ! mvn -B -f "$work/pom.xml" -Dmaven.repo.local="$cache/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest" >"$work/mvn.log" 2>&1; then
  tail -n 40 "$work/mvn.log" >&2
  echo "jars: Maven could not fetch $want (log above)" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "jars: $name: $(find "$dest" -name '*.jar' | wc -l) jars in $((SECONDS - start)) s"
echo "$dest"
