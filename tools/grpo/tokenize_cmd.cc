// grpo tokenize: text to token ids and back with a Hugging Face tokenizer.json.
//   grpo tokenize --tokenizer PATH                     stdin text -> one line "[id, ...]"
//   grpo tokenize --tokenizer PATH --decode [--skip-special-tokens]
//                                                      stdin "[id, ...]" -> text
// PATH is a tokenizer.json or a model directory holding one. No special tokens are
// added; decoding prints exactly the text (no newline of its own). Errors go to stderr
// and exit with status 2.
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/tokenizer/bpe_tokenizer.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  bool decode = false;
  bool skip_special_tokens = false;
};

int Fail(const std::string& msg) {
  std::cerr << "grpo tokenize: " << msg << "\n";
  return 2;
}

int RunTokenize(const TokenizeOptions& opt) {
  absl::StatusOr<tokenizer::BpeTokenizer> tok = tokenizer::BpeTokenizer::FromFile(opt.tokenizer);
  if (!tok.ok()) return Fail(std::string(tok.status().message()));
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());

  if (!opt.decode) {
    std::cout << nlohmann::json(tok->Encode(input)).dump() << "\n";
    return 0;
  }
  nlohmann::json ids = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  bool ok = ids.is_array();
  for (size_t i = 0; ok && i < ids.size(); ++i) ok = ids[i].is_number_integer();
  if (!ok) return Fail("stdin is not a JSON array of token ids (like [9707, 11, 1879])");
  absl::StatusOr<std::string> text = tok->DecodeChecked(ids.get<std::vector<int64_t>>(), opt.skip_special_tokens);
  if (!text.ok()) return Fail(std::string(text.status().message()));
  std::cout << *text;
  std::cout.flush();
  return 0;
}

}  // namespace

Subcommand AddTokenizeCommand(CLI::App& app) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "encode stdin text to token ids (or --decode ids to text)");
  cmd->add_option("--tokenizer", opt->tokenizer, "tokenizer.json, or a model directory holding one")->required();
  cmd->add_flag("--decode", opt->decode, "read a JSON array of ids and print the text");
  cmd->add_flag("--skip-special-tokens", opt->skip_special_tokens, "with --decode: leave out special tokens");
  return {cmd, [opt] { return RunTokenize(*opt); }};
}

}  // namespace grpo
