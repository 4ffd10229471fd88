// ExtractAnswer: the last <answer> block and/or the last \boxed{} / \fbox{}, and the
// free-text mode (math_checker.h lists its stages).
//
// Every stage is linear in the completion's length: math segments are found in one
// pass, phrases by a bounded number of reverse searches with a bounded look-ahead, and
// the last number in one pass. Bytes that are not ASCII are opaque (never letters or
// digits), so invalid UTF-8 is harmless.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "core/math/math_checker.h"

namespace grpo::math {
namespace {

constexpr size_t kNpos = std::string_view::npos;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Strip(std::string_view s) {
  absl::string_view r = absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size()));
  return std::string_view(r.data(), r.size());
}

// The content of the last \boxed{...} or \fbox{...} in `text` (braces nested), or
// nullopt when there is none or it is never closed. "\boxed 5" (no brace) gives "5".
std::optional<std::string> LastBoxedOnly(std::string_view text, size_t* start);

// The box command at `pos` (\boxed or \fbox): its content, and in *end the index just
// past it; nullopt when its brace is never closed.
std::optional<std::string> BoxAt(std::string_view text, size_t pos, size_t* end) {
  size_t i = pos + (text.compare(pos, 6, "\\boxed") == 0 ? 6 : 5);
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size()) return std::nullopt;
  if (text[i] != '{') {
    // \boxed 5: up to the next space or '$'.
    size_t stop = text.find_first_of(" $\n", i);
    if (stop == kNpos) stop = text.size();
    *end = stop;
    return std::string(text.substr(i, stop - i));
  }
  int depth = 0;
  for (size_t j = i; j < text.size(); ++j) {
    if (text[j] == '\\' && j + 1 < text.size()) {  // \{ and \} do not count
      ++j;
      continue;
    }
    if (text[j] == '{') ++depth;
    if (text[j] == '}' && --depth == 0) {
      *end = j + 1;
      return std::string(text.substr(i + 1, j - i - 1));
    }
  }
  return std::nullopt;
}

// Whether `between` (the text between two boxes or two math segments) holds only
// separators: spaces, ',', ';', '$', \( \) \[ \], \quad, "and", \text{and}, and with
// `or_too` "or". Then "\boxed{1} and \boxed{2}" is the answer "1, 2"; any other word
// ("\boxed{3} no, \boxed{4}") leaves the last one alone. Long texts are never separators.
bool OnlySeparators(std::string_view between, bool or_too = false) {
  if (between.size() > 64) return false;
  std::string rest(between);
  for (const char* drop : {"\\text{and}", "\\text{ and }", "\\text{or}", "\\text{ or }", "\\quad", "\\qquad",
                           "\\(", "\\)", "\\[", "\\]", "\\,", "and", "or", "$", ",", ";", " ", "\n", "."}) {
    if (!or_too && (std::strcmp(drop, "or") == 0 || std::strstr(drop, "or") != nullptr)) continue;
    for (size_t p; (p = rest.find(drop)) != std::string::npos;) rest.erase(p, std::strlen(drop));
  }
  return rest.empty();
}

std::optional<std::string> LastBoxed(std::string_view text) {
  size_t start = 0;
  auto last = LastBoxedOnly(text, &start);
  if (!last) return last;
  std::string joined = *last;
  // Earlier boxes joined to the last one by separators only.
  for (int n = 0; n < 64; ++n) {
    size_t prev_start = 0;
    std::string_view head = text.substr(0, start);
    auto prev = LastBoxedOnly(head, &prev_start);
    if (!prev) break;
    // The previous box ends at the last '}' of head before `start`.
    size_t prev_end = head.rfind('}');
    if (prev_end == std::string_view::npos || !OnlySeparators(head.substr(prev_end + 1))) break;
    joined = *prev + ", " + joined;
    start = prev_start;
  }
  return joined;
}

std::optional<std::string> LastBoxedOnly(std::string_view text, size_t* start) {
  size_t best = std::string_view::npos;
  for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    size_t pos = text.rfind(cmd);
    if (pos != std::string_view::npos && (best == std::string_view::npos || pos > best)) best = pos;
  }
  if (best == std::string_view::npos) return std::nullopt;
  *start = best;
  size_t end = 0;
  return BoxAt(text, best, &end);
}

