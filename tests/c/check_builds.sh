#!/usr/bin/env bash
# Builds tests/c/harness.c with fastl2's C kernels four ways and checks that every build prints
# the same bits (NaNs canonical: their sign and payload are unspecified):
#   gcc       gcc, the flags of setup.py (-std=c11 -O3 -ffp-contract=off -fno-math-errno -pthread),
#             every x86 level (baseline, avx2, avx512 where the CPU has them): the reference
# and, whatever the builds, tests/c/bf16_rounding.c (where the CPU has AVX512_BF16), and
# tests/c/exact_targets.c (csrc/exact.c's exact sums: the same integers with gcc and with each
# build's compiler and target)
#   scalar    gcc, the same flags, -DFL2_NO_VECTORS -DFL2_NO_DISPATCH (the portable scalar code)
#   clang     clang, the same flags, every x86 level
#   aarch64   aarch64-linux-gnu-gcc, the same flags (baseline: NEON through the vector
#             extensions), run under qemu-aarch64
# Within each build the harness itself checks that its SIMD levels and thread counts agree, and
# that fl2_run_strided, fl2_run's modes and fl2_weight_sum agree with each other.
#
# Every build's output is also compared with tests/c/expected.sha256, the SHA-256 of the
# reference's output as committed: a build may run without the gcc one (CI builds scalar, clang
# and aarch64 only: the reference's kernels are the ones part 1 of .ci/run tests), and a change
# of any result bit is caught even when every build changes alike.  After a change meant to
# alter bits: tests/c/check_builds.sh && sha256sum < tests/c/build/gcc.txt | cut -d' ' -f1 > tests/c/expected.sha256
#
# Usage (from anywhere):  tests/c/check_builds.sh [OUTDIR [BUILD...]]   (default: tests/c/build, all four)
# OUTDIR keeps each build's objects of csrc/ (reused while the compiler, its flags and csrc/ stay
# the same; the harness is compiled every time), binary, output (<build>.txt) and log (<build>.log).  Exits non-zero when a tool is
# missing (the message names the Debian package), a build or a run fails, or any build's output
# differs from the reference's.  FL2_HARNESS_ARGS passes arguments to every harness run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-tests/c/build}
shift || true
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=(gcc scalar clang aarch64)
EXPECTED=$(cat tests/c/expected.sha256)
mkdir -p "$out"
out=$(cd "$out" && pwd)

FLAGS=(-std=c11 -O3 -ffp-contract=off -fno-math-errno -pthread)
# (longest first: csrc/kernels.h, three translation units per level)
SOURCES=(csrc/kernels_{baseline,avx2,avx512}.c csrc/kernels_{baseline,avx2,avx512}_columns.c
         csrc/kernels_{baseline,avx2,avx512}_rows.c csrc/kernels_avx512bf16{,_columns,_rows}.c
         csrc/strided.c csrc/fastl2.c csrc/config.c csrc/pool.c csrc/convert.c csrc/finish.c)
JOBS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
read -r -a HARNESS_ARGS <<< "${FL2_HARNESS_ARGS:-}"

failed=0
declare -A status cases secs compile_secs compile_t0
QUEUED=()

say() { printf '%s\n' "$*"; }

# need TOOL PACKAGE: fails the build (returns 1) with the package to install when TOOL is missing
need() {
    if ! command -v "$1" > /dev/null 2>&1; then
        say "FAIL $build: '$1' not found: install the Debian package '$2' (apt-get install $2)"
        return 1
    fi
}

