#include "core/common/utf8.h"

#include <cstdint>

namespace grpo {

// Table 3-7 of the Unicode standard: the lead byte fixes the length and the allowed
// range of the second byte; later bytes are always 0x80..0xBF.
Utf8Step NextUtf8(std::string_view s, size_t i) {
  const uint8_t b0 = static_cast<uint8_t>(s[i]);
  Utf8Step step;
  if (b0 < 0x80) {
    step.len = 1;
    step.valid = true;
    step.cp = b0;
    return step;
  }
  int need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return step;  // a stray continuation byte, C0, C1 or F5..FF: one byte, invalid
  }
  for (int k = 1; k <= need; ++k) {
    if (i + k >= s.size()) {
      step.len = k;
      step.truncated = true;
      return step;
    }
    const uint8_t b = static_cast<uint8_t>(s[i + k]);
    const uint8_t min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      step.len = k;
      return step;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  step.len = need + 1;
  step.valid = true;
  step.cp = cp;
  return step;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    Utf8Step step = NextUtf8(s, i);
    if (!step.valid) return false;
    i += step.len;
  }
  return true;
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    Utf8Step step = NextUtf8(bytes, i);
    if (step.valid) {
      out.append(bytes.data() + i, step.len);
    } else {
      out.append(kReplacementChar);
    }
    i += step.len;
  }
  return out;
}

size_t IncompleteUtf8Tail(std::string_view bytes) {
  // A lead byte is never a continuation byte, so whatever precedes it, a left-to-right
  // scan starts a new sequence there. Look back over at most three continuation bytes.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = static_cast<uint8_t>(bytes[n - back]);
    if (b >= 0x80 && b <= 0xBF) continue;  // continuation: keep looking back
    Utf8Step step = NextUtf8(bytes, n - back);
    return (!step.valid && step.truncated) ? back : 0;
  }
  return 0;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace grpo
