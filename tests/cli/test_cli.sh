#!/usr/bin/env bash
# CLI behaviour: `phonediffusion info/tokenize/encode` on the tiny golden models, and
# clear errors with non-zero exits on bad input. Args: BINARY GOLDEN_DIR
set -uo pipefail
BIN="$1"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
GOLDEN="$2"

if [[ ! -d "$GOLDEN/models" ]]; then
    if [[ -n "${CI:-}" ]]; then echo "golden data missing at $GOLDEN"; echo "0 passed, 1 failed"; exit 1; fi
    echo "SKIP: golden data not found at $GOLDEN"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT


M="$GOLDEN/models"
expect "info single-file sd15" 0 "family: +SD1.x" -- pdbin info "$M/tiny-sd15.safetensors"
expect "info single-file layout" 0 "single file" -- pdbin info "$M/tiny-sd15.safetensors"
expect "info sd15 text encoder arch" 0 "text_encoder .*CLIP 3 layers x 24 wide, 3 heads, quick_gelu" -- pdbin info "$M/tiny-sd15.safetensors"
expect "info sd15 dtypes" 0 "unet .*F16" -- pdbin info "$M/tiny-sd15.safetensors"
expect "info diffusers sd15" 0 "diffusers folder" -- pdbin info "$M/tiny-sd15"
expect "info single-file sdxl" 0 "family: +SDXL" -- pdbin info "$M/tiny-sdxl.safetensors"
expect "info sdxl bigG" 0 "text_encoder_2 .*OpenCLIP 10 layers x 32 wide, 2 heads, gelu, projection" -- pdbin info "$M/tiny-sdxl.safetensors"
expect "info diffusers sdxl" 0 "family: +SDXL" -- pdbin info "$M/tiny-sdxl"
if pdbin info "$M/tiny-sdxl" | grep -q missing; then bad "info sdxl folder lists missing tensors"; else ok "info no missing"; fi

# A truncated copy must fail with a message naming the file.
head -c 100000 "$M/tiny-sd15.safetensors" >"$TMP/trunc.safetensors"
expect "info truncated" 1 "trunc.safetensors" -- pdbin info "$TMP/trunc.safetensors"
head -c 5 "$M/tiny-sd15.safetensors" >"$TMP/tiny.safetensors"
expect "info 5-byte file" 1 "tiny.safetensors" -- pdbin info "$TMP/tiny.safetensors"
expect "info missing file" 1 "no such file" -- pdbin info "$TMP/nope.safetensors"
printf 'not a model' >"$TMP/text.safetensors"
expect "info garbage" 1 "text.safetensors" -- pdbin info "$TMP/text.safetensors"
expect "info no args" 2 "needs a model" -- pdbin info
expect "unknown command" 2 "unknown command" -- pdbin frobnicate

expect "tokenize" 0 "^5 tokens: 320 1125 539 320 2368" -- pdbin tokenize -m "$M/tiny-sd15" -p "a photo of a cat"
expect "encode sd15" 0 "context: +\[77, 24\]" -- pdbin encode -m "$M/tiny-sd15.safetensors" -p "a photo of a cat"
expect "encode sdxl pooled" 0 "pooled: +\[24\]" -- pdbin encode -m "$M/tiny-sdxl" -p "a photo of a cat"
expect "encode sdxl context" 0 "context: +\[77, 56\]" -- pdbin encode -m "$M/tiny-sdxl.safetensors" -p "a photo of a cat"
expect "encode long prompt chunks" 0 "chunks: +2 \(154 tokens\)" -- pdbin encode -m "$M/tiny-sd15" -p "$(printf 'cat %.0s' {1..100})"
expect "encode bad clip skip" 2 "clip-skip" -- pdbin encode -m "$M/tiny-sd15" -p "x" --clip-skip 0
expect "encode clip skip too deep" 1 "clip skip" -- pdbin encode -m "$M/tiny-sd15" -p "x" --clip-skip 9
expect "encode no prompt" 2 "needs -p" -- pdbin encode -m "$M/tiny-sd15"
expect "encode bad vocab" 1 "/nonexistent" -- pdbin encode -m "$M/tiny-sd15" -p "x" --vocab /nonexistent
cp "$M/tiny-sd15.safetensors" "$TMP/alone.safetensors"
expect "encode no vocab beside model" 1 "--vocab" -- pdbin encode -m "$TMP/alone.safetensors" -p "x"
expect "encode --vocab" 0 "context" -- pdbin encode -m "$TMP/alone.safetensors" -p "x" --vocab "$M/tiny-sd15/tokenizer" --config "$M/tiny-sd15.config.json"

