#include "core/common/sft_data.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/common/dataset.h"

namespace grpo {

absl::StatusOr<SftRecord> ParseSftLine(const std::string& line, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat(where, ": ", why)); };
  // nlohmann rejects strings that are not valid UTF-8 as a parse error.
  if (j.is_discarded()) return bad("not valid JSON (or a string that is not valid UTF-8)");
  if (!j.is_object()) return bad("expected a JSON object");
  const bool has_text = j.contains("text"), has_prompt = j.contains("prompt"), has_completion = j.contains("completion");
  if (has_text && (has_prompt || has_completion)) {
    return bad("give either \"text\" or \"prompt\" and \"completion\", not both");
  }
  SftRecord r;
  r.where = where;
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    const auto& v = j[key];
    if (!v.is_string()) return bad(absl::StrCat("field '", key, "' must be a string"));
    *out = v.get<std::string>();
    if (out->empty()) return bad(absl::StrCat("field '", key, "' is empty"));
    return absl::OkStatus();
  };
  if (has_text) {
    r.is_text = true;
    if (absl::Status s = str("text", &r.text); !s.ok()) return s;
    return r;
  }
  if (!has_prompt || !has_completion) {
    return bad(has_prompt ? "missing field 'completion'"
                          : has_completion ? "missing field 'prompt'"
                                           : "needs \"text\", or \"prompt\" and \"completion\"");
  }
  if (absl::Status s = str("prompt", &r.prompt); !s.ok()) return s;
  if (absl::Status s = str("completion", &r.completion); !s.ok()) return s;
  return r;
}

absl::StatusOr<std::vector<SftRecord>> LoadSftData(const std::string& path) {
  return ParseJsonlFile<SftRecord>(path, "training data", ParseSftLine);
}

}  // namespace grpo
