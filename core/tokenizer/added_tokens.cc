#include "core/tokenizer/added_tokens.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "core/common/utf8.h"

namespace grpo::tokenizer {
namespace {

// Rust regex's Unicode \w and \s, which AddedVocabulary uses.
bool IsWordChar(char32_t cp) {
  const UChar32 c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) return true;
  const int32_t mask = U_GET_GC_MASK(c);
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}
bool IsSpaceChar(char32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE); }

// The code point that ends `s` (non-empty, valid UTF-8) and its start offset.
std::pair<char32_t, size_t> LastChar(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  return {NextUtf8(s, i).cp, i};
}

}  // namespace

void AddedTokenMatcher::Add(std::string_view pattern, int token_index) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (char ch : pattern) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(ch);
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      nodes_.push_back(Node{});
      it = edges_.emplace(key, static_cast<int32_t>(nodes_.size() - 1)).first;
    }
    node = it->second;
  }
  nodes_[node].token = token_index;
  first_byte_[static_cast<uint8_t>(pattern[0])] = true;
}

std::pair<size_t, int> AddedTokenMatcher::LongestAt(std::string_view text, size_t i) const {
  std::pair<size_t, int> best{0, -1};
  int32_t node = 0;
  for (size_t j = i; j < text.size(); ++j) {
    auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[j]));
    if (it == edges_.end()) break;
    node = it->second;
    if (nodes_[node].token >= 0) best = {j + 1 - i, nodes_[node].token};
  }
  return best;
}

void AddedTokenMatcher::Split(std::string_view text, const std::vector<AddedToken>& tokens,
                              absl::FunctionRef<void(size_t, size_t, int)> f) const {
  if (text.empty()) return;
  if (empty()) {
    f(0, text.size(), -1);
    return;
  }
  size_t start_offset = 0;  // end of what has been handed out so far
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[i])]) {
      ++i;
      continue;
    }
    auto [len, index] = LongestAt(text, i);
    if (index < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;  // matches never overlap, even a discarded one
    const AddedToken& token = tokens[index];
    if (token.single_word) {
      bool space_before = start == 0 || !IsWordChar(LastChar(text.substr(0, start)).first);
      bool space_after = stop == text.size() || !IsWordChar(NextUtf8(text, stop).cp);
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      // Swallow the whitespace run before the token, but not text already handed out.
      size_t s = start;
      while (s > 0) {
        auto [cp, at] = LastChar(text.substr(0, s));
        if (!IsSpaceChar(cp)) break;
        s = at;
      }
      start = std::max(s, start_offset);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        Utf8Step step = NextUtf8(text, stop);
        if (!IsSpaceChar(step.cp)) break;
        stop += step.len;
      }
    }
    if (start_offset < start) f(start_offset, start, -1);
    f(start, stop, index);
    start_offset = stop;
  }
  if (start_offset < text.size()) f(start_offset, text.size(), -1);
}

}  // namespace grpo::tokenizer