std::optional<std::string> LastAnswerTag(std::string_view text) {
  size_t close = text.rfind("</answer>");
  if (close == std::string_view::npos) return std::nullopt;
  size_t open = text.rfind("<answer>", close);
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inner = text.substr(open + 8, close - open - 8);
  if (auto boxed = LastBoxed(inner)) return boxed;
  return std::string(inner);
}

// ---------------------------------------------------------------------------------------
// Free text

// A math segment: [open, close) with its delimiters, [inner, inner_end) without.
struct Segment {
  size_t open, inner, inner_end, close;
};

// Whether the content of a $...$ pair reads as prose: three words or more (letter runs
// after a space, outside braces, not LaTeX commands). Then its first '$' was a currency
// sign ("has $10,200. Final Answer: The final answer is $10,455$").
bool Prose(std::string_view s) {
  int words = 0, depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {
      ++i;
      while (i + 1 < s.size() && IsAlpha(s[i + 1])) ++i;
      continue;
    }
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (depth == 0 && IsAlpha(c) && (i == 0 || s[i - 1] == ' ') && i + 1 < s.size() && IsAlpha(s[i + 1]) &&
        ++words >= 3) {
      return true;
    }
  }
  return false;
}

// The math segments of `t`, left to right, in one pass: $$...$$ and \[...\] (may span
// lines), $...$ and \(...\) (one line, as Math-Verify reads them). \$ is an escaped
// dollar. A delimiter that is never closed is plain text ("it costs $5"), and so is a
// '$' whose pair would enclose prose.
std::vector<Segment> MathSegments(std::string_view t) {
  std::vector<Segment> out;
  const size_t n = t.size();
  bool no_display_dollar = false, no_display_bracket = false;
  size_t paren_fails_before = 0;  // an \( before this index cannot be closed on its line
  size_t i = 0;
  while (i < n) {
    const char c = t[i];
    if (c == '\\' && i + 1 < n && t[i + 1] == '[') {
      size_t e = no_display_bracket ? kNpos : t.find("\\]", i + 2);
      if (e == kNpos) {
        no_display_bracket = true;
        i += 2;
        continue;
      }
      if (e > i + 2) out.push_back({i, i + 2, e, e + 2});
      i = e + 2;
      continue;
    }
    if (c == '\\' && i + 1 < n && t[i + 1] == '(') {
      size_t e = kNpos;
      if (i >= paren_fails_before) {
        size_t j = i + 2;
        for (; j < n && t[j] != '\n'; ++j) {
          if (t[j] == '\\' && j + 1 < n && t[j + 1] == ')') {
            e = j;
            break;
          }
        }
        if (e == kNpos) paren_fails_before = j;  // no \) before the line ends
      }
      if (e == kNpos) {
        i += 2;
        continue;
      }
      if (e > i + 2) out.push_back({i, i + 2, e, e + 2});
      i = e + 2;
      continue;
    }
    if (c == '\\') {  // \$, \\ ...: an escaped character
      i += 2;
      continue;
    }
    if (c != '$') {
      ++i;
      continue;
    }
    if (i + 1 < n && t[i + 1] == '$' && !no_display_dollar) {
      size_t e = kNpos;
      for (size_t j = i + 2; j + 1 < n; ++j) {
        if (t[j] == '\\') {
          ++j;
          continue;
        }
        if (t[j] == '$' && t[j + 1] == '$') {
          e = j;
          break;
        }
      }
      if (e != kNpos) {
        if (e > i + 2) out.push_back({i, i + 2, e, e + 2});
        i = e + 2;
        continue;
      }
      no_display_dollar = true;  // no "$$" after this one: read it as "$" "$"
    }
    // Inline: up to the next unescaped '$' on the same line.
    size_t e = kNpos;
    size_t j = i + 1;
    for (; j < n && t[j] != '\n'; ++j) {
      if (t[j] == '\\') {
        ++j;
        continue;
      }
      if (t[j] == '$') {
        e = j;
        break;
      }
    }
    if (e == kNpos || Prose(t.substr(i + 1, e - i - 1))) {  // a plain '$'
      ++i;
      continue;
    }
    if (e > i + 1) out.push_back({i, i + 1, e, e + 1});
    i = e + 1;
  }
  return out;
}

// The index of the segment containing position p (delimiters included), or -1.
int SegmentAt(const std::vector<Segment>& segs, size_t p) {
  auto it = std::upper_bound(segs.begin(), segs.end(), p, [](size_t v, const Segment& s) { return v < s.open; });
  if (it == segs.begin()) return -1;
  --it;
  return p < it->close ? static_cast<int>(it - segs.begin()) : -1;
}

