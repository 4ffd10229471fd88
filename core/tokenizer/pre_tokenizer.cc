#include "core/tokenizer/pre_tokenizer.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/utf8.h"

namespace grpo::tokenizer {
namespace {

// A cover of the text by consecutive spans, each a match of the pattern or not
// (tokenizers' Pattern::find_matches).
struct Span {
  size_t start, end;
  bool is_match;
};

std::vector<Span> RegexSpans(const Regex& re, std::string_view text) {
  std::vector<Span> spans;
  if (text.empty()) return {{0, 0, false}};
  size_t prev = 0;
  re.FindAll(text, [&](size_t start, size_t end) {
    if (prev != start) spans.push_back({prev, start, false});
    spans.push_back({start, end, true});
    prev = end;
  });
  if (prev != text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

// Rust's char::is_numeric: general categories Nd, Nl and No.
bool IsNumeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

// Each numeric character is a match of its own.
std::vector<Span> NumericSpans(std::string_view text) {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Span> spans;
  size_t last = 0, i = 0;
  while (i < text.size()) {
    Utf8Step step = NextUtf8(text, i);
    if (IsNumeric(step.cp)) {
      if (last < i) spans.push_back({last, i, false});
      spans.push_back({i, i + step.len, true});
      last = i + step.len;
    }
    i += step.len;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

// NormalizedString::split: turns the cover into the pieces to keep.
std::vector<std::pair<size_t, size_t>> ApplyBehavior(std::vector<Span> spans, PreTokenizer::Behavior behavior) {
  using B = PreTokenizer::Behavior;
  std::vector<std::pair<size_t, size_t>> out;
  out.reserve(spans.size());
  switch (behavior) {
    case B::kIsolated:
      for (const Span& s : spans) out.emplace_back(s.start, s.end);
      break;
    case B::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.emplace_back(s.start, s.end);
      }
      break;
    case B::kContiguous: {
      bool previous = false;
      for (const Span& s : spans) {
        if (s.is_match == previous && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous = s.is_match;
      }
      break;
    }
    case B::kMergedWithPrevious: {
      bool previous = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous = s.is_match;
      }
      break;
    }
    case B::kMergedWithNext: {
      bool previous = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous && !out.empty()) {
          out.back().first = it->start;
        } else {
          out.emplace_back(it->start, it->end);
        }
        previous = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  return out;
}

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

absl::StatusOr<bool> OptionalBool(const nlohmann::json& j, const char* key, bool dflt, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) return Invalid(absl::StrCat(path, ".", key, " must be true or false"));
  return j[key].get<bool>();
}

}  // namespace

absl::Status PreTokenizer::Parse(const nlohmann::json& j, const std::string& path, std::vector<Step>* steps) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Invalid(absl::StrCat(path, " must be null or an object with a string \"type\""));
  }
  if (!steps->empty() && steps->back().kind == Kind::kByteLevel) {
    return Invalid(absl::StrCat(path, ": a step after ByteLevel is not supported (ByteLevel must come last)"));
  }
  const std::string type = j["type"].get<std::string>();
  Step step;
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return Invalid(absl::StrCat(path, ".pretokenizers must be an array"));
    }
    const nlohmann::json& list = j["pretokenizers"];
    for (size_t i = 0; i < list.size(); ++i) {
      absl::Status s = Parse(list[i], absl::StrCat(path, ".pretokenizers[", i, "]"), steps);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  } else if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
    absl::StatusOr<bool> prefix = OptionalBool(j, "add_prefix_space", true, path);
    if (!prefix.ok()) return prefix.status();
    absl::StatusOr<bool> use_regex = OptionalBool(j, "use_regex", true, path);
    if (!use_regex.ok()) return use_regex.status();
    step.add_prefix_space = *prefix;
    step.use_regex = *use_regex;
    if (step.use_regex) {
      static const Regex* gpt2 = new Regex(*Regex::Compile(kGpt2Pattern));
      step.regex = std::shared_ptr<const Regex>(gpt2, [](const Regex*) {});
    }
  } else if (type == "Split") {
    step.kind = Kind::kSplit;
    const nlohmann::json* pattern = j.contains("pattern") ? &j["pattern"] : nullptr;
    absl::StatusOr<Regex> re = absl::InvalidArgumentError("");
    if (pattern != nullptr && pattern->is_object() && pattern->size() == 1 && pattern->contains("Regex") &&
        (*pattern)["Regex"].is_string()) {
      re = Regex::Compile((*pattern)["Regex"].get<std::string>());
    } else if (pattern != nullptr && pattern->is_object() && pattern->size() == 1 && pattern->contains("String") &&
               (*pattern)["String"].is_string()) {
      re = Regex::Literal((*pattern)["String"].get<std::string>());
    } else {
      return Invalid(absl::StrCat(path, ".pattern must be {\"Regex\": \"...\"} or {\"String\": \"...\"}"));
    }
    if (!re.ok()) return Invalid(absl::StrCat(path, ".pattern: ", re.status().message()));
    step.regex = std::make_shared<const Regex>(std::move(*re));
    if (!j.contains("behavior") || !j["behavior"].is_string()) {
      return Invalid(absl::StrCat(path, ".behavior must be a string"));
    }
    const std::string behavior = j["behavior"].get<std::string>();
    if (behavior == "Removed") {
      step.behavior = Behavior::kRemoved;
    } else if (behavior == "Isolated") {
      step.behavior = Behavior::kIsolated;
    } else if (behavior == "MergedWithPrevious") {
      step.behavior = Behavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      step.behavior = Behavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      step.behavior = Behavior::kContiguous;
    } else {
      return Invalid(absl::StrCat(path, ".behavior \"", behavior,
                                  "\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous"));
    }
    absl::StatusOr<bool> invert = OptionalBool(j, "invert", false, path);
    if (!invert.ok()) return invert.status();
    step.invert = *invert;
  } else if (type == "Digits") {
    step.kind = Kind::kDigits;
    absl::StatusOr<bool> individual = OptionalBool(j, "individual_digits", false, path);
    if (!individual.ok()) return individual.status();
    step.individual_digits = *individual;
  } else {
    return Invalid(absl::StrCat(path, ".type \"", type,
                                "\" is not supported (supported: ByteLevel, Split, Digits, Sequence)"));
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

absl::StatusOr<PreTokenizer> PreTokenizer::FromJson(const nlohmann::json& j, const std::string& path) {
  PreTokenizer p;
  absl::Status s = Parse(j, path, &p.steps_);
  if (!s.ok()) return s;
  return p;
}

PreTokenizer PreTokenizer::Qwen2() { return *Qwen2Shaped(kQwen2Pattern); }

absl::StatusOr<PreTokenizer> PreTokenizer::Qwen2Shaped(std::string_view split_pattern) {
  nlohmann::json j = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", std::string(split_pattern)}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
  return FromJson(j, "pre_tokenizer");
}

void PreTokenizer::Run(std::string_view text, absl::FunctionRef<void(std::string_view)> emit) const {
  RunFrom(0, text, emit);
}

void PreTokenizer::RunFrom(size_t index, std::string_view text, absl::FunctionRef<void(std::string_view)> emit) const {
  if (text.empty()) return;  // tokenizers drops empty pieces after every step
  if (index == steps_.size()) {
    emit(text);
    return;
  }
  const Step& step = steps_[index];
  switch (step.kind) {
    case Kind::kSplit: {
      std::vector<Span> spans = RegexSpans(*step.regex, text);
      if (step.invert) {
        for (Span& s : spans) s.is_match = !s.is_match;
      }
      for (auto [start, end] : ApplyBehavior(std::move(spans), step.behavior)) {
        RunFrom(index + 1, text.substr(start, end - start), emit);
      }
      return;
    }
    case Kind::kDigits: {
      Behavior b = step.individual_digits ? Behavior::kIsolated : Behavior::kContiguous;
      for (auto [start, end] : ApplyBehavior(NumericSpans(text), b)) {
        RunFrom(index + 1, text.substr(start, end - start), emit);
      }
      return;
    }
    case Kind::kByteLevel: {
      std::string prefixed;
      if (step.add_prefix_space && text[0] != ' ') {
        prefixed = absl::StrCat(" ", std::string(text));
        text = prefixed;
      }
      if (!step.use_regex) {
        RunFrom(index + 1, text, emit);
        return;
      }
      // Isolated: the pieces are the matches and the gaps between them.
      size_t prev = 0;
      step.regex->FindAll(text, [&](size_t start, size_t end) {
        if (prev != start) RunFrom(index + 1, text.substr(prev, start - prev), emit);
        RunFrom(index + 1, text.substr(start, end - start), emit);
        prev = end;
      });
      if (prev != text.size()) RunFrom(index + 1, text.substr(prev), emit);
      return;
    }
  }
}

}  // namespace grpo::tokenizer
