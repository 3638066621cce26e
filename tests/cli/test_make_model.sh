#!/usr/bin/env bash
# `phonediffusion make-model`: a self-contained sd15-tiny checkpoint (no golden data
# needed) that `info` recognises completely and `generate` turns into PNGs; the same
# seed gives the same bytes; outputs are never clobbered; errors are clear.
# The full-size sd15/sdxl models are too big for the suite (checked by hand).
# Args: BINARY GOLDEN_DIR (the latter unused).
set -uo pipefail
BIN="$1"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

is_png() { [[ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]]; }

M="$TMP/tiny.safetensors"
expect "make-model sd15-tiny" 0 "sd15-tiny, [0-9]+ tensors" -- pdbin make-model --arch sd15-tiny -o "$M" --seed 7
[[ -f "$TMP/tiny/tokenizer/vocab.json" && -f "$TMP/tiny/tokenizer/merges.txt" ]] && ok "vocabulary written beside" || bad "no tokenizer/ beside the model"

info=$(pdbin info "$M" 2>&1)
rc=$?
[[ $rc -eq 0 ]] && ok "info exit 0" || bad "info exit $rc: $info"
grep -qE "family: +SD1.x" <<<"$info" && ok "info family SD1.x" || bad "info family: $info"
grep -q "single file" <<<"$info" && ok "info single file" || bad "info layout: $info"
grep -qE "missing|unexpected|unreadable" <<<"$info" && bad "info reports problems: $info" || ok "info: 0 missing, 0 unexpected"
grep -qE "text_encoder .*CLIP 4 layers x 64 wide, 1 heads" <<<"$info" && ok "info text encoder" || bad "info text encoder: $info"
grep -qE "vocabulary: .*tiny/tokenizer" <<<"$info" && ok "info finds the vocabulary" || bad "info vocabulary: $info"

expect "encode" 0 "context: +\[77, 64\]" -- pdbin encode -m "$M" -p "a photo of a cat"
expect "tokenize BOS/EOS from the tiny vocabulary" 0 "^ids: +512 .* 513" -- pdbin encode -m "$M" -p "a cat"
expect "generate 64x64" 0 "seed 1" -- pdbin generate -m "$M" -p "a red fox" -W 64 -H 64 --steps 2 -s 1 -q -o "$TMP/g64.png"
is_png "$TMP/g64.png" && ok "64x64 PNG written" || bad "64x64 PNG missing or not a PNG"
expect "generate 256x256" 0 "seed 2" -- pdbin generate -m "$M" -p "a red fox" -W 256 -H 256 --steps 4 -s 2 -q -o "$TMP/g256.png"
is_png "$TMP/g256.png" && ok "256x256 PNG written" || bad "256x256 PNG missing or not a PNG"

# Determinism: same seed, same bytes (vocabulary too); another seed, other bytes.
expect "same seed again" 0 "wrote" -- pdbin make-model -o "$TMP/same.safetensors" --seed 7 -q
cmp -s "$M" "$TMP/same.safetensors" && ok "same seed, byte-identical file" || bad "same seed gave different files"
cmp -s "$TMP/tiny/tokenizer/vocab.json" "$TMP/same/tokenizer/vocab.json" && ok "same vocabulary" || bad "vocabularies differ"
expect "other seed" 0 "wrote" -- pdbin make-model -o "$TMP/other.safetensors" --seed 8 -q
cmp -s "$M" "$TMP/other.safetensors" && bad "another seed gave the same file" || ok "another seed, another file"
[[ $(stat -c %s "$M") -eq $(stat -c %s "$TMP/other.safetensors") ]] && ok "same size" || bad "sizes differ"
expect "f32 weights" 0 "wrote" -- pdbin make-model -o "$TMP/f32.safetensors" --dtype f32 -q
expect "f32 info" 0 "unet .*F32" -- pdbin info "$TMP/f32.safetensors"
expect "generate from f32" 0 "seed 3" -- pdbin generate -m "$TMP/f32.safetensors" -p "a cat" -W 64 -H 64 --steps 1 -s 3 -q -o "$TMP/f32.png"

# Never clobber; clear errors.
cp "$M" "$TMP/before.safetensors"
expect "existing output refused" 1 "exists.*--overwrite" -- pdbin make-model -o "$M" --seed 9
cmp -s "$M" "$TMP/before.safetensors" && ok "existing model untouched" || bad "existing model modified"
expect "--overwrite" 0 "wrote" -- pdbin make-model -o "$M" --seed 9 --overwrite -q
cmp -s "$M" "$TMP/before.safetensors" && bad "--overwrite did not replace" || ok "--overwrite replaced the model"
echo '{}' >"$TMP/same/tokenizer/vocab.json"
rm "$TMP/same.safetensors"
expect "changed vocabulary refused" 1 "vocab.json' exists" -- pdbin make-model -o "$TMP/same.safetensors" -q
[[ ! -e "$TMP/same.safetensors" ]] && ok "no model written after the refusal" || bad "model written despite the refusal"
expect "unwritable path" 1 "cannot write '/nonexistent-dir/x.safetensors'" -- pdbin make-model -o /nonexistent-dir/x.safetensors
expect "bad arch" 2 "--arch" -- pdbin make-model --arch sd3 -o "$TMP/x.safetensors"
expect "bad dtype" 2 "--dtype" -- pdbin make-model --dtype f8 -o "$TMP/x.safetensors"
expect "bad seed" 2 "--seed" -- pdbin make-model --seed -1 -o "$TMP/x.safetensors"
expect "no output" 2 "needs -o" -- pdbin make-model
expect "not .safetensors" 2 "\.safetensors" -- pdbin make-model -o "$TMP/x.ckpt"
expect "help" 0 "sdxl" -- pdbin make-model --help
ls "$TMP"/*.tmp-* "$TMP"/*/tokenizer/*.tmp-* >/dev/null 2>&1 && bad "temporary files left behind" || ok "no temporary files left"

summary