// The index of the first segment opening at or after p.
size_t FirstSegmentFrom(const std::vector<Segment>& segs, size_t p) {
  return std::lower_bound(segs.begin(), segs.end(), p, [](const Segment& s, size_t v) { return s.open < v; }) -
         segs.begin();
}

bool Joined(std::string_view t, const Segment& a, const Segment& b) {
  return OnlySeparators(t.substr(a.close, b.open - a.close), /*or_too=*/true);
}

// Trailing punctuation and bold markers off an answer.
std::string CleanAnswer(std::string_view s) {
  s = Strip(s);
  for (bool changed = true; changed && !s.empty();) {
    changed = false;
    if (s.size() >= 2 && s.substr(0, 2) == "**") {
      s = Strip(s.substr(2));
      changed = true;
    }
    if (s.size() >= 2 && s.substr(s.size() - 2) == "**") {
      s = Strip(s.substr(0, s.size() - 2));
      changed = true;
    }
    if (!s.empty() && (s.back() == '.' || s.back() == ',' || s.back() == ';' || s.back() == ':')) {
      // "1." ends a sentence; "\," or "\;" would be LaTeX spaces.
      if (s.size() >= 2 && s[s.size() - 2] == '\\') break;
      s = Strip(s.substr(0, s.size() - 1));
      changed = true;
    }
  }
  return std::string(s);
}

// LaTeX commands an arithmetic chain may use (anything else, or a bare letter, makes it
// an equation with variables, which the checker compares as a whole).
bool ArithmeticCommand(std::string_view name) {
  for (std::string_view ok : {"frac", "dfrac", "tfrac", "cfrac", "times", "cdot", "div", "left", "right", "sqrt",
                              "pi", "quad", "qquad"}) {
    if (name == ok) return true;
  }
  return false;
}

bool RelationCommand(std::string_view name) {
  for (std::string_view rel : {"le", "leq", "ge", "geq", "ne", "neq", "lt", "gt", "leqslant", "geqslant", "approx",
                               "sim", "simeq", "equiv", "cong", "in", "subset", "subseteq", "to", "mapsto"}) {
    if (name == rel) return true;
  }
  return false;
}

// Whether `s` is arithmetic on numbers only: digits, operators, brackets, '=' (a chain),
// the commands above. `value`: the last value of a chain, where letters and other
// commands may appear (a unit: 120 \text{ cm}^3) but no relation.
bool IsArithmetic(std::string_view s, bool value) {
  bool digit = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '<' || c == '>' || (c == '=' && (value || (i > 0 && s[i - 1] == '!')))) return false;
    if (c == '\\') {
      size_t j = i + 1;
      while (j < s.size() && IsAlpha(s[j])) ++j;
      if (j == i + 1) {  // \, \! \$ \%
        ++i;
        continue;
      }
      std::string_view name = s.substr(i + 1, j - i - 1);
      if (value ? RelationCommand(name) : !ArithmeticCommand(name)) return false;
      i = j - 1;
      continue;
    }
    if (IsAlpha(c) && !value) return false;
    if (IsDigit(c)) digit = true;
  }
  return digit;
}

// "5 \times 6 \times 4 = 120" -> "120": a chain whose left sides are arithmetic on
// numbers gives its last value. Equations with variables (x = 3, 2x + 1 = 7) stay whole.
std::string ReduceChain(const std::string& s) {
  size_t last_eq = kNpos;
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (c == '{' || c == '(' || c == '[') ++depth;
    if (c == '}' || c == ')' || c == ']') --depth;
    if (c == '=' && depth == 0) last_eq = i;
  }
  if (last_eq == kNpos || last_eq == 0) return s;
  std::string_view head = std::string_view(s).substr(0, last_eq);
  std::string_view tail = Strip(std::string_view(s).substr(last_eq + 1));
  // <=, >= and != are relations: IsArithmetic refuses '<' '>' and "!=" in head, and a
  // '!' right before the last '=' is one too.
  if (tail.empty() || head.back() == '!' || !IsArithmetic(head, false) || !IsArithmetic(tail, true)) return s;
  return std::string(tail);
}

