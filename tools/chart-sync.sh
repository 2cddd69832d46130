#!/usr/bin/env bash
# Copy the files the Helm chart ships from their sources of truth into charts/shipway/files/:
#   pipelines/compiled/training_pipeline.yaml -> files/training_pipeline.yaml (pipeline upload Job)
#   monitoring/prometheus/rules.yml           -> files/rules.yml (PrometheusRule / rules ConfigMap)
#   monitoring/grafana/*.json                 -> files/dashboards/*.json (Grafana sidecar ConfigMaps)
# Byte-for-byte copies; dashboards removed at the source are removed from the chart.
# tests/integration/test_chart.py fails when a copy is stale. Usage: tools/chart-sync.sh [--check]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="$ROOT/charts/shipway/files"
CHECK="${1:-}"
stale=0

sync() {  # sync SRC DEST
  local src="$1" dest="$2"
  if [ ! -f "$src" ]; then return 0; fi
  if cmp -s "$src" "$dest" 2>/dev/null; then return 0; fi
  if [ "$CHECK" = "--check" ]; then
    echo "stale: ${dest#"$ROOT"/} (source ${src#"$ROOT"/})" >&2
    stale=1
  else
    mkdir -p "$(dirname "$dest")"
    cp "$src" "$dest"
    echo "synced ${dest#"$ROOT"/}"
  fi
}

sync "$ROOT/pipelines/compiled/training_pipeline.yaml" "$FILES/training_pipeline.yaml"
sync "$ROOT/pipelines/compiled/batch_pipeline.yaml" "$FILES/batch_pipeline.yaml"
sync "$ROOT/monitoring/prometheus/rules.yml" "$FILES/rules.yml"
shopt -s nullglob
for src in "$ROOT"/monitoring/grafana/*.json; do
  sync "$src" "$FILES/dashboards/$(basename "$src")"
done
for dest in "$FILES"/dashboards/*.json; do
  if [ ! -f "$ROOT/monitoring/grafana/$(basename "$dest")" ]; then
    if [ "$CHECK" = "--check" ]; then
      echo "stale: ${dest#"$ROOT"/} (no longer in monitoring/grafana)" >&2
      stale=1
    else
      rm "$dest"
      echo "removed ${dest#"$ROOT"/}"
    fi
  fi
done
exit "$stale"