# --dump writes atomically and never overwrites silently.
expect "dump" 0 "wrote" -- pdbin encode -m "$M/tiny-sd15" -p "a cat" --dump "$TMP/c.safetensors"
expect "dump readable, not a model" 1 "tensors: +1 " -- pdbin info "$TMP/c.safetensors"
echo keep >"$TMP/keep.safetensors"
expect "dump refuses overwrite" 1 "exists" -- pdbin encode -m "$M/tiny-sd15" -p "a cat" --dump "$TMP/keep.safetensors"
if [[ "$(cat "$TMP/keep.safetensors")" == "keep" ]]; then ok "existing file untouched"; else bad "existing file was modified"; fi
expect "dump unwritable dir" 1 "cannot write" -- pdbin encode -m "$M/tiny-sd15" -p "a cat" --dump "/nonexistent-dir/x.safetensors"

# generate: arguments are checked before any work; outputs never clobber.
S15="$M/tiny-sd15.safetensors"
expect "generate help" 0 "--init-image" -- pdbin generate --help
expect "generate width not /8" 2 "multiples of 8" -- pdbin generate -m "$S15" -p x -W 100 -o "$TMP/a.png"
expect "generate zero height" 2 "multiples of 8" -- pdbin generate -m "$S15" -p x -H 0 -o "$TMP/a.png"
expect "generate huge width" 2 "multiples of 8" -- pdbin generate -m "$S15" -p x -W 100000 -o "$TMP/a.png"
expect "generate steps 0" 2 "steps" -- pdbin generate -m "$S15" -p x --steps 0 -o "$TMP/a.png"
expect "generate strength 0" 2 "strength" -- pdbin generate -m "$S15" -p x --strength 0 -o "$TMP/a.png"
expect "generate strength 1.5" 2 "strength" -- pdbin generate -m "$S15" -p x --strength 1.5 -o "$TMP/a.png"
expect "generate strength without image" 2 "init-image" -- pdbin generate -m "$S15" -p x --strength 0.5 -o "$TMP/a.png"
expect "generate bad seed" 2 "seed" -- pdbin generate -m "$S15" -p x -s abc -o "$TMP/a.png"
expect "generate unknown sampler" 1 "euler_a" -- pdbin generate -m "$S15" -p x --sampler foo -W 64 -H 64 --steps 1 -o "$TMP/a.png"
expect "generate karras on ddim" 1 "karras" -- pdbin generate -m "$S15" -p x --sampler ddim --scheduler karras -W 64 -H 64 --steps 1 -o "$TMP/a.png"
expect "generate missing init image" 1 "cannot open" -- pdbin generate -m "$S15" -p x --init-image "$TMP/nope.png" -o "$TMP/a.png"
expect "generate init image not png" 1 "not a PNG" -- pdbin generate -m "$S15" -p x --init-image "$TMP/keep.safetensors" -o "$TMP/a.png"
expect "generate no model" 2 "model" -- pdbin generate -p x
expect "generate bad spacing" 2 "timestep-spacing" -- pdbin generate -m "$S15" -p x --timestep-spacing up -o "$TMP/a.png"
expect "generate bad original size" 2 "original-size" -- pdbin generate -m "$S15" -p x --original-size 1024 -o "$TMP/a.png"
expect "generate bad crop" 2 "crop" -- pdbin generate -m "$S15" -p x --crop -1,0 -o "$TMP/a.png"
expect "generate preview needs taesd" 2 "needs --taesd" -- pdbin generate -m "$S15" -p x --preview "$TMP/p.png" -o "$TMP/a.png"
expect "generate bad taesd" 1 "TAESD|taesd" -- pdbin generate -m "$S15" -p x --taesd "$M/tiny-sd15" -W 64 -H 64 --steps 1 -o "$TMP/a.png"
expect "generate taesd preview" 0 "seed 4" -- pdbin generate -m "$S15" -p "a cat" --taesd "$M/taesd-random" --preview "$TMP/p.png" -W 64 -H 48 --steps 2 -s 4 -q -o "$TMP/ta.png"
if [[ -s "$TMP/p.png" ]]; then ok "preview written"; else bad "no preview file"; fi
expect "generate preview exists" 1 "exists" -- pdbin generate -m "$S15" -p "a cat" --taesd "$M/taesd-random" --preview "$TMP/p.png" -W 64 -H 48 --steps 2 -s 4 -q -o "$TMP/tb.png"
expect "generate taesd preview only" 0 "seed 4" -- pdbin generate -m "$S15" -p "a cat" --taesd "$M/taesd-random" --taesd-preview-only --preview "$TMP/p2.png" -W 64 -H 48 --steps 2 -s 4 -q -o "$TMP/tc.png"
expect "generate same without taesd" 0 "seed 4" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 48 --steps 2 -s 4 -q -o "$TMP/td.png"
if cmp -s "$TMP/tc.png" "$TMP/td.png"; then ok "preview-only keeps the VAE image"; else bad "preview-only changed the image"; fi
expect "generate tiled" 0 "seed 4" -- pdbin generate -m "$S15" -p "a cat" --vae-tiling -W 64 -H 64 --steps 1 -s 4 -q -o "$TMP/tl.png"
expect "generate turbo sdxl" 0 "seed 3" -- pdbin generate -m "$M/tiny-sdxl.safetensors" -p "a cat" -W 64 -H 64 --steps 1 --cfg-scale 0 --timestep-spacing trailing --original-size 512x512 --crop 0,16 -s 3 -q -o "$TMP/t.png"
expect "generate" 0 "seed 5" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 2 -s 5 -q -o "$TMP/g.png"
expect "generate alias" 0 "seed 5" -- pdbin -m "$S15" -p "a cat" -W 64 -H 64 --steps 2 -s 5 -q -o "$TMP/g2.png"
if cmp -s "$TMP/g.png" "$TMP/g2.png"; then ok "same seed, same image"; else bad "same seed gave different files"; fi
expect "generate timings line" 0 "^timings: load=[0-9.]+s text=[0-9.]+s denoise=[0-9.]+s decode=[0-9.]+s total=[0-9.]+s unet_evals=4$" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 2 -s 5 -q -o "$TMP/g3.png"
cp "$TMP/g.png" "$TMP/before.png"
expect "generate refuses existing output" 1 "exists" -- pdbin generate -m "$S15" -p "a dog" -W 64 -H 64 --steps 2 -s 9 -o "$TMP/g.png"
if cmp -s "$TMP/g.png" "$TMP/before.png"; then ok "existing image untouched"; else bad "existing image modified"; fi
expect "generate --overwrite" 0 "seed 9" -- pdbin generate -m "$S15" -p "a dog" -W 64 -H 64 --steps 2 -s 9 -q --overwrite -o "$TMP/g.png"
expect "generate batch names" 0 "b-3.png" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 1 -s 1 -q --batch-count 3 -o "$TMP/b.png"
if [[ -f "$TMP/b.png" && -f "$TMP/b-2.png" && -f "$TMP/b-3.png" ]]; then ok "batch files"; else bad "batch files missing"; fi
# With a memory budget one call denoises the batch, then decodes it: the same images,
# and the UNet, released to decode, is not loaded again.
out=$(pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 1 -s 1 -q --batch-count 3 --low-memory -o "$TMP/lm.png" 2>&1)
if [[ $? -eq 0 ]] && cmp -s "$TMP/b.png" "$TMP/lm.png" && cmp -s "$TMP/b-2.png" "$TMP/lm-2.png" &&
   cmp -s "$TMP/b-3.png" "$TMP/lm-3.png"; then ok "low-memory batch: same files"; else bad "low-memory batch differs: $out"; fi
