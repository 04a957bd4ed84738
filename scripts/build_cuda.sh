#!/usr/bin/env bash
# Build llama-cpp-python 0.3.36 with CUDA (for memora's GPU offload) from its source distribution,
# on a machine with nvcc, cmake, ninja and scikit-build-core but no internet.
#
# Two steps, usually on two machines:
#
#   scripts/build_cuda.sh pack  [SDIST] [OUTDIR]
#       On a machine with the sdist (or with PyPI access: it is downloaded when SDIST is not
#       given and /tmp/src has none). Unpacks it, drops what the library build never reads
#       (vendor/llama.cpp/{models,docs,media,tools/ui,benches} and the git folders), and writes
#       OUTDIR/llama_cpp_python-0.3.36-trimmed.tar.gz (about 9 MB instead of 77 MB).
#       OUTDIR defaults to carry/llama-src (git-ignored).
#
#   scripts/build_cuda.sh build [TARBALL]
#       On the GPU machine. Unpacks the trimmed tarball under $WORKDIR and builds and installs
#       it with pip (--no-build-isolation --no-deps --no-index), CUDA on, for CUDA_ARCH.
#       Environment:
#         PYTHON      interpreter to install into            (default: python3)
#         JOBS        parallel compile jobs                  (default: nproc)
#         CUDA_ARCH   CMAKE_CUDA_ARCHITECTURES               (default: 90, Hopper: H100/H200)
#         PIP_TARGET  install with --target DIR instead of into PYTHON's site-packages
#         WORKDIR     where to unpack and build              (default: /tmp/llama-cuda-build)
#         EXTRA_CMAKE_ARGS  appended to CMAKE_ARGS
#       The full build log goes to $WORKDIR/build.log. About 5 minutes with 16 jobs on an H200
#       machine.
#
# Why the system compilers: with the GPU machine's default `g++` wrapper the built library
# segfaulted while loading a model whenever libstdc++ had been loaded before llama_cpp (e.g.
# after `import numpy`), on CPU and GPU layers alike, and `verbose=False` hid every message of
# the crash. So the build pins CC=/usr/bin/gcc, CXX=/usr/bin/g++ and the CUDA host compiler to
# /usr/bin/g++ (tests/test_llamacpp.py::test_loads_after_numpy_was_imported_first covers it).
#
# The CPU kernels are built portable (AVX2, no -march=native), as in the Makefile's CPU build:
# -march=native also compiles ggml's AMX kernels, which crash where the CPU reports AMX but the
# kernel or sandbox does not grant the AMX tile state.
set -euo pipefail

VERSION=0.3.36
NAME=llama_cpp_python-$VERSION
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "build_cuda.sh: $*" >&2; exit 1; }

pack() {
    local sdist=${1:-} outdir=${2:-$ROOT/carry/llama-src}
    if [[ -z $sdist ]]; then
        if [[ -f /tmp/src/$NAME.tar.gz ]]; then
            sdist=/tmp/src/$NAME.tar.gz
        else
            mkdir -p /tmp/src
            python3 -m pip download --no-deps --no-binary :all: -d /tmp/src \
                "llama-cpp-python==$VERSION"
            sdist=/tmp/src/$NAME.tar.gz
        fi
    fi
    [[ -f $sdist ]] || die "no sdist at $sdist"
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    tar -xzf "$sdist" -C "$tmp"
    local src=$tmp/$NAME
    [[ -d $src ]] || die "$sdist does not unpack to $NAME/"
    local vendor=$src/vendor/llama.cpp
    # Not read by the library build (LLAMA_BUILD_TOOLS/EXAMPLES/TESTS are off in a subproject
    # build, LLAVA_BUILD=off skips tools/mtmd): model vocab files, docs, images, the web UI,
    # benchmark data, and git metadata (the build-info falls back to "unknown" without .git).
    rm -rf "$vendor/models" "$vendor/docs" "$vendor/media" "$vendor/tools/ui" "$vendor/benches"
    find "$src" \( -name .git -o -name .github \) -prune -exec rm -rf {} +
    mkdir -p "$outdir"
    local out=$outdir/$NAME-trimmed.tar.gz
    tar -C "$tmp" -czf "$out" "$NAME"
    echo "packed $out ($(du -h "$out" | cut -f1); sdist was $(du -h "$sdist" | cut -f1))"
}

build() {
    local tarball=${1:-$ROOT/carry/llama-src/$NAME-trimmed.tar.gz}
    local python=${PYTHON:-python3}
    local jobs=${JOBS:-$(nproc)}
    local arch=${CUDA_ARCH:-90}
    local workdir=${WORKDIR:-/tmp/llama-cuda-build}
    [[ -f $tarball ]] || die "no source tarball at $tarball (run 'pack' first)"
    local nvcc
    nvcc=$(command -v nvcc || true)
    [[ -n $nvcc ]] || { [[ -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc; }
    [[ -n $nvcc ]] || die "nvcc not found (PATH or /usr/local/cuda/bin)"
    [[ -x /usr/bin/gcc && -x /usr/bin/g++ ]] || die "need /usr/bin/gcc and /usr/bin/g++"
    for tool in cmake ninja; do
        command -v "$tool" >/dev/null || "$python" -c "import $tool" 2>/dev/null \
            || die "$tool not found"
    done
    "$python" -c "import scikit_build_core" || die "scikit-build-core missing in $python"

    rm -rf "$workdir"
    mkdir -p "$workdir"
    tar -xzf "$tarball" -C "$workdir"
    local src=$workdir/$NAME
    local log=$workdir/build.log

    export CC=/usr/bin/gcc CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++ CUDACXX=$nvcc
    export CMAKE_BUILD_PARALLEL_LEVEL=$jobs
    export CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$arch -DLLAVA_BUILD=off \
-DCMAKE_C_COMPILER=/usr/bin/gcc -DCMAKE_CXX_COMPILER=/usr/bin/g++ \
-DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_COMPILER=$nvcc \
-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_CCACHE=OFF ${EXTRA_CMAKE_ARGS:-}"
    local target=()
    [[ -n ${PIP_TARGET:-} ]] && target=(--target "$PIP_TARGET" --upgrade)
    echo "building $NAME with CUDA arch $arch, $jobs jobs, nvcc $("$nvcc" --version | tail -1)"
    echo "CMAKE_ARGS=$CMAKE_ARGS"
    local start=$SECONDS
    if ! "$python" -m pip install -v --no-build-isolation --no-deps --no-index --no-cache-dir \
        --disable-pip-version-check "${target[@]}" "$src" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        die "build failed after $((SECONDS - start)) s; full log: $log"
    fi
    echo "built and installed in $((SECONDS - start)) s; log: $log"
    local pp=()
    [[ -n ${PIP_TARGET:-} ]] && pp=(env "PYTHONPATH=$PIP_TARGET${PYTHONPATH:+:$PYTHONPATH}")
    # Load check in a fresh process, numpy first (the crash the system compilers avoid).
    "${pp[@]}" "$python" -c "import numpy, llama_cpp; \
print('llama_cpp', llama_cpp.__version__, 'gpu offload:', llama_cpp.llama_supports_gpu_offload())"
}

case ${1:-} in
    pack) shift; pack "$@" ;;
    build) shift; build "$@" ;;
    *) die "usage: $0 pack [SDIST] [OUTDIR] | build [TARBALL]" ;;
esac
