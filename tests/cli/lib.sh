# lib.sh - helpers shared by the CLI test scripts (sourced; BIN must be set).
#   pdbin ARGS...                      run the CLI (through PD_EXEC_WRAPPER, an emulator
#                                      prefix for cross builds, when set)
#   expect NAME RC PATTERN -- CMD...   run CMD, check its exit status and that its output
#                                      matches the extended regex PATTERN ("" = any)
#   ok NAME / bad NAME                 record a result; summary prints the closing line
pdbin() { ${PD_EXEC_WRAPPER:-} "$BIN" "$@"; }
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "[ OK ] $1"; }
bad() { fail=$((fail + 1)); echo "[FAIL] $1"; }

expect() {
    local name="$1" rc_want="$2" pattern="$3"
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [[ $rc -ne $rc_want ]]; then bad "$name: exit $rc, expected $rc_want; output: $out"; return; fi
    if [[ -n "$pattern" ]] && ! grep -qE -- "$pattern" <<<"$out"; then
        bad "$name: output lacks /$pattern/: $out"; return
    fi
    ok "$name"
}

summary() {
    echo "$pass passed, $fail failed"
    [[ $fail -eq 0 ]]
}