// The content of segments [first, last] joined as a list "a, b".
std::string JoinSegments(std::string_view t, const std::vector<Segment>& segs, size_t first, size_t last) {
  std::string out;
  for (size_t k = first; k <= last; ++k) {
    std::string item = ReduceChain(CleanAnswer(t.substr(segs[k].inner, segs[k].inner_end - segs[k].inner)));
    if (item.empty()) continue;
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// Stage 2: the last box; when it is inside a math segment, all boxes of that segment and
// of the segments before it joined to it by separators only.
std::optional<std::string> FreeBoxed(std::string_view t, const std::vector<Segment>& segs) {
  size_t start = 0;
  if (!LastBoxedOnly(t, &start)) return std::nullopt;
  int k = SegmentAt(segs, start);
  if (k < 0) return LastBoxed(t);
  auto boxes_in = [&](const Segment& s, std::vector<std::string>& out) {
    std::string_view inner = t.substr(0, s.inner_end);
    size_t pos = s.inner;
    size_t b = inner.find("\\boxed", pos), f = inner.find("\\fbox", pos);
    for (;;) {
      // Each search resumes where it stopped: linear in the segment's length.
      if (b != kNpos && b < pos) b = inner.find("\\boxed", pos);
      if (f != kNpos && f < pos) f = inner.find("\\fbox", pos);
      size_t p = std::min(b, f);
      if (p == kNpos) return;
      size_t end = 0;
      auto box = BoxAt(inner, p, &end);
      if (!box) return;
      out.push_back(*box);
      pos = std::max(end, p + 1);
    }
  };
  size_t first = static_cast<size_t>(k);
  while (first > 0 && static_cast<size_t>(k) - first < 5 && Joined(t, segs[first - 1], segs[first])) {
    const Segment& prev = segs[first - 1];
    std::string_view prev_inner = t.substr(prev.inner, prev.inner_end - prev.inner);
    if (prev_inner.find("\\boxed") == kNpos && prev_inner.find("\\fbox") == kNpos) break;
    --first;
  }
  std::vector<std::string> boxes;
  for (size_t j = first; j <= static_cast<size_t>(k); ++j) boxes_in(segs[j], boxes);
  if (boxes.empty()) return LastBoxed(t);
  std::string out;
  for (const std::string& b : boxes) {
    if (Strip(b).empty()) continue;
    if (!out.empty()) out += ", ";
    out += std::string(Strip(b));
  }
  return out;
}

// The end of the sentence that starts at `s`: a newline, '!', '?', or a '.' that is not a
// decimal point, outside math segments; at most `limit` bytes on. *question: it ended
// with '?'.
size_t SentenceEnd(std::string_view t, const std::vector<Segment>& segs, size_t s, size_t limit, bool* question) {
  *question = false;
  size_t next = FirstSegmentFrom(segs, s);
  size_t stop = std::min(t.size(), s + limit);
  size_t j = s;
  while (j < stop) {
    if (next < segs.size() && segs[next].open == j) {
      j = segs[next++].close;
      continue;
    }
    char c = t[j];
    if (c == '\n' || c == '!' || c == '?' || (c == '.' && !(j + 1 < t.size() && IsDigit(t[j + 1]))) ||
        (c == '<' && j + 1 < t.size() && t[j + 1] == '|')) {
      *question = c == '?';
      return j;
    }
    ++j;
  }
  return std::min(j, t.size());
}

// The position just past the last verb (is, are, was, be, equals; '=' when `eq_too`) in
// the plain text (outside math) of [s, e), or npos.
size_t LastVerb(std::string_view t, const std::vector<Segment>& segs, size_t s, size_t e, bool eq_too) {
  size_t found = kNpos;
  size_t next = FirstSegmentFrom(segs, s);
  for (size_t j = s; j < e; ++j) {
    if (next < segs.size() && segs[next].open == j) {
      j = segs[next++].close - 1;
      continue;
    }
    if (eq_too && t[j] == '=' && (j == 0 || std::strchr("<>!=", t[j - 1]) == nullptr) &&
        (j + 1 >= t.size() || (t[j + 1] != '=' && t[j + 1] != '>'))) {
      found = j + 1;
      continue;
    }
    if (!IsAlpha(t[j]) || (j > 0 && IsAlpha(t[j - 1]))) continue;
    for (std::string_view verb : {"is", "are", "was", "be", "equals"}) {
      if (t.compare(j, verb.size(), verb) != 0) continue;
      size_t after = j + verb.size();
      if (after < t.size() && IsAlpha(t[after])) continue;
      if (after < t.size() && t[after] == ':') ++after;
      found = after;
    }
  }
  return found;
}

size_t SkipFiller(std::string_view t, size_t p, size_t e) {
  while (p < e && (IsSpace(t[p]) || t[p] == '*' || t[p] == ':')) ++p;
  return p;
}

struct Number {
  size_t start = kNpos, end = kNpos;
};

// A number token starting at j (after any sign): digits with 3-digit groups separated
// by ',' or ' ' (one kind per number, the first group not starting with 0), a decimal
// part, a fraction a/b, a leading-dot decimal (.4), or \frac{a}{b} (\dfrac, \tfrac) with
// integer parts. Returns the end, or npos.
size_t NumberEnd(std::string_view t, size_t j) {
  const size_t n = t.size();
  if (t[j] == '\\') {
    size_t k = j + 1;
    while (k < n && IsAlpha(t[k])) ++k;
    std::string_view name = t.substr(j + 1, k - j - 1);
    if (name != "frac" && name != "dfrac" && name != "tfrac") return kNpos;
    for (int part = 0; part < 2; ++part) {
      if (k >= n || t[k] != '{') return kNpos;
      size_t d = k + 1;
      if (d < n && t[d] == '-' && part == 0) ++d;
      size_t digits = d;
      while (d < n && IsDigit(t[d])) ++d;
      if (d == digits || d >= n || t[d] != '}') return kNpos;
      k = d + 1;
    }
    return k;
  }
  size_t k = j;
  if (t[k] == '.') {
    ++k;
    while (k < n && IsDigit(t[k])) ++k;
    return k;
  }
  while (k < n && IsDigit(t[k])) ++k;
  if (k - j <= 3 && t[j] != '0') {
    char sep = 0;
    while (k + 3 < n && (t[k] == ',' || t[k] == ' ') && (sep == 0 || t[k] == sep) && IsDigit(t[k + 1]) &&
           IsDigit(t[k + 2]) && IsDigit(t[k + 3]) && (k + 4 >= n || !IsDigit(t[k + 4]))) {
      sep = t[k];
      k += 4;
    }
  }
  if (k + 1 < n && t[k] == '.' && IsDigit(t[k + 1])) {
    ++k;
    while (k < n && IsDigit(t[k])) ++k;
  } else if (k + 1 < n && t[k] == '/' && IsDigit(t[k + 1])) {
    ++k;
    while (k < n && IsDigit(t[k])) ++k;
  }
  return k;
}

// The numbers in `t`, left to right, to `found` (which returns false to stop). A number
// glued to a letter, digit, '_', '^' or '.' on its left (AZYUK2A, x^2, a_1) is not one;
// a '-' is its sign unless a value stands before it (3-5).
template <typename Found>
void ScanNumbers(std::string_view t, Found found) {
  const size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    const char c = t[i];
    size_t j = i;  // where the digits (or \frac) start
    size_t sign_len = 0;
    if (c == '-') {
      sign_len = 1;
    } else if (t.compare(i, 3, "\xE2\x88\x92") == 0) {
      sign_len = 3;
    }
    j = i + sign_len;
    bool starts = j < n && (IsDigit(t[j]) || (t[j] == '.' && j + 1 < n && IsDigit(t[j + 1])) ||
                            (t[j] == '\\' && (t.compare(j, 5, "\\frac") == 0 || t.compare(j, 6, "\\dfrac") == 0 ||
                                              t.compare(j, 6, "\\tfrac") == 0)));
    if (!starts) {
      i += sign_len > 0 ? sign_len : 1;
      continue;
    }
    size_t end = NumberEnd(t, j);
    if (end == kNpos) {
      i = j + 1;
      continue;
    }
    char before = i > 0 ? t[i - 1] : ' ';
    size_t start = i;
    if (sign_len > 0 && (IsAlpha(before) || IsDigit(before) || before == ')' || before == ']' || before == '}')) {
      start = j;  // 3-5: a minus between values, not a sign
      before = t[j - 1];
    }
    bool glued = start == i ? (IsAlpha(before) || IsDigit(before) || before == '_' || before == '^' ||
                               (before == '.' && sign_len == 0))
                            : false;
    if (!glued && !found(Number{start, end})) return;
    i = end;
  }
}

// Stage 5 (and the "= N" rule): the last number in `t`.
Number LastNumber(std::string_view t) {
  Number last;
  ScanNumbers(t, [&](Number x) {
    last = x;
    return true;
  });
  return last;
}

// Whether what starts at p looks like a value: a math segment, a digit, a sign, a
// bracket or a LaTeX command.
bool ValueLike(std::string_view t, const std::vector<Segment>& segs, size_t p, size_t e) {
  p = SkipFiller(t, p, e);
  if (p >= e) return false;
  size_t k = FirstSegmentFrom(segs, p);
  if (k < segs.size() && segs[k].open == p) return true;
  char c = t[p];
  if (IsDigit(c) || c == '-' || c == '+' || c == '(' || c == '[' || c == '{' || c == '\\' || c == '|') return true;
  if (c == '.' && p + 1 < e && IsDigit(t[p + 1])) return true;
  return t.compare(p, 3, "\xE2\x88\x92") == 0;  // U+2212 minus
}

// Whether the checker can read every non-ASCII character of `s` (latex.cc knows a few:
// ° ∞ ≤ ≥ ≠ ± ∪ × · − π € ∈ √ and the no-break space). "1,000.99m²" cannot be read.
bool Readable(std::string_view s) {
  static constexpr std::string_view kKnown[] = {
      "\xC2\xB0", "\xE2\x88\x9E", "\xE2\x89\xA4", "\xE2\x89\xA5", "\xE2\x89\xA0", "\xC2\xB1", "\xE2\x88\xAA",
      "\xC3\x97", "\xC2\xB7",     "\xE2\x88\x92", "\xCF\x80",     "\xE2\x82\xAC", "\xE2\x88\x88", "\xE2\x88\x9A",
      "\xC2\xA0"};
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    bool known = false;
    for (std::string_view k : kKnown) {
      if (s.compare(i, k.size(), k) == 0) {
        i += k.size();
        known = true;
        break;
      }
    }
    if (!known) return false;
  }
  return true;
}

