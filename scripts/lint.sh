#!/usr/bin/env bash
# Lint and type-check: ruff, then mypy, with the settings in pyproject.toml.
#   bash scripts/lint.sh              # the whole tree: nasrun/, tests/, bench/
#   bash scripts/lint.sh PATHS...     # only these files or directories, e.g. nasrun/store tests/test_store.py
# Exits non-zero when either tool reports anything, and ends with the findings per file.
#
# mypy runs twice: the package (nasrun/) with pyproject.toml's settings (strict for trial.py,
# strategies/, store/, spec/; check_untyped_defs elsewhere), and the tests and benchmarks with
# mypy's defaults (annotated functions are checked, and every import), since their test functions
# are not annotated. Imported modules are analysed but only the given paths are reported.
# The tools come with `scripts/install.sh --dev`; they are installed here when missing.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NASRUN_VENV:-$HERE/.venv}"
cd "$HERE"
if [ ! -x "$VENV/bin/ruff" ] || [ ! -x "$VENV/bin/mypy" ]; then
  echo "lint.sh: ruff or mypy is missing from $VENV; installing the dev tools" >&2
  bash "$HERE/scripts/install.sh" --dev || exit
fi

[ "$#" -gt 0 ] || set -- nasrun tests bench
package=() others=()
for p in "$@"; do
  if [ ! -e "$p" ]; then
    echo "lint.sh: no such file or directory: $p" >&2
    exit 2
  fi
  case "$(realpath --relative-to="$HERE" "$p")" in
    nasrun|nasrun/*) package+=("$p") ;;
    *) others+=("$p") ;;
  esac
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rc=0
echo "== ruff check $*"
"$VENV/bin/ruff" check --output-format concise "$@" | tee "$out/ruff" || rc=1
mypy=("$VENV/bin/mypy" --follow-imports=silent --no-error-summary)
if [ "${#package[@]}" -gt 0 ]; then
  echo "== mypy ${package[*]}"
  "${mypy[@]}" "${package[@]}" | tee "$out/mypy-package" || rc=1
fi
if [ "${#others[@]}" -gt 0 ]; then
  echo "== mypy --no-check-untyped-defs ${others[*]}"
  "${mypy[@]}" --no-check-untyped-defs --disable-error-code annotation-unchecked "${others[@]}" | tee "$out/mypy-others" || rc=1
fi

# findings per file: ruff's "path:line:col: CODE ..." and mypy's "path:line: error: ..." lines
ruff_n=$(grep -cE '^[^ :]+:[0-9]+:[0-9]+: ' "$out/ruff")
mypy_n=$(cat "$out"/mypy-* 2>/dev/null | grep -cE '^[^ :]+:[0-9]+: error: ')
if [ "$ruff_n" -gt 0 ] || [ "$mypy_n" -gt 0 ]; then
  echo "== findings per file (ruff + mypy)"
  { grep -oE '^[^ :]+:[0-9]+:[0-9]+: ' "$out/ruff"
    cat "$out"/mypy-* 2>/dev/null | grep -E '^[^ :]+:[0-9]+: error: '
  } | cut -d: -f1 | sort | uniq -c | sort -k1,1nr -k2
fi
if [ "$rc" = 0 ]; then
  echo "lint: clean"
else
  echo "lint: $((ruff_n + mypy_n)) findings (ruff $ruff_n, mypy $mypy_n)" >&2
fi
exit "$rc"
