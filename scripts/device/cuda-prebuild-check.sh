#!/usr/bin/env bash
# Issue #14 on a GPU machine: the portable CUDA prebuild, as a user of the npm package gets it.
#   1. builds it (scripts/prebuild.mjs --cuda-only: SASS sm_80/86/89/90 + compute_90 PTX, static cudart), and the CPU
#      prebuild where none is fresh (--cpu-only --if-stale), with tsc for dist/ in parallel;
#   2. checks the fat binary (cuobjdump --list-elf / --list-ptx) and the dynamic dependencies (readelf NEEDED: no
#      libcudart.so, libcublas.so.N; ldd without LD_LIBRARY_PATH: libcublas resolved through the RUNPATH);
#   3. npm pack (both prebuilds inside), npm install of the tarball into an empty directory with scripts disabled and
#      a PATH of node + npm only (no compiler), nothing built there;
#   4. the installed `tslora serve --device cuda` on the demo model, one /generate with the add and upper adapters
#      (expects ["42", "MAKE ME LOUD"]).
# Run from the repository root after `source .device-carry/prelude.sh`, alone or from scripts/device/gpu-suite.sh:
#   bash scripts/device/cuda-prebuild-check.sh
#   SUITE_EXTRA_SCRIPTS=scripts/device/cuda-prebuild-check.sh SUITE_EXTRA_LIMIT_S=220 bash scripts/device/gpu-suite.sh
# PREBUILD_CHECK_BUDGET_S (default 220) bounds the whole script; every step is cut to what is left.
# Writes "$OUT/cuda-prebuild/": summary.txt (the GPU, then one PASS/FAIL line per check, then the result), and the
# logs of every step. Exit status 0 only when every check passed.
#
# The device has no network and no npm cache: when the offline install of the tarball cannot resolve the
# dependencies, they are placed first from this checkout's node_modules (tslora itself still comes from the tarball,
# by npm, scripts off), and summary.txt says so.
set -u
OUT=${OUT:-/tmp/tslora-cuda-prebuild-check}
R="$OUT/cuda-prebuild"
mkdir -p "$R"
BUDGET=${PREBUILD_CHECK_BUDGET_S:-220}
T0=$(date +%s)
W=$(mktemp -d /tmp/tslora-prebuild-check.XXXXXX)
PLATFORM=linux-x64
CUDA_PREBUILD=prebuilds/cuda/prebuilds/$PLATFORM/tslora_cuda.glibc.node
LIB=$(cd "$(dirname "$0")/../lib" && pwd)
source "$LIB/check-summary.sh"
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
check() {  # check NAME OK(0/1) DETAIL
  checks=$((checks + 1))
  if [[ $2 == 0 ]]; then note "PASS $1: $3"; else failures=$((failures + 1)); note "FAIL $1: $3"; fi
}
# timed LIMIT_S LOG CMD...: CMD under a time limit (capped by what is left), output to $R/LOG.
timed() {
  local limit=$1 log=$2; shift 2
  local rem; rem=$(left)
  (( rem < 5 )) && { echo "budget spent" > "$R/$log"; return 124; }
  (( limit > rem )) && limit=$rem
  timeout --kill-after=5 "$limit" "$@" > "$R/$log" 2>&1
}

note "gpu: $(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>&1 | head -1)"
note "toolkit: $(nvcc --version 2>&1 | tail -1); node $(node -v); $(nproc) cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo 'n/a (no git)')"
export TSLORA_BUILD_JOBS=${TSLORA_BUILD_JOBS:-$(nproc)}

# 1. Build. dist/ (tsc) is needed by the package; it is not in the carried tree, so it is compiled beside the build.
( timeout 90 npx tsc -p tsconfig.json > "$R/tsc.log" 2>&1 ) &
TSC_PID=$!
timed 90 prebuild-cpu.log node scripts/prebuild.mjs --cpu-only --if-stale
check "cpu prebuild" $? "$(ls prebuilds/$PLATFORM/ 2>/dev/null | tr '\n' ' ')(scripts/prebuild.mjs --cpu-only --if-stale)"
timed 200 prebuild-cuda.log node scripts/prebuild.mjs --cuda-only
rc=$?
[[ $rc == 0 && -f $CUDA_PREBUILD ]]
check "cuda prebuild build" $? "rc=$rc, $(grep -E '^prebuild: ' "$R/prebuild-cuda.log" | tail -1)"
wait $TSC_PID
[[ -f dist/cli/main.js ]]
check "tsc (dist/)" $? "dist/cli/main.js $( [[ -f dist/cli/main.js ]] && echo present || echo missing)"
[[ -f $CUDA_PREBUILD ]] || exit 1