// The answer in [p, e): a math segment there (with the ones joined to it), or the plain
// text. nullopt when it is empty or reads like a sentence rather than an answer.
std::optional<std::string> SpanAnswer(std::string_view t, const std::vector<Segment>& segs, size_t p, size_t e) {
  p = SkipFiller(t, p, e);
  if (p >= e) return std::nullopt;
  size_t k = FirstSegmentFrom(segs, p);
  bool has_segment = k < segs.size() && segs[k].close <= e;
  if (has_segment) {
    // "the answer is $5$ cm", "the answer is approximately $3.14$": the math, when the
    // plain text before it is a few words without digits.
    std::string_view before = t.substr(p, segs[k].open - p);
    bool digits = std::any_of(before.begin(), before.end(), IsDigit);
    if (!digits && before.size() <= 32) {
      size_t last = k;
      while (last + 1 < segs.size() && segs[last + 1].close <= e && last - k < 5 &&
             Joined(t, segs[last], segs[last + 1])) {
        ++last;
      }
      std::string joined = JoinSegments(t, segs, k, last);
      if (!joined.empty()) return joined;
    }
  }
  // Plain text; delimiters of math segments in it dropped.
  std::string plain;
  size_t next = k;
  for (size_t j = p; j < e; ++j) {
    if (next < segs.size() && segs[next].open == j && segs[next].close <= e) {
      plain.append(t.substr(segs[next].inner, segs[next].inner_end - segs[next].inner));
      j = segs[next++].close - 1;
      continue;
    }
    plain += t[j];
  }
  std::string answer = CleanAnswer(plain);
  if (answer.empty() || answer.size() > 120 || !Readable(answer)) return std::nullopt;
  int words = 0;
  for (size_t j = 0; j < answer.size(); ++j) {
    if (IsAlpha(answer[j]) && (j == 0 || IsSpace(answer[j - 1])) && j + 1 < answer.size() && IsAlpha(answer[j + 1])) {
      ++words;
    }
  }
  if (words >= 2) {
    // A sentence ("Jane started growing Sphere 3 hours ago"): its one number, if it has
    // exactly one; with several it is no answer. Without numbers it may be a word
    // answer ("Evelyn", "no solution"), if short.
    std::vector<Number> numbers;
    ScanNumbers(answer, [&](Number x) {
      numbers.push_back(x);
      return numbers.size() < 2;
    });
    if (numbers.size() == 1) return answer.substr(numbers[0].start, numbers[0].end - numbers[0].start);
    if (!numbers.empty() || words > 6) return std::nullopt;
  }
  return ReduceChain(answer);
}

