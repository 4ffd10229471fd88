// CharTokenizer: a one-character-per-token tokenizer for demos and tests.
//
// Ids 0..7 are special tokens (see kSpecialTokens); then one id per character
// of the charset, in charset order. The four tag tokens (<think>, </think>,
// <answer>, </answer>) are recognised as whole strings by Encode(), so reward
// functions can find them in decoded text. Immutable after construction, so
// safe for concurrent use from many threads.
#ifndef GRPO_CORE_MODEL_TOKENIZER_H_
#define GRPO_CORE_MODEL_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace grpo::model {

class CharTokenizer {
 public:
  static constexpr int64_t kPadId = 0;
  static constexpr int64_t kBosId = 1;
  static constexpr int64_t kEosId = 2;
  static constexpr int64_t kUnkId = 3;
  static constexpr int64_t kThinkId = 4;
  static constexpr int64_t kEndThinkId = 5;
  static constexpr int64_t kAnswerId = 6;
  static constexpr int64_t kEndAnswerId = 7;
  static constexpr int64_t kNumSpecial = 8;
  // Text of ids 0..7, in id order.
  static const std::array<std::string_view, kNumSpecial> kSpecialTokens;

  // Printable ASCII, ' ' (32) through '~' (126).
  static std::string DefaultCharset();

  // Fails if the charset has a repeated character.
  static absl::StatusOr<CharTokenizer> Create(
      std::string charset = DefaultCharset());

  // Greedy left to right: a tag string starting here becomes its tag id,
  // otherwise the character's id, otherwise <unk>. Adds no <bos>/<eos>.
  std::vector<int64_t> Encode(std::string_view text) const;

  // Ids to text. With skip_special, <pad>/<bos>/<eos>/<unk> are dropped; the
  // four tags are always written as their text. Out-of-range ids count as
  // <unk>.
  std::string Decode(const std::vector<int64_t>& ids,
                     bool skip_special = true) const;

  int64_t vocab_size() const {
    return kNumSpecial + static_cast<int64_t>(charset_.size());
  }
  int64_t pad_id() const { return kPadId; }
  int64_t bos_id() const { return kBosId; }
  int64_t eos_id() const { return kEosId; }
  int64_t unk_id() const { return kUnkId; }
  const std::string& charset() const { return charset_; }

 private:
  explicit CharTokenizer(std::string charset);

  std::string charset_;
  std::array<int64_t, 256> char_to_id_;  // indexed by unsigned char; -1: none
};

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_TOKENIZER_H_
