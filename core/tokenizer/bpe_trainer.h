// TrainByteLevelBpe: learns a small byte-level BPE tokenizer from text and writes it as
// a Hugging Face tokenizer.json that both BpeTokenizer and the `tokenizers` library
// load (and encode identically: tests/tokenizer/goldens_trained.jsonl). It gives models
// initialised from scratch a real tokenizer.
//
// The tokenizer is Qwen2-shaped: NFC normalizer; pre-tokenizer Sequence[Split(Qwen2
// pattern, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)]; ByteLevel
// decoder. Its vocabulary is the 256 byte symbols (ids 0..255 in GPT-2's byte order, as
// in GPT-2 and Qwen), then one token per merge, then the special tokens as added tokens
// (special: true), then `plain_added_tokens` as added tokens with special: false (kept
// when decoding with skip_special_tokens, as Qwen3 keeps <think> and </think>).
//
// Training: count the pre-tokens of the corpus (special-token text is cut out first);
// then repeatedly merge the most frequent adjacent pair of symbols, ties going to the
// pair with the smaller (left id, right id). Deterministic: the same corpus and
// arguments always give the same bytes of JSON.
#ifndef GRPO_CORE_TOKENIZER_BPE_TRAINER_H_
#define GRPO_CORE_TOKENIZER_BPE_TRAINER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace grpo::tokenizer {

// Learns at most `num_merges` merges (fewer when no adjacent pair is left) and returns
// the tokenizer.json text. Fails on num_merges < 0 and on empty, repeated or invalid
// UTF-8 special tokens.
// `split_pattern` replaces Qwen2's Split regex (kQwen2WholeNumbersPattern, say).
absl::StatusOr<std::string> TrainByteLevelBpe(const std::vector<std::string>& corpus, int num_merges,
                                              const std::vector<std::string>& special_tokens,
                                              const std::vector<std::string>& plain_added_tokens = {},
                                              std::string_view split_pattern = {});

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_BPE_TRAINER_H_
