// See latex.h.
#include "core/math/latex.h"

#include <cctype>
#include <cstring>
#include <string>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace grpo::math {
namespace {

constexpr int kMaxDepth = 64;
constexpr char kThin = '\x02';  // a thin space (\, \!), which may separate digit groups

bool IsLetter(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

class Converter {
 public:
  explicit Converter(absl::string_view s) : s_(s) {}

  absl::StatusOr<std::string> Run() {
    std::string out;
    if (auto st = Convert(0, s_.size(), 0, out); !st.ok()) return st;
    return out;
  }

 private:
  // Index just past the group that opens at `i` ('{' ... '}'), or npos.
  size_t MatchBrace(size_t i, size_t end) const {
    int depth = 0;
    for (size_t j = i; j < end; ++j) {
      if (s_[j] == '\\') {
        ++j;
        continue;
      }
      if (s_[j] == '{') ++depth;
      if (s_[j] == '}' && --depth == 0) return j + 1;
    }
    return absl::string_view::npos;
  }

  void SkipSpaces(size_t& i, size_t end) const {
    while (i < end && s_[i] == ' ') ++i;
  }

  // One argument at `i`: a brace group, a command (\pi) or one character. Converted.
  absl::Status Arg(size_t& i, size_t end, int depth, std::string& out) {
    SkipSpaces(i, end);
    if (i >= end) return absl::InvalidArgumentError("missing argument");
    if (s_[i] == '{') {
      size_t close = MatchBrace(i, end);
      if (close == absl::string_view::npos) return absl::InvalidArgumentError("unbalanced braces");
      auto st = Convert(i + 1, close - 1, depth + 1, out);
      i = close;
      return st;
    }
    if (s_[i] == '\\') {
      size_t j = i + 1;
      while (j < end && IsLetter(s_[j])) ++j;
      if (j == i + 1) ++j;
      auto st = Convert(i, j, depth + 1, out);
      i = j;
      return st;
    }
    // UTF-8 sequences travel whole.
    size_t j = i + 1;
    while (j < end && (static_cast<unsigned char>(s_[j]) & 0xC0) == 0x80) ++j;
    auto st = Convert(i, j, depth + 1, out);
    i = j;
    return st;
  }

  absl::Status Paren(size_t& i, size_t end, int depth, std::string& out) {
    out += '(';
    auto st = Arg(i, end, depth, out);
    out += ')';
    return st;
  }

  // \begin{env} ... \end{env} at i (just past "\begin").
  absl::Status Environment(size_t& i, size_t end, int depth, std::string& out) {
    SkipSpaces(i, end);
    size_t close = i < end && s_[i] == '{' ? MatchBrace(i, end) : absl::string_view::npos;
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("bad \\begin");
    std::string env(s_.substr(i + 1, close - i - 2));
    i = close;
    std::string end_tag = absl::StrCat("\\end{", env, "}");
    size_t stop = s_.find(end_tag, i);
    if (stop == absl::string_view::npos || stop > end) {
      return absl::InvalidArgumentError(absl::StrCat("missing ", end_tag));
    }
    bool matrix = absl::StrContains(env, "matrix") || env == "array";
    if (env == "array") {  // column spec
      SkipSpaces(i, stop);
      if (i < stop && s_[i] == '{') i = MatchBrace(i, stop);
    }
    if (!matrix) {
      auto st = Convert(i, stop, depth + 1, out);
      i = stop + end_tag.size();
      return st;
    }
    // Rows split on \\, cells on &: ((a,b),(c,d)).
    out += '(';
    bool first_row = true;
    size_t row_start = i;
    auto emit_row = [&](size_t a, size_t b) -> absl::Status {
      absl::string_view row = absl::StripAsciiWhitespace(s_.substr(a, b - a));
      if (row.empty()) return absl::OkStatus();
      if (!first_row) out += ',';
      first_row = false;
      out += '(';
      size_t cell = a;
      int braces = 0;
      for (size_t k = a; k <= b; ++k) {
        if (k < b && s_[k] == '{') ++braces;
        if (k < b && s_[k] == '}') --braces;
        if (k == b || (s_[k] == '&' && braces == 0)) {
          if (cell != a) out += ',';
          if (auto st = Convert(cell, k, depth + 1, out); !st.ok()) return st;
          cell = k + 1;
        }
      }
      out += ')';
      return absl::OkStatus();
    };
    for (size_t k = i; k < stop; ++k) {
      if (s_[k] == '\\' && k + 1 < stop && s_[k + 1] == '\\') {
        if (auto st = emit_row(row_start, k); !st.ok()) return st;
        k += 1;
        row_start = k + 1;
      } else if (s_[k] == '\\') {
        ++k;
      }
    }
    if (auto st = emit_row(row_start, stop); !st.ok()) return st;
    out += ')';
    i = stop + end_tag.size();
    return absl::OkStatus();
  }

  absl::Status Command(const std::string& name, size_t& i, size_t end, int depth,
                       std::string& out) {
    static const std::unordered_map<std::string, std::string>* const kSimple =
        new std::unordered_map<std::string, std::string>{
            {"pi", " pi "}, {"infty", " oo "}, {"infinity", " oo "},
            {"cdot", "*"}, {"times", "*"}, {"ast", "*"}, {"div", "/"},
            {"pm", "&"}, {"le", "<="}, {"leq", "<="}, {"leqslant", "<="},
            {"ge", ">="}, {"geq", ">="}, {"geqslant", ">="}, {"ne", "!="},
            {"neq", "!="}, {"lt", "<"}, {"gt", ">"}, {"approx", "#"},
            {"simeq", "="}, {"cup", "@"}, {"in", "?"}, {"circ", ""},
            {"degree", ""}, {"colon", ":"}, {"mid", "|"}, {"vert", "|"},
            {"emptyset", "{}"}, {"varnothing", "{}"}, {"dots", ""}, {"ldots", ""},
            {"cdots", ""}, {"left", ""}, {"right", ""}, {"big", ""}, {"Big", ""},
            {"bigl", ""}, {"bigr", ""}, {"Bigl", ""}, {"Bigr", ""}, {"bigg", ""},
            {"Bigg", ""}, {"displaystyle", ""}, {"textstyle", ""}, {"limits", ""},
            {"quad", " "}, {"qquad", " "}, {"hfill", " "}, {"and", ","},
            {"implies", " "}, {"Rightarrow", " "}, {"therefore", " "},
            {"sin", " sin "}, {"cos", " cos "}, {"tan", " tan "}, {"log", " log "},
            {"sec", " sec "}, {"csc", " csc "}, {"cot", " cot "},
            {"ln", " ln "}, {"exp", " exp "}, {"lfloor", ""}, {"rfloor", ""},
            {"lceil", ""}, {"rceil", ""}, {"prime", "'"}, {"%", ""}, {"$", ""},
            {",", std::string(1, kThin)}, {"!", std::string(1, kThin)},
            {";", " "}, {":", " "}, {" ", " "}, {"{", "{"}, {"}", "}"},
            {"|", "|"}, {"\\", " "}, {"_", "_"}, {"&", " "}, {"#", ""},
            {"(", ""}, {")", ""}, {"[", ""}, {"]", ""},
        };
    if (auto it = kSimple->find(name); it != kSimple->end()) {
      out += it->second;
      return absl::OkStatus();
    }
    if (name == "frac" || name == "dfrac" || name == "tfrac" || name == "cfrac") {
      std::string num, den;
      if (auto st = Arg(i, end, depth, num); !st.ok()) return st;
      if (auto st = Arg(i, end, depth, den); !st.ok()) return st;
      // A mixed number: 3\frac{1}{2} is 3 + 1/2 (only with digits on all three parts).
      auto digits = [](const std::string& t) {
        return !t.empty() && t.find_first_not_of("0123456789 ") == std::string::npos;
      };
      size_t last = out.find_last_not_of(' ');
      if (last != std::string::npos && IsDigit(out[last]) && digits(num) && digits(den)) {
        size_t first = last;
        while (first > 0 && IsDigit(out[first - 1])) --first;
        bool after_operator = first == 0 || std::string_view("^_.").find(out[first - 1]) == std::string_view::npos;
        if (after_operator) {
          out.insert(first, "(");
          out += "+";
          absl::StrAppend(&out, "((", num, ")/(", den, ")))");
          return absl::OkStatus();
        }
      }
      absl::StrAppend(&out, "((", num, ")/(", den, "))");
      return absl::OkStatus();
    }
    if (name == "sqrt") {
      SkipSpaces(i, end);
      if (i < end && s_[i] == '[') {
        size_t close = s_.find(']', i);
        if (close == absl::string_view::npos || close >= end) {
          return absl::InvalidArgumentError("bad \\sqrt[");
        }
        std::string index;
        if (auto st = Convert(i + 1, close, depth + 1, index); !st.ok()) return st;
        i = close + 1;
        out += "((";
        if (auto st = Arg(i, end, depth, out); !st.ok()) return st;
        absl::StrAppend(&out, ")^(1/(", index, ")))");
        return absl::OkStatus();
      }
      out += "sqrt";
      return Paren(i, end, depth, out);
    }
    if (name == "overline" || name == "dot") {
      // A repeating decimal: 0.\overline{3} = 0. + 3/9, 1.2\overline{34} = 1.2 + 34/990.
      std::string rep;
      if (auto st = Arg(i, end, depth, rep); !st.ok()) return st;
      size_t point = out.find_last_not_of("0123456789");
      bool decimal = point != std::string::npos && out[point] == '.' && point > 0 && IsDigit(out[point - 1]);
      bool digits = !rep.empty() && rep.find_first_not_of("0123456789") == std::string::npos;
      if (decimal && digits) {
        size_t start = point - 1;
        while (start > 0 && IsDigit(out[start - 1])) --start;
        size_t places = out.size() - point - 1;
        out.insert(start, "(");
        absl::StrAppend(&out, "+", rep, "/(", std::string(rep.size(), '9'), "*10^(", places, ")))");
      } else {
        absl::StrAppend(&out, " ", rep, " ");
      }
      return absl::OkStatus();
    }
    if (name == "text" || name == "textbf" || name == "textit" || name == "textrm" ||
        name == "textnormal" || name == "mathrm" || name == "mathbf" || name == "mathit" ||
        name == "mathsf" || name == "mathtt" || name == "mbox" || name == "operatorname" ||
        name == "boxed" || name == "fbox" || name == "bm" || name == "boldsymbol" ||
        name == "mathbb" || name == "mathcal" || name == "hbox" || name == "textsf" ||
        name == "emph" || name == "underline") {
      out += ' ';
      auto st = Arg(i, end, depth, out);
      out += ' ';
      return st;
    }
    if (name == "begin") return Environment(i, end, depth, out);
    if (name == "end") {  // stray
      SkipSpaces(i, end);
      if (i < end && s_[i] == '{') i = MatchBrace(i, end);
      return absl::OkStatus();
    }
    if (name == "pmod" || name == "bmod" || name == "mod") {
      out += " mod ";
      return absl::OkStatus();
    }
    // Greek letters and anything else: the name as a word.
    absl::StrAppend(&out, " ", name, " ");
    return absl::OkStatus();
  }

  absl::Status Convert(size_t i, size_t end, int depth, std::string& out) {
    if (depth > kMaxDepth) return absl::InvalidArgumentError("nested too deeply");
    while (i < end) {
      char c = s_[i];
      if (c == '\\') {
        size_t j = i + 1;
        while (j < end && IsLetter(s_[j])) ++j;
        if (j == i + 1 && j < end) ++j;  // \, \{ \% ...
        std::string name(s_.substr(i + 1, j - i - 1));
        i = j;
        if (auto st = Command(name, i, end, depth, out); !st.ok()) return st;
        continue;
      }
      if (c == '{') {
        size_t close = MatchBrace(i, end);
        if (close == absl::string_view::npos) return absl::InvalidArgumentError("unbalanced braces");
        if (absl::StripAsciiWhitespace(s_.substr(i + 1, close - i - 2)) == ",") {  // 1{,}000, 14 {, }916
          while (!out.empty() && out.back() == ' ') out.pop_back();
          out += ',';
          i = close;
          continue;
        }
        out += '(';
        if (auto st = Convert(i + 1, close - 1, depth + 1, out); !st.ok()) return st;
        out += ')';
        i = close;
        continue;
      }
      if (c == '}') return absl::InvalidArgumentError("unbalanced braces");
      if (c == '^') {  // ^\circ, ^{\circ}: degrees
        size_t j = i + 1;
        SkipSpaces(j, end);
        absl::string_view rest = s_.substr(j, end - j);
        if (absl::StartsWith(rest, "\\circ")) {
          i = j + 5;
          continue;
        }
        if (absl::StartsWith(rest, "{\\circ}")) {
          i = j + 7;
          continue;
        }
        out += '^';
        i = j;
        if (i < end && IsDigit(s_[i])) {  // 10^10 means 10^{10}
          size_t k = i;
          while (k < end && IsDigit(s_[k])) ++k;
          absl::StrAppend(&out, "(", s_.substr(i, k - i), ")");
          i = k;
          continue;
        }
        if (auto st = Paren(i, end, depth, out); !st.ok()) return st;
        continue;
      }
      if (c == '_') {  // subscripts glue onto the name: a_{37} -> a_37
        ++i;
        std::string sub;
        if (auto st = Arg(i, end, depth, sub); !st.ok()) return st;
        out += '_';
        for (char ch : sub) {
          if (IsLetter(ch) || IsDigit(ch)) out += ch;
        }
        continue;
      }
      // UTF-8 symbols models like to write.
      static const std::pair<const char*, const char*> kUtf8[] = {
          {"\xC2\xB0", ""},       {"\xE2\x88\x9E", " oo "}, {"\xE2\x89\xA4", "<="},
          {"\xE2\x89\xA5", ">="}, {"\xE2\x89\xA0", "!="},   {"\xC2\xB1", "&"},
          {"\xE2\x88\xAA", "@"},  {"\xC3\x97", "*"},        {"\xC2\xB7", "*"},
          {"\xE2\x88\x92", "-"},  {"\xCF\x80", " pi "},     {"\xE2\x82\xAC", ""},
          {"\xE2\x88\x88", "?"},  {"\xE2\x88\x9A", "sqrt"}, {"\xC2\xA0", " "},
      };
      bool matched = false;
      if (static_cast<unsigned char>(c) >= 0x80) {
        for (const auto& [from, to] : kUtf8) {
          if (s_.substr(i, end - i).substr(0, std::strlen(from)) == from) {
            out += to;
            i += std::strlen(from);
            matched = true;
            break;
          }
        }
        if (matched) continue;
      }
      if (c == '$' || c == '%') {
        ++i;
        continue;
      }
      if (c == '~' || c == '\t' || c == '\n' || c == '\r' || c == '&') {
        out += ' ';
        ++i;
        continue;
      }
      out += c;
      ++i;
    }
    return absl::OkStatus();
  }

  absl::string_view s_;
};

bool IsWordChar(char c) { return IsLetter(c); }

// Removes digit-group separators: 1,000 / 1,\!000 / 1\,000 / 1 000 -> 1000. The first
// group has 1-3 digits and does not start with 0 (so 0,111 stays a list).
std::string JoinDigitGroups(const std::string& s) {
  std::string out;
  size_t i = 0;
  int depth = 0;  // inside brackets a bare comma separates items: (12,102) is an interval
  while (i < s.size()) {
    if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
    if (s[i] == ')' || s[i] == ']' || s[i] == '}') --depth;
    bool starts_number = IsDigit(s[i]) && s[i] != '0' &&
                         (i == 0 || (!IsDigit(s[i - 1]) && s[i - 1] != '.' && !IsLetter(s[i - 1]) &&
                                     s[i - 1] != '_'));
    if (!starts_number) {
      out += s[i++];
      continue;
    }
    size_t j = i;
    while (j < s.size() && IsDigit(s[j]) && j - i < 4) ++j;
    if (j - i > 3 || (j < s.size() && IsDigit(s[j]))) {  // a long run: not grouped
      while (j < s.size() && IsDigit(s[j])) ++j;
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    std::string number = s.substr(i, j - i);
    // Separator kinds: ',' ',' + thin (+ spaces), thin, ' ' (one kind per number).
    int kind = -1;
    for (;;) {
      size_t k = j;
      int this_kind;
      if (k < s.size() && s[k] == ',') {
        ++k;
        this_kind = 0;
        if (k < s.size() && s[k] == kThin) {
          while (k < s.size() && (s[k] == kThin || s[k] == ' ')) ++k;
          this_kind = 1;
        }
      } else if (k < s.size() && s[k] == kThin) {
        while (k < s.size() && s[k] == kThin) ++k;
        this_kind = 2;
      } else if (k < s.size() && s[k] == ' ') {
        ++k;
        this_kind = 3;
      } else {
        break;
      }
      if (kind != -1 && this_kind != kind) break;
      if (this_kind == 0 && depth > 0) break;
      size_t d = k;
      while (d < s.size() && IsDigit(s[d]) && d - k < 4) ++d;
      if (d - k != 3 || (d < s.size() && IsDigit(s[d]))) break;
      kind = this_kind;
      number.append(s, k, 3);
      j = d;
    }
    out += number;
    i = j;
  }
  return out;
}

// " and " / " or " (as whole words) -> ",".
std::string WordsToCommas(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    bool done = false;
    for (absl::string_view w : {absl::string_view("and"), absl::string_view("or")}) {
      if (s.compare(i, w.size(), std::string(w)) == 0 && (i == 0 || !IsWordChar(s[i - 1])) &&
          (i + w.size() >= s.size() || !IsWordChar(s[i + w.size()]))) {
        out += ',';
        i += w.size();
        done = true;
        break;
      }
    }
    if (!done) out += s[i++];
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> LatexToPlain(absl::string_view latex) {
  absl::string_view s = absl::StripAsciiWhitespace(latex);
  // Display delimiters around the whole answer.
  for (auto [open, close] : {std::pair<absl::string_view, absl::string_view>{"\\[", "\\]"},
                            {"\\(", "\\)"}, {"$$", "$$"}, {"$", "$"}}) {
    if (absl::StartsWith(s, open) && absl::EndsWith(s, close) && s.size() >= open.size() + close.size()) {
      s = absl::StripAsciiWhitespace(s.substr(open.size(), s.size() - open.size() - close.size()));
    }
  }
  s = absl::StripSuffix(s, ".");
  std::string text(s);
  // A plain brace group around the whole answer is a set: {1, 2}.
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
    int depth = 0;
    size_t close = std::string::npos;
    for (size_t j = 0; j < text.size(); ++j) {
      if (text[j] == '\\') {
        ++j;
        continue;
      }
      if (text[j] == '{') ++depth;
      if (text[j] == '}' && --depth == 0) {
        close = j;
        break;
      }
    }
    if (close == text.size() - 1 && text.find(',') != std::string::npos) {
      text = absl::StrCat("\\{", text.substr(1, text.size() - 2), "\\}");
    }
  }
  Converter converter(text);
  auto plain = converter.Run();
  if (!plain.ok()) return plain.status();
  std::string out = JoinDigitGroups(*plain);
  out = WordsToCommas(out);
  std::string cleaned;
  for (char c : out) {
    if (c == kThin) continue;
    if (c == ' ' && (cleaned.empty() || cleaned.back() == ' ')) continue;
    cleaned += c;
  }
  return std::string(absl::StripAsciiWhitespace(cleaned));
}

}  // namespace grpo::math
