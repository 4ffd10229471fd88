#include "core/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include "absl/strings/str_cat.h"

namespace grpo::tokenizer {
namespace {

const icu::Normalizer2* Instance(Normalizer::Form form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case Normalizer::Form::kNFC: n = icu::Normalizer2::getNFCInstance(status); break;
    case Normalizer::Form::kNFD: n = icu::Normalizer2::getNFDInstance(status); break;
    case Normalizer::Form::kNFKC: n = icu::Normalizer2::getNFKCInstance(status); break;
    case Normalizer::Form::kNFKD: n = icu::Normalizer2::getNFKDInstance(status); break;
  }
  // The instances are built into libicuuc; failing here means a broken ICU install.
  if (U_FAILURE(status) || n == nullptr) abort();
  return n;
}

absl::Status Parse(const nlohmann::json& j, const std::string& path, std::vector<Normalizer::Form>* forms) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " must be null or an object with a string \"type\""));
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "NFC") {
    forms->push_back(Normalizer::Form::kNFC);
  } else if (type == "NFD") {
    forms->push_back(Normalizer::Form::kNFD);
  } else if (type == "NFKC") {
    forms->push_back(Normalizer::Form::kNFKC);
  } else if (type == "NFKD") {
    forms->push_back(Normalizer::Form::kNFKD);
  } else if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".normalizers must be an array"));
    }
    const nlohmann::json& list = j["normalizers"];
    for (size_t i = 0; i < list.size(); ++i) {
      absl::Status s = Parse(list[i], absl::StrCat(path, ".normalizers[", i, "]"), forms);
      if (!s.ok()) return s;
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ".type \"", type,
                                                   "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Sequence)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Normalizer> Normalizer::FromJson(const nlohmann::json& j, const std::string& path) {
  std::vector<Form> forms;
  absl::Status s = Parse(j, path, &forms);
  if (!s.ok()) return s;
  return Normalizer(std::move(forms));
}

std::string Normalizer::Apply(std::string_view text) const {
  std::string cur(text);
  for (Form form : forms_) {
    const icu::Normalizer2* n = Instance(form);
    UErrorCode status = U_ZERO_ERROR;
    icu::StringPiece piece(cur.data(), static_cast<int32_t>(cur.size()));
    if (n->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) continue;
    std::string next;
    next.reserve(cur.size() + cur.size() / 4);
    icu::StringByteSink<std::string> sink(&next);
    status = U_ZERO_ERROR;
    n->normalizeUTF8(0, piece, sink, nullptr, status);
    if (U_FAILURE(status)) continue;  // only on invalid input, which callers rule out
    cur = std::move(next);
  }
  return cur;
}

}  // namespace grpo::tokenizer
