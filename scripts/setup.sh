#!/usr/bin/env bash
# Installs the Debian 12 packages lifeline needs to build, test and run its demo; only what is
# missing, so it is safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-format clang libclang-rt-14-dev
  librdkafka-dev libpq-dev libpqxx-dev libprotobuf-dev protobuf-compiler librocksdb-dev
  libspdlog-dev libcli11-dev libyaml-cpp-dev libcpp-httplib-dev libgtest-dev libgmock-dev libssl-dev
  postgresql-15 postgresql-15-postgis-3 kcat chromium jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
echo "setup: done"
