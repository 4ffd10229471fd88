// UTF-8 helpers: stepping over one code point, replacing invalid sequences exactly as
// Rust's String::from_utf8_lossy does (Hugging Face tokenizers' ByteLevel decoder ends
// with it; the sandbox uses it for program output, which is arbitrary bytes, before it
// goes into JSON or a proto string), and finding the incomplete sequence at the end of a
// buffer that a streaming decoder must hold back. Stateless, so thread-safe.
#ifndef GRPO_CORE_COMMON_UTF8_H_
#define GRPO_CORE_COMMON_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace grpo {

// One step of a left-to-right UTF-8 scan starting at s[i] (i < s.size()).
struct Utf8Step {
  // Bytes consumed: the whole sequence when valid; otherwise the "maximal subpart" of
  // the ill-formed sequence (1 to 3 bytes), which lossy decoding replaces by one U+FFFD.
  int len = 1;
  bool valid = false;
  // Invalid only because the input ended inside an otherwise well-formed sequence.
  bool truncated = false;
  char32_t cp = 0;  // the code point when valid
};
Utf8Step NextUtf8(std::string_view s, size_t i);

bool IsValidUtf8(std::string_view s);

// `bytes` with every ill-formed subsequence replaced by U+FFFD (from_utf8_lossy).
std::string Utf8Lossy(std::string_view bytes);

// How many bytes at the end of `bytes` (0 to 3) are the start of a well-formed sequence
// that the input cut short, e.g. 1 for "a\xF0", 2 for "a\xF0\x9F", 0 for "a\x9F".
size_t IncompleteUtf8Tail(std::string_view bytes);

void AppendUtf8(char32_t cp, std::string* out);

// The U+FFFD replacement character in UTF-8.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

}  // namespace grpo

#endif  // GRPO_CORE_COMMON_UTF8_H_
