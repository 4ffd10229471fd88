// Normalizer: the "normalizer" section of tokenizer.json. Supported: null, NFC, NFD,
// NFKC, NFKD (through ICU's Normalizer2) and a Sequence of those; any other type is an
// error that names its JSON path. Immutable after construction: thread-safe.
#ifndef GRPO_CORE_TOKENIZER_NORMALIZER_H_
#define GRPO_CORE_TOKENIZER_NORMALIZER_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace grpo::tokenizer {

class Normalizer {
 public:
  enum class Form { kNFC, kNFD, kNFKC, kNFKD };

  Normalizer() = default;  // the identity (tokenizer.json's null)
  explicit Normalizer(std::vector<Form> forms) : forms_(std::move(forms)) {}

  // `j` is the value of the section; `path` its JSON path for messages ("normalizer").
  // Errors read like: normalizer.type "Precompiled" is not supported (...).
  static absl::StatusOr<Normalizer> FromJson(const nlohmann::json& j, const std::string& path);

  bool is_identity() const { return forms_.empty(); }

  // `text` must be valid UTF-8.
  std::string Apply(std::string_view text) const;

 private:
  std::vector<Form> forms_;  // applied in order
};

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_NORMALIZER_H_
