#include "core/model/tokenizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace grpo::model {

const std::array<std::string_view, CharTokenizer::kNumSpecial>
    CharTokenizer::kSpecialTokens = {"<pad>",   "<bos>",    "<eos>",
                                     "<unk>",   "<think>",  "</think>",
                                     "<answer>", "</answer>"};

std::string CharTokenizer::DefaultCharset() {
  std::string charset;
  for (int c = 32; c <= 126; ++c) charset.push_back(static_cast<char>(c));
  return charset;
}

absl::StatusOr<CharTokenizer> CharTokenizer::Create(std::string charset) {
  std::array<bool, 256> seen{};
  for (size_t i = 0; i < charset.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(charset[i]);
    if (seen[c]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer charset: character code ", static_cast<int>(c),
          " ('", std::string(1, charset[i]), "') appears more than once (again at index ",
          i, "); list each character once"));
    }
    seen[c] = true;
  }
  return CharTokenizer(std::move(charset));
}

CharTokenizer::CharTokenizer(std::string charset)
    : charset_(std::move(charset)) {
  char_to_id_.fill(-1);
  for (size_t i = 0; i < charset_.size(); ++i) {
    char_to_id_[static_cast<unsigned char>(charset_[i])] =
        kNumSpecial + static_cast<int64_t>(i);
  }
}

std::vector<int64_t> CharTokenizer::Encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    // Tags first: "<think>" is one token, not seven characters.
    bool matched_tag = false;
    for (int64_t id = kThinkId; id <= kEndAnswerId; ++id) {
      const std::string_view tag = kSpecialTokens[id];
      if (text.substr(pos, tag.size()) == tag) {
        ids.push_back(id);
        pos += tag.size();
        matched_tag = true;
        break;
      }
    }
    if (matched_tag) continue;
    const int64_t id = char_to_id_[static_cast<unsigned char>(text[pos])];
    ids.push_back(id >= 0 ? id : kUnkId);
    ++pos;
  }
  return ids;
}

std::string CharTokenizer::Decode(const std::vector<int64_t>& ids,
                                  bool skip_special) const {
  std::string text;
  text.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) id = kUnkId;
    if (id >= kNumSpecial) {
      text.push_back(charset_[id - kNumSpecial]);
    } else if (id >= kThinkId || !skip_special) {
      text.append(kSpecialTokens[id]);
    }
  }
  return text;
}

}  // namespace grpo::model
