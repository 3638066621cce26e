#!/usr/bin/env bash
# Sets everything up on a fresh Debian machine and runs the main job:
#   installs missing Debian packages (apt-get), builds PhoneDiffusion (build/), makes a
#   small random-weight SD 1.5-style model with the project's own tool (demo/), and
#   generates an image from it (demo/fox.png). No download, no network.
# Usage: scripts/setup.sh [--no-run]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

if [[ "${1:-}" == "--no-run" ]]; then exit 0; fi

mkdir -p demo
set -x
build/phonediffusion cpu
[[ -f demo/sd15-tiny.safetensors ]] || build/phonediffusion make-model --arch sd15-tiny -o demo/sd15-tiny.safetensors
build/phonediffusion info demo/sd15-tiny.safetensors
build/phonediffusion generate -m demo/sd15-tiny.safetensors -p "a red fox in snow, (highly detailed:1.2)" \
    -n "blurry" -W 256 -H 256 --steps 20 --sampler euler_a -s 42 -o demo/fox.png --overwrite