// "... = N" at the very end of the text, outside math, where the left side is arithmetic
// (5 × 6 × 4 = 120, "the total is 5 + 3 = 8") or a name (x = 42, the total = 42); an
// equation (2x + 3y = 6, a + b = 5) is not.
std::optional<std::string> EqualsAtEnd(std::string_view t, const std::vector<Segment>& segs, Number last) {
  if (last.start == kNpos || SegmentAt(segs, last.start) >= 0) return std::nullopt;
  for (size_t j = last.end; j < t.size(); ++j) {
    if (!IsSpace(t[j]) && t[j] != '.' && t[j] != '*' && t[j] != '!') return std::nullopt;
  }
  size_t j = last.start;
  while (j > 0 && t[j - 1] == ' ') --j;
  if (j == 0 || t[j - 1] != '=' || (j >= 2 && std::strchr("<>!=", t[j - 2]) != nullptr)) return std::nullopt;
  const size_t eq = j - 1;
  size_t b = eq;
  while (b > 0 && t[b - 1] == ' ') --b;
  // Arithmetic: digits, operators and spaces, starting with a digit after a space.
  size_t a = b;
  while (a > 0 && b - a < 80 &&
         (IsDigit(t[a - 1]) || std::strchr(" +-*/^().", t[a - 1]) != nullptr ||
          static_cast<unsigned char>(t[a - 1]) >= 0x80)) {
    --a;
  }
  while (a < b && t[a] == ' ') ++a;
  if (a < b && (IsDigit(t[a]) || t[a] == '(') && (a == 0 || t[a - 1] == ' ' || t[a - 1] == '\n')) {
    return std::string(t.substr(last.start, last.end - last.start));
  }
  // A name: letters right before '=', after a word, a line start or punctuation.
  a = b;
  while (a > 0 && IsAlpha(t[a - 1])) --a;
  if (a == b) return std::nullopt;
  while (a > 0 && t[a - 1] == ' ') --a;
  if (a > 0 && !IsAlpha(t[a - 1]) && std::strchr(",:;.\n", t[a - 1]) == nullptr) return std::nullopt;
  return std::string(t.substr(last.start, last.end - last.start));
}

