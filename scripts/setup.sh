#!/usr/bin/env bash
# Sets everything up on a fresh Debian machine and runs the main job:
#   installs missing Debian packages (apt-get), builds PhoneDiffusion (build/),
#   then inspects the tiny golden model and encodes a prompt with it.
# Usage: scripts/setup.sh [--no-run]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

if [[ "${1:-}" == "--no-run" ]]; then exit 0; fi

GOLDEN="${PD_GOLDEN_DIR:-../shared/golden}"
MODEL="$GOLDEN/models/tiny-sd15.safetensors"
if [[ ! -f "$MODEL" ]]; then
    echo "built build/phonediffusion; no model at $MODEL to demo (set PD_GOLDEN_DIR)"
    exit 0
fi
set -x
build/phonediffusion cpu
build/phonediffusion info "$MODEL"
build/phonediffusion encode -m "$MODEL" -p "a (red fox:1.2) in snow, highly detailed"
build/phonediffusion encode -m "$GOLDEN/models/tiny-sdxl" -p "a red fox in snow"
