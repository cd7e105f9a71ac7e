#!/usr/bin/env bash
# Set-up if needed, build, and run every test through ctest (unit, then integration with real
# PostgreSQL clusters and devkafka), plus the decoder tests under AddressSanitizer/UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh

echo "== sanitizer build of the byte-level decoders (ASan + UBSan)"
if [ ! -f build-asan/CMakeCache.txt ]; then
  GENERATOR=()
  if command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi
  cmake -S . -B build-asan "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Debug -DLIFELINE_SANITIZE=ON >/dev/null
fi
cmake --build build-asan --target capture_test -j "$(nproc)"
./build-asan/tests/capture_test --gtest_brief=1 --gtest_filter=-*Integration*

echo "== ctest"
cd build
ctest --output-on-failure --timeout 1200 -j 2
