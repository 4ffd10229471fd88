#include "core/tokenizer/chat_template.h"

#include "absl/strings/str_cat.h"
#include "core/common/utf8.h"

namespace grpo::tokenizer {
namespace {

// Python's str.isspace() for one code point: Unicode category Zs, or bidi class WS, B
// or S (which adds \t..\r, \x1c..\x1f and \x85).
bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Jinja's `trim` filter (str.strip()).
std::string_view Trim(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    Utf8Step step = NextUtf8(s, begin);
    if (!step.valid || !IsPythonSpace(step.cp)) break;
    begin += step.len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    Utf8Step step = NextUtf8(s, start);
    if (!step.valid || start + step.len != end || !IsPythonSpace(step.cp)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

}  // namespace

absl::StatusOr<ChatTemplate> ParseChatTemplate(std::string_view name) {
  if (name == "plain") return ChatTemplate::kPlain;
  if (name == "chatml") return ChatTemplate::kChatML;
  if (name == "llama3") return ChatTemplate::kLlama3;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown chat template \"", std::string(name), "\" (expected plain, chatml or llama3)"));
}

std::string_view ChatTemplateName(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kPlain: return "plain";
    case ChatTemplate::kChatML: return "chatml";
    case ChatTemplate::kLlama3: return "llama3";
  }
  return "plain";
}

std::string ApplyChatTemplate(ChatTemplate t, std::string_view prompt, std::string_view plain_template,
                              std::string_view system) {
  std::string out;
  switch (t) {
    case ChatTemplate::kPlain: {
      constexpr std::string_view kHole = "{prompt}";
      size_t pos = 0;
      while (true) {
        size_t hole = plain_template.find(kHole, pos);
        if (hole == std::string_view::npos) break;
        out.append(plain_template.substr(pos, hole - pos));
        out.append(prompt);
        pos = hole + kHole.size();
      }
      out.append(plain_template.substr(pos));
      return out;
    }
    case ChatTemplate::kChatML:
      if (!system.empty()) {
        out += "<|im_start|>system\n";
        out.append(system);
        out += "<|im_end|>\n";
      }
      out += "<|im_start|>user\n";
      out.append(prompt);
      out += "<|im_end|>\n<|im_start|>assistant\n";
      return out;
    case ChatTemplate::kLlama3:
      out += "<|begin_of_text|>";
      if (!system.empty()) {
        out += "<|start_header_id|>system<|end_header_id|>\n\n";
        out.append(Trim(system));
        out += "<|eot_id|>";
      }
      out += "<|start_header_id|>user<|end_header_id|>\n\n";
      out.append(Trim(prompt));
      out += "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
  }
  return out;
}

std::vector<std::string> ChatTemplateStopTokens(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kChatML: return {"<|im_end|>", "<|endoftext|>"};
    case ChatTemplate::kLlama3: return {"<|eot_id|>", "<|end_of_text|>"};
    case ChatTemplate::kPlain: return {};
  }
  return {};
}

}  // namespace grpo::tokenizer
