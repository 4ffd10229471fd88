// Regex: the pre-tokenizer patterns of tokenizer.json, run with PCRE2 (UTF and Unicode
// property mode, JIT-compiled when the library supports it).
//
// Hugging Face tokenizers runs these patterns with Oniguruma. The syntax the published
// tokenizers use (`(?i:...)`, `\p{L}`, `\p{N}{1,3}`, `(?!\S)`, classes) means the same in
// PCRE2, with one difference we translate away: Oniguruma's `\s` is the Unicode
// White_Space property, while PCRE2's also matches U+180E (MONGOLIAN VOWEL SEPARATOR),
// so `\s` and `\S` are rewritten into explicit White_Space classes.
//
// A compiled Regex is immutable and may be used from many threads at once (each thread
// keeps its own match buffer).
#ifndef GRPO_CORE_TOKENIZER_REGEX_H_
#define GRPO_CORE_TOKENIZER_REGEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace grpo::tokenizer {

class Regex {
 public:
  // An Oniguruma-syntax pattern, as in tokenizer.json's {"Regex": ...}.
  static absl::StatusOr<Regex> Compile(std::string_view pattern);
  // Matches `text` literally, as in tokenizer.json's {"String": ...}.
  static absl::StatusOr<Regex> Literal(std::string_view text);

  // Calls f(start, end) for every match in `text` (valid UTF-8), left to right, with
  // the semantics of Rust's onig find_iter: an empty match right where the previous
  // match ended is skipped, and the search moves on one character.
  void FindAll(std::string_view text, absl::FunctionRef<void(size_t, size_t)> f) const;

  // The PCRE2 pattern actually compiled (after the `\s` rewrite), for error messages.
  const std::string& pcre2_pattern() const { return pattern_; }

 private:
  struct Code;
  static absl::StatusOr<Regex> CompileWith(std::string pattern, uint32_t options, std::string_view shown);
  Regex(std::shared_ptr<const Code> code, std::string pattern) : code_(std::move(code)), pattern_(std::move(pattern)) {}
  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

// Rewrites `\s` and `\S` into Unicode White_Space classes (see the file comment).
std::string OnigurumaToPcre2(std::string_view pattern);

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_REGEX_H_
