#include "services/reward/rewards.h"

#include "core/common/r1_tasks.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

#include <unicode/uchar.h>
#include <unicode/uscript.h>
#include <unicode/utf8.h>

namespace grpo::reward {
namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>", kAnswerClose = "</answer>";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

size_t Count(std::string_view s, std::string_view sub) {
  size_t n = 0;
  for (size_t p = s.find(sub); p != std::string_view::npos; p = s.find(sub, p + sub.size())) ++n;
  return n;
}

bool AllSpace(std::string_view s) {
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}


}  // namespace

std::optional<std::string> ExtractAnswer(std::string_view completion) {
  size_t close = completion.rfind(kAnswerClose);
  if (close == std::string_view::npos) return std::nullopt;
  size_t open = completion.rfind(kAnswerOpen, close);
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inner = completion.substr(open + kAnswerOpen.size(), close - open - kAnswerOpen.size());
  return std::string(Trim(inner));
}

namespace {

// Script of a letter, with the CJK scripts folded into one family (Han here).
UScriptCode ScriptFamily(UChar32 c) {
  UErrorCode err = U_ZERO_ERROR;
  UScriptCode s = uscript_getScript(c, &err);
  if (U_FAILURE(err)) return USCRIPT_INVALID_CODE;
  switch (s) {
    case USCRIPT_HIRAGANA:
    case USCRIPT_KATAKANA:
    case USCRIPT_KATAKANA_OR_HIRAGANA:
    case USCRIPT_HANGUL:
    case USCRIPT_BOPOMOFO:
      return USCRIPT_HAN;
    default:
      return s;
  }
}

// Calls fn(script) for each word (maximal run of letters, the script of its first
// letter with a definite script) of UTF-8 text; invalid bytes end a word.
template <typename Fn>
void ForEachWord(std::string_view text, Fn fn) {
  int32_t i = 0;
  const int32_t n = static_cast<int32_t>(text.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  bool in_word = false;
  UScriptCode word_script = USCRIPT_COMMON;
  auto end_word = [&] {
    if (in_word) fn(word_script);
    in_word = false;
  };
  while (i < n) {
    UChar32 c;
    U8_NEXT(bytes, i, n, c);
    if (c < 0 || !u_isalpha(c)) {
      end_word();
      continue;
    }
    UScriptCode s = ScriptFamily(c);
    if (!in_word) {
      in_word = true;
      word_script = USCRIPT_COMMON;
    }
    if (word_script == USCRIPT_COMMON || word_script == USCRIPT_INHERITED) word_script = s;
  }
  end_word();
}

}  // namespace

std::string_view ChainOfThought(std::string_view completion) {
  size_t to = completion.find(kThinkOpen), tc = completion.find(kThinkClose);
  if (to != std::string_view::npos && tc != std::string_view::npos && to < tc) {
    return completion.substr(to + kThinkOpen.size(), tc - to - kThinkOpen.size());
  }
  if (size_t ao = completion.find(kAnswerOpen); ao != std::string_view::npos) return completion.substr(0, ao);
  return completion;
}

double LanguageConsistencyReward(std::string_view prompt, std::string_view completion, const std::string& language) {
  // Notations (digits or number words, issue #25): named by the task, else by the prompt.
  const std::string notation =
      language == "digits" || language == "words" ? language : NotationOf(std::string(prompt));
  if (!notation.empty()) return NotationConsistency(ChainOfThought(completion), notation);
  std::map<UScriptCode, int64_t> prompt_letters;
  ForEachWord(prompt, [&](UScriptCode s) {
    if (s != USCRIPT_COMMON && s != USCRIPT_INHERITED) ++prompt_letters[s];
  });
  if (prompt_letters.empty()) return 1.0;
  UScriptCode target = prompt_letters.begin()->first;
  for (const auto& [s, count] : prompt_letters) {
    if (count > prompt_letters[target]) target = s;
  }
  const std::string_view cot = ChainOfThought(completion);
  int64_t words = 0, matching = 0;
  ForEachWord(cot, [&](UScriptCode s) {
    if (s == USCRIPT_COMMON || s == USCRIPT_INHERITED) return;
    ++words;
    if (s == target) ++matching;
  });
  return words == 0 ? 1.0 : static_cast<double>(matching) / static_cast<double>(words);
}

double OverlongPenalty(int64_t length, int64_t max_tokens, int64_t buffer_tokens) {
  if (max_tokens <= 0) return 0.0;
  if (length > max_tokens) return -1.0;
  const int64_t free_until = max_tokens - std::max<int64_t>(0, std::min(buffer_tokens, max_tokens));
  if (length <= free_until) return 0.0;
  return -static_cast<double>(length - free_until) / static_cast<double>(max_tokens - free_until);
}

double FormatReward(std::string_view c, const std::string& mode) {
  if (mode == "lenient") {
    // One answer block that ends the completion; the think block may be missing.
    if (Count(c, kAnswerOpen) != 1 || Count(c, kAnswerClose) != 1) return 0.0;
    size_t ao = c.find(kAnswerOpen), ac = c.find(kAnswerClose);
    return ao < ac && AllSpace(c.substr(ac + kAnswerClose.size())) ? 1.0 : 0.0;
  }
  if (Count(c, kThinkOpen) != 1 || Count(c, kThinkClose) != 1 || Count(c, kAnswerOpen) != 1 ||
      Count(c, kAnswerClose) != 1) {
    return 0.0;
  }
  size_t to = c.find(kThinkOpen), tc = c.find(kThinkClose), ao = c.find(kAnswerOpen), ac = c.find(kAnswerClose);
  if (!(to < tc && tc < ao && ao < ac)) return 0.0;
  if (!AllSpace(c.substr(0, to))) return 0.0;
  if (!AllSpace(c.substr(tc + kThinkClose.size(), ao - tc - kThinkClose.size()))) return 0.0;
  if (!AllSpace(c.substr(ac + kAnswerClose.size()))) return 0.0;
  return 1.0;
}

}  // namespace grpo::reward