if grep -q "unet_reload" <<<"$out"; then bad "low-memory batch loaded the UNet again: $out"; else ok "low-memory batch: UNet loaded once"; fi
expect "generate batch %d" 0 "c_2.png" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 1 -s 1 -q --batch-count 2 -o "$TMP/c_%d.png"
expect "generate batch refused up front" 1 "exists" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 1 --batch-count 3 -o "$TMP/b.png"
expect "generate unwritable" 1 "cannot write" -- pdbin generate -m "$S15" -p "a cat" -W 64 -H 64 --steps 1 -q -o "/nonexistent-dir/x.png"
ls "$TMP"/*.tmp-* >/dev/null 2>&1 && bad "temporary files left behind" || ok "no temporary files left"

# convert: a q8_0 GGUF that `info` and `generate` read; no clobbering; clear errors.
expect "convert q8_0" 0 "q8_0" -- pdbin convert "$M/tiny-sd15.safetensors" "$TMP/t8.gguf" --weight-type q8_0
expect "info gguf" 0 "unet .*Q8_0" -- pdbin info "$TMP/t8.gguf"
head -c 5000 "$TMP/t8.gguf" >"$TMP/trunc.gguf"
expect "info truncated gguf" 1 "trunc.gguf" -- pdbin info "$TMP/trunc.gguf"
expect "generate truncated gguf" 1 "trunc.gguf" -- pdbin generate -m "$TMP/trunc.gguf" -p x -o "$TMP/never2.png"
cp "$TMP/t8.gguf" "$TMP/t8.before"
expect "convert refuses to clobber" 1 "exists" -- pdbin convert "$M/tiny-sd15.safetensors" "$TMP/t8.gguf"
if cmp -s "$TMP/t8.gguf" "$TMP/t8.before"; then ok "convert left the existing file alone"; else bad "convert changed an existing file"; fi
expect "convert --overwrite" 0 "q4_0" -- pdbin convert "$M/tiny-sd15.safetensors" "$TMP/t8.gguf" --weight-type q4_0 --overwrite
expect "convert bad type" 2 "weight-type" -- pdbin convert "$M/tiny-sd15.safetensors" "$TMP/x.gguf" --weight-type q5_k
expect "convert missing input" 1 "nope" -- pdbin convert "$TMP/nope.safetensors" "$TMP/x.gguf"
expect "convert garbage input" 1 "text.safetensors" -- pdbin convert "$TMP/text.safetensors" "$TMP/x.gguf"
expect "convert unwritable" 1 "" -- pdbin convert "$M/tiny-sd15.safetensors" "$TMP/no/such/dir/x.gguf"
expect "convert usage" 2 "usage" -- pdbin convert "$M/tiny-sd15.safetensors"
if ls "$TMP"/*.tmp-* >/dev/null 2>&1; then bad "convert left temporary files"; else ok "no temporary files left"; fi
expect "generate from gguf" 0 "gguf.png" -- pdbin generate -m "$TMP/t8.gguf" --config "$M/tiny-sd15.config.json" \
    --vocab "$M/tiny-sd15/tokenizer" -p "a fox" -W 64 -H 64 --steps 2 -q -o "$TMP/gguf.png"
expect "generate --weight-type" 0 "q4.png" -- pdbin generate -m "$M/tiny-sd15.safetensors" -p "a fox" -W 64 -H 64 \
    --steps 2 -q --weight-type q4_0 --low-memory -o "$TMP/q4.png"
expect "generate bad --weight-type" 2 "weight-type" -- pdbin generate -m "$M/tiny-sd15.safetensors" -p x --weight-type q3
expect "generate bad --max-memory" 2 "max-memory" -- pdbin generate -m "$M/tiny-sd15.safetensors" -p x --max-memory lots
expect "generate tiny --max-memory" 1 "too small" -- pdbin generate -m "$M/tiny-sd15.safetensors" -p x --max-memory 1M \
    -o "$TMP/never.png"
if [[ -e "$TMP/never.png" ]]; then bad "a refused run wrote an image"; else ok "a refused run wrote nothing"; fi

summary
