// BpeTokenizer: a byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json,
// giving the same ids as the `tokenizers` library (checked by golden tests against it
// for Qwen3, Llama-3 and GPT-2, see tests/tokenizer_test.cc).
//
// Encoding, as in tokenizers:
//   1. cut the added tokens (added_tokens with normalized=false) out of the raw text;
//   2. normalize each remaining piece (normalizer), then cut out added tokens with
//      normalized=true;
//   3. split each piece into pre-tokens (pre_tokenizer, ending in ByteLevel);
//   4. BPE-encode each pre-token's bytes: start from one symbol per byte and apply the
//      lowest-ranked merge, leftmost first, until none applies (with ignore_merges, a
//      pre-token that is itself in the vocabulary is emitted whole first).
// No special tokens are ever added around the result; LeadingSpecialIds() tells what
// the post_processor would put in front.
//
// Supported tokenizer.json (what Qwen2/2.5/3, Llama-3 and GPT-2 use):
//   normalizer     null, NFC, NFD, NFKC, NFKD, Sequence of those
//   pre_tokenizer  Split (Regex/String pattern, any behavior, invert), Digits,
//                  ByteLevel (add_prefix_space, use_regex; must come last), Sequence
//   model          BPE: vocab, merges as "a b" strings or [a, b] pairs, ignore_merges,
//                  unk_token (must be in vocab), fuse_unk; dropout null or 0;
//                  byte_fallback false; continuing_subword_prefix and
//                  end_of_word_suffix null or ""
//   decoder        ByteLevel
//   added_tokens   id, content, special, lstrip, rstrip, single_word, normalized
// Anything else is rejected with an error naming the file and the JSON path. truncation,
// padding and the rest of post_processor are ignored (only a TemplateProcessing's
// leading special tokens are read).
//
// A BpeTokenizer is immutable after loading and safe for concurrent use from many
// threads; copies are cheap and share the same tables (and the pre-token cache).
#ifndef GRPO_CORE_TOKENIZER_BPE_TOKENIZER_H_
#define GRPO_CORE_TOKENIZER_BPE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tokenizer/added_tokens.h"

namespace grpo::tokenizer {

class BpeTokenizer {
 public:
  // `path` is a tokenizer.json or a directory holding one (a Hugging Face model dir).
  static absl::StatusOr<BpeTokenizer> FromFile(const std::string& path);
  // `source_name` prefixes error messages (usually the file path).
  static absl::StatusOr<BpeTokenizer> FromJson(std::string_view json_text, std::string_view source_name);

  // Text to ids. Adds no special tokens, but special-token text inside `text` (say
  // "<|im_start|>") becomes that token, as with tokenizers' encode(add_special_tokens=
  // False). Invalid UTF-8 in `text` is first replaced by U+FFFD.
  std::vector<int64_t> Encode(std::string_view text) const;

  // Ids to text: every token's bytes (TokenBytes) joined, then invalid UTF-8 replaced by
  // U+FFFD the way tokenizers does (one per maximal ill-formed subsequence). Ids that
  // are no token are dropped, as tokenizers does; DecodeChecked reports them instead.
  std::string Decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;
  absl::StatusOr<std::string> DecodeChecked(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // The bytes token `id` stands for ("" if no such token): for a vocabulary token its
  // byte-level string mapped back to bytes ("Ġworld" -> " world"); for an added token
  // its content. (As in tokenizers' ByteLevel decoder, any token made only of byte-level
  // symbols is mapped back to bytes, so an added token's content is used verbatim only
  // when it has some other character; for ASCII text such as "<|im_end|>" the two agree.)
  std::string TokenBytes(int64_t id) const;

  // The token's string as tokenizer.json spells it ("Ġworld", "<|im_end|>").
  std::optional<std::string> IdToToken(int64_t id) const;
  // The id of a token string as spelled in tokenizer.json (added tokens first).
  std::optional<int64_t> TokenToId(std::string_view token) const;

  // Largest id + 1 (the embedding rows a model needs).
  int64_t vocab_size() const;
  // Ids Hugging Face's post-processor (TemplateProcessing) puts before a text when
  // encoding with add_special_tokens=True, e.g. Llama-3's <|begin_of_text|>; empty for
  // Qwen and GPT-2. Encode() never adds them; callers that want HF's tokenizer(text)
  // prepend them.
  const std::vector<int64_t>& LeadingSpecialIds() const;
  // Whether `id` is a special added token (skipped by skip_special_tokens).
  bool IsSpecial(int64_t id) const;
  // Whether `id` names a token (ids between vocab and added tokens may be unused).
  bool IsValidId(int64_t id) const;
  const std::vector<AddedToken>& added_tokens() const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class StreamDecoder;
};

// Decodes ids one at a time for printing text as it is generated. Push returns the text
// that is now complete; an incomplete UTF-8 sequence at the end (a token holding the
// first bytes of an emoji) is held back until the next tokens complete it. Finish
// flushes what is held back (an unfinished sequence becomes U+FFFD). The concatenation
// of everything returned equals tokenizer.Decode(all ids, skip_special_tokens).
// One StreamDecoder per stream; it is not thread-safe, but many may share a tokenizer.
class StreamDecoder {
 public:
  explicit StreamDecoder(BpeTokenizer tokenizer, bool skip_special_tokens = false)
      : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

  std::string Push(int64_t id);
  std::string Finish();

 private:
  BpeTokenizer tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
};

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_BPE_TOKENIZER_H_
