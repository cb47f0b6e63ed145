#!/bin/bash
# Run experiments/device_speed.py on an offline GPU machine (how the H100 figures in README.md were made).
#
# The GPU machine has Python 3.12 with numpy, scipy, pandas, matplotlib and CUDA 13, but no
# brian2, brian2cuda or gymnasium, and no network. Fetch their wheels here first:
#   pip download --dest .device_wheels --python-version 3.12 --only-binary=:all: --no-deps \
#       brian2==2.10.1 brian2cuda==1.0b1 cython==3.1.3 gymnasium farama-notifications
# then carry .device_wheels/ with the working tree and run, from the repository root there:
#   bash experiments/run_on_gpu_machine.sh --seeds 2 --devices runtime,cpp_standalone,cuda_standalone --out OUT
# brian2cuda 1.0b1's synapses.cu bug (it reads defaultclock) is left in the installed file:
# nmbrl_brian.devices.select_device serves a fixed copy of that template at run time.
set -o pipefail
W=${WHEELS:-.device_wheels}
PY=python3
export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1
t0=$(date +%s)
if ! $PY -c "import brian2, brian2cuda, gymnasium, nmbrl_brian.equations" 2>/dev/null; then
  echo "== installing into /tmp/site"
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $W/*.whl || exit 1
  if ! $PY -c "import brian2"; then
    echo "== brian2 does not import with the system numpy; installing $W/fallback/numpy"
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $W/fallback/numpy-*.whl || exit 1
  fi
  $PY -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . || exit 1
fi
# brian2cuda 1.0b1 bug (synapses.cu reads defaultclock): left in the installed file on purpose;
# nmbrl_brian.devices.select_device serves a fixed copy of the template at run time.
echo "== installed synapses.cu:"; grep -n "timestep\[0\] >= {{pathway.name}}_delay" /tmp/site/brian2cuda/templates/synapses.cu
# cuRAND: the library (and header) of the nvidia-curand wheel
CR=$(find /usr/local/cuda/ /usr/local/cuda*/ /opt/torch/.venv/lib/python3.12/site-packages/nvidia -name 'libcurand.so*' 2>/dev/null | head -1)
CH=$(find /usr/local/cuda/ /usr/local/cuda*/ /opt/torch/.venv/lib/python3.12/site-packages/nvidia -name 'curand.h' 2>/dev/null | head -1)
echo "== libcurand: $CR ; curand.h: $CH"
mkdir -p /tmp/curand && [ -n "$CR" ] && ln -sf "$CR" /tmp/curand/libcurand.so
export LIBRARY_PATH=/tmp/curand:$(dirname "${CR:-/x/x}"):$LIBRARY_PATH
export LD_LIBRARY_PATH=/tmp/curand:$(dirname "${CR:-/x/x}"):$LD_LIBRARY_PATH
[ -n "$CH" ] && export CPATH=$(dirname "$CH"):$CPATH
echo "== versions"
nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
which nvcc; nvcc --version | tail -2; nproc; g++ --version | head -1
$PY -c "import sys, numpy, Cython, brian2, brian2cuda, gymnasium; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cython', Cython.__version__, 'brian2', brian2.__version__, 'brian2cuda', brian2cuda.__version__, 'gymnasium', gymnasium.__version__)" || exit 1
echo "== setup took $(( $(date +%s) - t0 )) s"
$PY experiments/device_speed.py "$@"
