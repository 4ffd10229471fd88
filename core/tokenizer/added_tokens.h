// Added tokens: the "added_tokens" of tokenizer.json (special tokens such as
// <|im_start|>, and plain added ones such as Qwen3's <think>), and the matcher that cuts
// them out of text before anything else sees it, with the semantics of Hugging Face
// tokenizers' AddedVocabulary: leftmost-longest, non-overlapping matches; a single_word
// token matches only between non-word characters; lstrip/rstrip tokens swallow the
// whitespace before/after them. Immutable once built: thread-safe.
#ifndef GRPO_CORE_TOKENIZER_ADDED_TOKENS_H_
#define GRPO_CORE_TOKENIZER_ADDED_TOKENS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"

namespace grpo::tokenizer {

struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  // Matched in normalized text (true) or in the raw input (false, usual for specials).
  bool normalized = false;
};

class AddedTokenMatcher {
 public:
  // Registers `pattern` (non-empty) as the text of tokens[token_index].
  void Add(std::string_view pattern, int token_index);
  bool empty() const { return nodes_.size() <= 1; }

  // Covers `text` with consecutive pieces and calls f(start, end, token_index), where
  // token_index is -1 for the text between tokens. Empty text gives no call. `tokens` is
  // the list the indices refer to (for their lstrip/rstrip/single_word flags).
  void Split(std::string_view text, const std::vector<AddedToken>& tokens,
             absl::FunctionRef<void(size_t, size_t, int)> f) const;

 private:
  struct Node {
    int token = -1;  // token index if a pattern ends here
  };
  // The longest pattern that starts at text[i]: its length and token, or {0, -1}.
  std::pair<size_t, int> LongestAt(std::string_view text, size_t i) const;

  std::vector<Node> nodes_{Node{}};                // nodes_[0] is the root
  absl::flat_hash_map<uint64_t, int32_t> edges_;   // (node << 8 | byte) -> child
  bool first_byte_[256] = {};                       // bytes some pattern starts with
};

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_ADDED_TOKENS_H_