# 2. What is inside the prebuild, and what it needs from the machine.
cuobjdump --list-elf "$CUDA_PREBUILD" > "$R/cuobjdump-elf.txt" 2>&1
cuobjdump --list-ptx "$CUDA_PREBUILD" > "$R/cuobjdump-ptx.txt" 2>&1
missing=()
for sm in sm_80 sm_86 sm_89 sm_90; do grep -q "\.$sm\.cubin" "$R/cuobjdump-elf.txt" || missing+=("$sm"); done
elf_archs=$(grep -o 'sm_[0-9]*a\?\.cubin' "$R/cuobjdump-elf.txt" | sort | uniq -c | tr -s ' ' | tr '\n' ',')
check "fat binary SASS" ${#missing[@]} "cubins per arch:${elf_archs} missing: ${missing[*]:-none}"
ptx=$(grep -o 'sm_[0-9]*a\?\.ptx' "$R/cuobjdump-ptx.txt" | sort | uniq -c | tr -s ' ' | tr '\n' ',')
grep -q 'sm_90\.ptx' "$R/cuobjdump-ptx.txt"
check "fat binary PTX (compute_90, JIT for newer GPUs)" $? "ptx per arch:${ptx:- none}"
readelf -d "$CUDA_PREBUILD" > "$R/readelf.txt" 2>&1
needed=$(grep NEEDED "$R/readelf.txt" | grep -o '\[.*\]' | tr -d '[]' | tr '\n' ' ')
! grep -q 'libcudart\.so' "$R/readelf.txt" && grep -q 'libcublas\.so\.[0-9]' "$R/readelf.txt"
check "dynamic deps (static cudart, cuBLAS by soname)" $? "NEEDED: $needed; RUNPATH $(sed -n 's/.*runpath: //p' "$R/readelf.txt")"
env -u LD_LIBRARY_PATH ldd "$CUDA_PREBUILD" > "$R/ldd.txt" 2>&1
cublas_line=$(grep 'libcublas\.so' "$R/ldd.txt" | head -1 | tr -s ' \t' ' ')
! grep -q 'not found' "$R/ldd.txt" && [[ -n $cublas_line ]]
check "cuBLAS resolved at load (ldd, no LD_LIBRARY_PATH)" $? "${cublas_line:-no libcublas line}; not found: $(grep -c 'not found' "$R/ldd.txt")"

# 3. Pack and install as a user does. npm pack leaves symlinked directories out: a device copy whose models/ is a
# link to another checkout gets a real copy first.
if [[ -L models ]]; then target=$(readlink -f models); rm models && cp -r "$target" models && note "note: models/ was a symlink (device copy); replaced by a copy so that npm pack includes it"; fi
BIN="$W/bin"; mkdir -p "$BIN"
ln -s "$(command -v node)" "$BIN/node"; ln -s "$(readlink -f "$(command -v npm)")" "$BIN/npm"
CLEAN_ENV=(env -i HOME="$HOME" PATH="$BIN" npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false)
timed 60 pack.json "${CLEAN_ENV[@]}" npm pack --ignore-scripts --json --pack-destination "$W"
tarball=$(ls "$W"/tslora-*.tgz 2>/dev/null | head -1)
in_tar() { tar tzf "$tarball" | grep -q "$1"; }
[[ -n $tarball ]] && in_tar "package/$CUDA_PREBUILD" && in_tar "package/prebuilds/$PLATFORM/tslora_cpu" && in_tar 'package/models/demo/'
check "npm pack (both prebuilds and the demo model inside)" $? "$(basename "${tarball:-none}") $(du -h "${tarball:-/dev/null}" | cut -f1), $(tar tzf "${tarball:-/dev/null}" 2>/dev/null | wc -l) files"
APP="$W/app"; mkdir -p "$APP"
echo '{"name":"app","version":"1.0.0","private":true}' > "$APP/package.json"
install=(npm install --ignore-scripts --offline --no-package-lock "$tarball")
how="into an empty directory"
if ! (cd "$APP" && timed 60 install.log "${CLEAN_ENV[@]}" "${install[@]}"); then
  # No network and no npm cache here: the dependencies come from this checkout's node_modules.
  cp "$R/install.log" "$R/install-empty-dir.log"
  mkdir -p "$APP/node_modules" && cp -a node_modules/. "$APP/node_modules/" && rm -f "$APP/node_modules/.package-lock.json"
  how="dependencies pre-placed from the checkout's node_modules (no network or npm cache here; see install-empty-dir.log)"
  (cd "$APP" && timed 90 install.log "${CLEAN_ENV[@]}" "${install[@]}")
fi
rc=$?
PKG="$APP/node_modules/tslora"
[[ $rc == 0 && -f $PKG/$CUDA_PREBUILD && ! -e $PKG/build && ! -e $PKG/build-cuda ]]
check "npm install --ignore-scripts, no compiler on PATH" $? "rc=$rc, $how; installed prebuild: $( [[ -f $PKG/$CUDA_PREBUILD ]] && echo yes || echo no ), build dirs: $(ls -d "$PKG"/build* 2>/dev/null | wc -l)"

# 4. Serve on the GPU from the installed package and generate once.
"${CLEAN_ENV[@]}" "$APP/node_modules/.bin/tslora" serve --device cuda --port 0 --log-level info > "$R/serve.log" 2>&1 &
SERVER_PID=$!
url=$(wait_listening "$R/serve.log" "$SERVER_PID" $(( $(left) > 90 ? 90 : $(left) )))
[[ -n $url ]]
check "tslora serve --device cuda (installed package)" $? "${url:-not listening: $(tail -3 "$R/serve.log" | tr '\n' ' ')}"
if [[ -n $url ]]; then
  texts=$(timeout 30 "${CLEAN_ENV[@]}" node "$LIB/demo-generate.mjs" "$url" "$R/generate.json")
  engine=$(grep -o 'engine on .*' "$R/serve.log" | head -1)
  [[ $texts == '["42","MAKE ME LOUD"]' && $engine == 'engine on cuda'* ]]
  check "/generate [add, upper] on the GPU" $? "texts $texts (expected [\"42\",\"MAKE ME LOUD\"]); serve: ${engine:-no engine line}"
fi
completed=1