# objects BUILD CC [EXTRA FLAGS...]: queues the compiles of csrc/ into $out/BUILD/obj on the
# shared pool of $JOBS processes (every build's kernel files at once, the longest first: one
# build's longest file alone would leave the other processes idle), unless they are up to date
objects() {
    local build=$1 cc=$2
    shift 2
    local dir=$out/$build extra=("$@")
    mkdir -p "$dir/obj"
    local key
    key=$( { "$cc" --version | head -1; printf '%s\n' "${FLAGS[@]}" "${extra[@]}";
             cat csrc/*.c csrc/*.h; } | sha256sum | cut -d' ' -f1)
    rm -f "$dir/harness"
    compile_t0[$build]=$SECONDS
    if [ -f "$dir/key" ] && [ "$(cat "$dir/key")" = "$key" ]; then
        say "  $build: csrc objects up to date (reused)"
        return 0
    fi
    rm -f "$dir/key" "$dir"/obj/*
    echo "$key" > "$dir/obj/key.pending"
    QUEUED+=("$build")
}

# drain_queue: runs the queued builds' compiles, $JOBS at a time, each file of SOURCES (the
# longest first) for every build before the next file
drain_queue() {
    local src name build
    for src in "${SOURCES[@]}"; do
        name=$(basename "$src" .c)
        for build in "${QUEUED[@]}"; do
            compiler_of "$build"
            while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
            ( rc=0; "${CC_ARGS[@]}" "${FLAGS[@]}" -Icsrc -c "$src" -o "$out/$build/obj/$name.o" \
                  2> "$out/$build/obj/$name.err" || rc=$?; echo "$rc" > "$out/$build/obj/$name.rc" ) &
        done
    done
    wait
    QUEUED=()
}

# compiler_of BUILD: CC_ARGS=(BUILD's compiler and its extra flags: BUILD_cc)
compiler_of() {
    local name="${1}_cc[@]"
    CC_ARGS=("${!name}")
}

# link BUILD CC [EXTRA FLAGS...]: checks BUILD's queued compiles, compiles the harness, links
# $out/BUILD/harness
link() {
    local build=$1 cc=$2
    shift 2
    local dir=$out/$build extra=("$@") src name ok=1
    if [ -f "$dir/obj/key.pending" ]; then
        for src in "${SOURCES[@]}"; do
            name=$(basename "$src" .c)
            cat "$dir/obj/$name.err" >&2
            [ "$(cat "$dir/obj/$name.rc" 2>/dev/null)" = 0 ] || ok=0
        done
        if [ "$ok" != 1 ]; then
            say "FAIL $build: compiling csrc/ with $cc failed (messages above)"
            return 1
        fi
        mv "$dir/obj/key.pending" "$dir/key"
    fi
    if ! "$cc" "${FLAGS[@]}" "${extra[@]}" -Wall -Icsrc -c tests/c/harness.c -o "$dir/harness.o"; then
        say "FAIL $build: compiling tests/c/harness.c with $cc failed"
        return 1
    fi
    if ! "$cc" "${FLAGS[@]}" "${extra[@]}" "$dir"/obj/*.o "$dir/harness.o" -o "$dir/harness" -lm; then
        say "FAIL $build: linking with $cc failed"
        return 1
    fi
    compile_secs[$build]=$((SECONDS - compile_t0[$build]))
}

# run BUILD [RUNNER...]: the harness's output into $out/BUILD.txt, its messages into BUILD.log
run() {
    local build=$1
    shift
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" "$out/$build/harness" "${HARNESS_ARGS[@]}" > "$out/$build.txt" 2> "$out/$build.log" || rc=$?
    t1=$(date +%s.%N)
    secs[$build]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    cases[$build]=$(wc -l < "$out/$build.txt")
    if [ "$rc" != 0 ]; then
        say "FAIL $build: the harness exited with status $rc; the end of $out/$build.log:"
        tail -n 20 "$out/$build.log" | sed 's/^/    /'
        return 1
    fi
}

# Each build: BUILD_tools checks its tools; its compiler and flags are BUILD_cc; BUILD_runner
# runs its harness.
gcc_tools() { need gcc gcc; }
scalar_tools() { need gcc gcc; }
clang_tools() { need clang clang; }
aarch64_tools() {
    need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu || return 1
    need qemu-aarch64 qemu-user || return 1
    if [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
        say "FAIL $build: no arm64 C library in /usr/aarch64-linux-gnu: install the Debian package 'libc6-dev-arm64-cross'"
        return 1
    fi
}
gcc_cc=(gcc)
scalar_cc=(gcc -DFL2_NO_VECTORS -DFL2_NO_DISPATCH)
clang_cc=(clang)
aarch64_cc=(aarch64-linux-gnu-gcc)
gcc_runner=() scalar_runner=() clang_runner=()
aarch64_runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu)

say "== fastl2 C harness: ${BUILDS[*]} into $out ($JOBS compile jobs) =="
# every build's objects first, on one pool; then each build is linked and run
for build in "${BUILDS[@]}"; do
    status[$build]=FAIL
    if "${build}_tools"; then
        compiler_of "$build"
        objects "$build" "${CC_ARGS[@]}" && status[$build]=queued
    fi
done
drain_queue
for build in "${BUILDS[@]}"; do
    say "-- $build"
    if [ "${status[$build]}" != queued ]; then
        failed=1
        continue
    fi
    status[$build]=FAIL
    compiler_of "$build"
    runner_name="${build}_runner[@]"
    if link "$build" "${CC_ARGS[@]}" && run "$build" "${!runner_name}"; then
        status[$build]=ok
    else
        failed=1
    fi
done

say "== summary =="
for build in "${BUILDS[@]}"; do
    line="$build: ${status[$build]}"
    if [ "${status[$build]}" = ok ]; then
        line+=", ${cases[$build]} cases, run ${secs[$build]} s, built in ${compile_secs[$build]} s (on the shared pool)"
        line+=" ($(head -1 "$out/$build.log" | sed 's/^harness: //'))"
        digest=$(sha256sum < "$out/$build.txt" | cut -d' ' -f1)
        if [ "$digest" != "$EXPECTED" ]; then
            line+="; DIFFERS from the committed reference (tests/c/expected.sha256: run the gcc build to see where)"
            failed=1
            say "$line"
            continue
        fi
        line+="; the committed reference's bits"
        if [ "$build" != gcc ]; then
            if [ "${status[gcc]:-}" != ok ]; then
                line+=" (gcc not built here)"
            elif cmp -s "$out/gcc.txt" "$out/$build.txt"; then
                line+="; same bits as gcc"
            else
                diff "$out/gcc.txt" "$out/$build.txt" > "$out/$build.diff" || true
                ndiff=$(grep -c '^>' "$out/$build.diff" || true)
                line+="; DIFFERS from gcc in $ndiff lines (the first ones below; all in $out/$build.diff)"
                failed=1
                say "$line"
                head -n 12 "$out/$build.diff" | sed 's/^/    /'
                continue
            fi
        else
            line+="; the reference"
        fi
    fi
    say "$line"
done
# The BF16 extension's gradient rounding against the portable one on all 2**32 floats, whatever
# the builds (gcc; 77: no AVX512_BF16 on this CPU or in this compiler: skipped)
bf16_rc=0
{ gcc "${FLAGS[@]}" -Icsrc tests/c/bf16_rounding.c -o "$out/bf16_rounding" && "$out/bf16_rounding"; } || bf16_rc=$?
if [ "$bf16_rc" != 0 ] && [ "$bf16_rc" != 77 ]; then
    say "FAIL bf16_rounding: exit status $bf16_rc"
    failed=1
fi
# csrc/exact.c (the exact sums: integer arithmetic) on every compiler and target of the builds
# asked for: the same hash as tests/c/exact_expected.txt
exact_expected=$(cat tests/c/exact_expected.txt)
for build in gcc "${BUILDS[@]}"; do
    case $build in
        gcc) cc=gcc; run=() ;;
        clang) cc=clang; run=() ;;
        aarch64) cc=aarch64-linux-gnu-gcc; run=(qemu-aarch64) ;;
        *) continue ;;
    esac
    extra=()
    [ "$build" != aarch64 ] || extra=(-static)  # (qemu-aarch64 without a sysroot)
    exact_out=$( { "$cc" "${FLAGS[@]}" ${extra[@]+"${extra[@]}"} -Icsrc tests/c/exact_targets.c csrc/exact.c \
                     -o "$out/exact_$build" && ${run[@]+"${run[@]}"} "$out/exact_$build"; } 2>&1 ) || true
    if [ "$exact_out" != "$exact_expected" ]; then
        say "FAIL exact ($build, $cc): printed '$exact_out', expected $exact_expected"
        failed=1
    else
        say "  exact sums ($build, $cc): $exact_out, as expected"
    fi
done
if [ "$failed" != 0 ]; then
    say "check_builds: FAILED"
    exit 1
fi
say "check_builds: every build gives the same bits"
