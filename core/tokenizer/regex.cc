#include "core/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "core/common/utf8.h"

namespace grpo::tokenizer {
namespace {

// Unicode White_Space, which is what Oniguruma's \s matches in UTF-8 mode.
constexpr char kWhiteSpace[] =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

// Per-thread match buffer, big enough for the group-0 offsets we read.
struct MatchData {
  pcre2_match_data* md = pcre2_match_data_create(16, nullptr);
  ~MatchData() { pcre2_match_data_free(md); }
};

pcre2_match_data* ThreadMatchData() {
  thread_local MatchData data;
  return data.md;
}

std::string Pcre2Error(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return std::string(reinterpret_cast<const char*>(buf));
}

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

std::string OnigurumaToPcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : absl::StrCat("[", kWhiteSpace, "]");
      } else if (e == 'S' && !in_class) {
        out += absl::StrCat("[^", kWhiteSpace, "]");
      } else {
        // Any other escape (and \S inside a class, which has no simple rewrite) is
        // copied; what follows it (\p{L}, \x{..}) is copied as plain characters.
        out += '\\';
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      // POSIX class like [:alpha:]: copy through its closing ":]".
      size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

absl::StatusOr<Regex> Regex::CompileWith(std::string pattern, uint32_t extra_options, std::string_view shown) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | extra_options, &error, &offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad regex \"", std::string(shown), "\": ", Pcre2Error(error), " at offset ", offset));
  }
  // JIT is an optimisation: without it (an unsupported CPU) pcre2_match interprets.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return Regex(std::move(holder), std::move(pattern));
}

absl::StatusOr<Regex> Regex::Compile(std::string_view pattern) {
  return CompileWith(OnigurumaToPcre2(pattern), PCRE2_UCP, pattern);
}

absl::StatusOr<Regex> Regex::Literal(std::string_view text) {
  return CompileWith(std::string(text), PCRE2_LITERAL, text);  // (PCRE2 refuses UCP with LITERAL)
}

void Regex::FindAll(std::string_view text, absl::FunctionRef<void(size_t, size_t)> f) const {
  pcre2_match_data* md = ThreadMatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    // The caller guarantees valid UTF-8 (the tokenizer sanitises its input first).
    int rc = pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
      // Pathological backtracking: retry this search without JIT, whose limits are on
      // the heap; if that fails too, stop matching (the rest stays one piece).
      rc = pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    }
    if (rc < 0) return;  // no match (or an error we cannot recover from)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (start == end && have_last && last_end == end) {
      // Empty match where the last one ended: step over one character.
      pos = end < text.size() ? end + NextUtf8(text, end).len : text.size() + 1;
      continue;
    }
    f(start, end);
    have_last = true;
    last_end = end;
    pos = end;
  }
}

}  // namespace grpo::tokenizer