struct Anchor {
  std::string_view text;  // lower case
  int tier;               // 0 final answer, 1 answer, 2 conclusion words
};

constexpr Anchor kAnchors[] = {
    {"final answer", 0}, {"answer", 1},   {"####", 1},   {"therefore", 2},
    {"thus", 2},         {"hence", 2},    {"so the", 2}, {"in conclusion", 2},
};
constexpr int kOccurrencesPerAnchor = 8;
constexpr size_t kSentenceLimit = 400;

// What the free-text stages share: the text, its math segments, its lower-case copy
// and the position of its last digit.
struct Text {
  std::string_view t;
  std::vector<Segment> segs;
  std::string low;
  size_t last_digit = kNpos;
};

// The answer after the anchor ending at q.
std::optional<std::string> AfterAnchor(const Text& x, const Anchor& a, size_t q) {
  std::string_view t = x.t;
  const std::vector<Segment>& segs = x.segs;
  size_t s = q;
  while (s < t.size() && (t[s] == ' ' || t[s] == '\t' || t[s] == '*')) ++s;
  // A connector right after the anchor: "answer: X", "answer is X", "answer = X",
  // "final answer\nX"; "####" needs none.
  bool connector = a.text == "####";
  if (s < t.size() && (t[s] == ':' || t[s] == '=' || (a.tier == 0 && t[s] == '\n'))) {
    connector = true;
    ++s;
  } else {
    for (std::string_view verb : {"is", "are", "be", "was"}) {
      if (t.compare(s, verb.size(), verb) == 0 && (s + verb.size() >= t.size() || !IsAlpha(t[s + verb.size()]))) {
        connector = true;
        s += verb.size();
        break;
      }
    }
  }
  size_t begin = SkipFiller(t, s, std::min(t.size(), s + kSentenceLimit));
  if (begin >= t.size()) return std::nullopt;
  bool question = false;
  size_t e = SentenceEnd(t, segs, begin, kSentenceLimit, &question);
  if (question) return std::nullopt;
  const bool weak = a.tier == 2;
  // "Final Answer: The largest $n$ is 34": what follows the last verb, when it is a value.
  size_t v = LastVerb(t, segs, begin, e, /*eq_too=*/weak);
  if (v != kNpos && ValueLike(t, segs, v, e)) {
    auto answer = SpanAnswer(t, segs, v, e);
    if (answer) {
      // A conclusion word counts only when nothing numeric follows its sentence.
      if (weak && x.last_digit != kNpos && x.last_digit >= e) return std::nullopt;
      return answer;
    }
  }
  if (weak || !connector) return std::nullopt;
  return SpanAnswer(t, segs, begin, e);
}

