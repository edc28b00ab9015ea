#!/usr/bin/env bash
# No import cycle between the crate's top-level modules (issue 13): the
# shared tool prints who uses whom and exits non-zero on a cycle. The copy
# beside the repository (../shared/tools, where CI puts one) is the reference;
# scripts/module-graph.py is a copy of it kept in the repository, so the
# check runs on any clone, wherever shared/ is: a check that silently did
# not run would pass either way.
set -euo pipefail
cd "$(dirname "$0")/.."

tool="${MODULE_GRAPH:-../shared/tools/module-graph}"
if [ ! -f "$tool" ]; then
  tool=scripts/module-graph.py
  echo "module-graph.sh: ../shared/tools/module-graph not found; using the copy in $tool"
fi
# Run through its interpreter: a copy of shared/ may have lost the mode bit.
if ! python3 "$tool" src; then
  echo "module-graph.sh: an import cycle between top-level modules (see CYCLE above); break it" >&2
  exit 1
fi
