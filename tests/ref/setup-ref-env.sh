#!/bin/sh
# Create the Python reference environment used by tests/ref/make_model_fixtures.py.
# Only the fixture generator needs it; the C test suite never runs Python.
#
#   tests/ref/setup-ref-env.sh            # creates <repo>/.venv-ref
#   VENV=/tmp/venv tests/ref/setup-ref-env.sh
#
# Needs Debian 12 packages: python3-venv python3-torch (torch 1.13.1, CPU).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$ROOT/.venv-ref}
PY=/usr/bin/python3   # Debian's interpreter: the one python3-torch is built for

if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "setup-ref-env: $PY cannot import torch." >&2
    echo "hint: apt-get install python3-torch python3-venv" >&2
    echo "hint: without Debian's torch, create the venv without --system-site-packages and" >&2
    echo "      'pip install torch' from PyPI (a large CUDA-enabled wheel), then raise the" >&2
    echo "      transformers/accelerate pins in requirements-ref.txt to ones that accept it." >&2
    exit 1
fi

"$PY" -m venv --system-site-packages "$VENV"
# --no-deps: Debian's torch reports version 1.13.0a0, which pip thinks does not satisfy
# peft's "torch>=1.13.0", so resolving would try to download a new torch.
"$VENV/bin/pip" install --disable-pip-version-check --no-deps -r "$HERE/requirements-ref.txt"
"$VENV/bin/python" - <<'PY'
import torch, transformers, peft, safetensors, numpy, accelerate, sentencepiece
print("torch", torch.__version__, "| transformers", transformers.__version__,
      "| peft", peft.__version__, "| accelerate", accelerate.__version__,
      "| safetensors", safetensors.__version__, "| numpy", numpy.__version__,
      "| sentencepiece", sentencepiece.__version__)
PY
echo "ok: $VENV (run: $VENV/bin/python tests/ref/make_model_fixtures.py)"