// The answer after the last anchor of `tier` (at or after `min_pos`) that gives one.
std::optional<std::string> Phrase(const Text& x, int tier, size_t min_pos = 0) {
  std::string_view t = x.t;
  const std::vector<Segment>& segs = x.segs;
  const std::string& low = x.low;
  struct Hit {
    size_t pos;
    const Anchor* anchor;
  };
  std::vector<Hit> hits;
  for (const Anchor& a : kAnchors) {
    if (a.tier != tier) continue;
    size_t from = low.size();
    for (int k = 0; k < kOccurrencesPerAnchor && from > 0;) {
      size_t p = low.rfind(a.text, from - 1);
      if (p == std::string::npos || p < min_pos) break;
      from = p;
      size_t end = p + a.text.size();
      bool word = a.text == "####" ||
                  ((p == 0 || !IsAlpha(low[p - 1])) && (end >= low.size() || !IsAlpha(low[end]) ||
                                                        (a.text == "answer" && low[end] == 's' &&
                                                         (end + 1 >= low.size() || !IsAlpha(low[end + 1])))));
      if (!word || SegmentAt(segs, p) >= 0) continue;
      hits.push_back({p, &a});
      ++k;
    }
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& x, const Hit& y) { return x.pos > y.pos; });
  for (const Hit& h : hits) {
    size_t q = h.pos + h.anchor->text.size();
    if (h.anchor->text == "answer" && q < t.size() && (t[q] == 's' || t[q] == 'S')) ++q;
    if (auto answer = AfterAnchor(x, *h.anchor, q)) return answer;
  }
  return std::nullopt;
}

// Stage 4: the last non-empty math segment, with the segments before it joined to it
// by separators only.
std::optional<std::string> LastMath(std::string_view t, const std::vector<Segment>& segs) {
  for (size_t tries = 0; tries < 8 && tries < segs.size(); ++tries) {
    size_t last = segs.size() - 1 - tries;
    size_t first = last;
    while (first > 0 && last - first < 5 && Joined(t, segs[first - 1], segs[first])) --first;
    std::string joined = JoinSegments(t, segs, first, last);
    if (!joined.empty()) return joined;
  }
  return std::nullopt;
}

std::optional<std::string> FreeText(std::string_view t) {
  if (auto tag = LastAnswerTag(t); tag && !Strip(*tag).empty()) return tag;
  Text x;
  x.t = t;
  x.segs = MathSegments(t);
  const std::vector<Segment>& segs = x.segs;
  x.low.assign(t);
  for (size_t i = 0; i < x.low.size(); ++i) {
    x.low[i] = absl::ascii_tolower(static_cast<unsigned char>(x.low[i]));
    if (IsDigit(x.low[i])) x.last_digit = i;
  }
  size_t box_start = 0, box_end = 0;
  if (LastBoxedOnly(t, &box_start) && BoxAt(t, box_start, &box_end)) {
    // "... \boxed{200} ... Final Answer: The final answer is $10,455$.": a final-answer
    // statement after the last box is the later word (Math-Verify reads it so too).
    if (auto answer = Phrase(x, 0, box_end)) return answer;
    if (auto boxed = FreeBoxed(t, segs)) return boxed;
  }
  for (int tier = 0; tier < 2; ++tier) {
    if (auto answer = Phrase(x, tier)) return answer;
  }
  const Number last = LastNumber(t);
  if (auto answer = EqualsAtEnd(t, segs, last)) return answer;
  if (auto answer = Phrase(x, 2)) return answer;
  if (auto answer = LastMath(t, segs)) return answer;
  if (last.start != kNpos) return std::string(t.substr(last.start, last.end - last.start));
  return std::nullopt;
}

}  // namespace

std::optional<std::string> ExtractAnswer(std::string_view completion, ExtractMode mode) {
  std::optional<std::string> out;
  if (mode == ExtractMode::kFreeText) {
    out = FreeText(completion);
  } else {
    if (mode != ExtractMode::kBoxed) out = LastAnswerTag(completion);
    if (!out && mode != ExtractMode::kAnswerTag) out = LastBoxed(completion);
  }
  if (out) {
    std::string trimmed(Strip(*out));
    if (mode == ExtractMode::kFreeText && trimmed.empty()) return std::nullopt;
    return trimmed;
  }
  return std::nullopt;
}

}  // namespace grpo::math
