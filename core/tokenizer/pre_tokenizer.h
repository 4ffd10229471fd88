// PreTokenizer: the "pre_tokenizer" section of tokenizer.json, which cuts normalized
// text into the pieces ("pre-tokens") that BPE encodes one at a time.
//
// Supported steps, with Hugging Face tokenizers' semantics:
//   Split      pattern {"Regex": ...} or {"String": ...}; behavior Isolated, Removed,
//              MergedWithPrevious, MergedWithNext or Contiguous; invert.
//   Digits     individual_digits.
//   ByteLevel  add_prefix_space, use_regex (the GPT-2 pattern). It must be the last
//              step; the byte-to-character mapping it also does is left implicit here:
//              pre-tokens stay raw UTF-8 bytes and the BPE model works on bytes.
//   Sequence   of the above.
// Anything else is an error naming its JSON path. Immutable: thread-safe.
#ifndef GRPO_CORE_TOKENIZER_PRE_TOKENIZER_H_
#define GRPO_CORE_TOKENIZER_PRE_TOKENIZER_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/tokenizer/regex.h"

namespace grpo::tokenizer {

// Qwen2's split pattern (Qwen2, Qwen2.5 and Qwen3 tokenizer.json): like Llama-3's but
// with single digits (\p{N} instead of \p{N}{1,3}).
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2's pattern with whole digit runs (" 21" one pre-token, as GPT-2 cuts numbers)
// instead of single digits: small models on arithmetic then see numbers as tokens.
inline constexpr std::string_view kQwen2WholeNumbersPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2's pattern, used by ByteLevel when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class PreTokenizer {
 public:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

  // `j` is the section's value, `path` its JSON path ("pre_tokenizer").
  static absl::StatusOr<PreTokenizer> FromJson(const nlohmann::json& j, const std::string& path);

  // Sequence[Split(kQwen2Pattern, Isolated), ByteLevel(add_prefix_space=false,
  // use_regex=false)], what the trainer writes.
  static PreTokenizer Qwen2();
  // The same with another Split pattern.
  static absl::StatusOr<PreTokenizer> Qwen2Shaped(std::string_view split_pattern);

  // Whether the last step is ByteLevel (required for byte-level BPE).
  bool ends_with_byte_level() const { return !steps_.empty() && steps_.back().kind == Kind::kByteLevel; }

  // Cuts `text` (valid UTF-8) and calls emit(piece) for every non-empty pre-token in
  // order. The views are valid only during the call.
  void Run(std::string_view text, absl::FunctionRef<void(std::string_view)> emit) const;

 private:
  enum class Kind { kSplit, kDigits, kByteLevel };
  struct Step {
    Kind kind = Kind::kSplit;
    std::shared_ptr<const Regex> regex;  // kSplit, and kByteLevel with use_regex
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool individual_digits = false;
    bool add_prefix_space = false;
    bool use_regex = false;
  };
  static absl::Status Parse(const nlohmann::json& j, const std::string& path, std::vector<Step>* steps);
  void RunFrom(size_t step, std::string_view text, absl::FunctionRef<void(std::string_view)> emit) const;

  std::vector<Step> steps_;
};

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_PRE_TOKENIZER_H_
