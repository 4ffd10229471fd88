// Tokenizer encode throughput (a report, not a test).
//
//   build/bin/grpo-bench-tokenizer PATH [--mb N]
//
// PATH is a tokenizer.json or a model directory (e.g. the Qwen3 tokenizer that
// scripts/fetch-testdata.sh puts under .cache/testdata). The text is the committed
// golden corpus (tests/tokenizer/corpus.jsonl: prose, code, many scripts, emoji)
// repeated to N MB. Reported: MB/s on a cold cache (a freshly loaded tokenizer) and
// warm, each against the same run's speed of copying the text byte by byte through
// the byte-level alphabet, the floor any byte-level BPE pays.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/tokenizer/bpe_tokenizer.h"
#include "nlohmann/json.hpp"

namespace {
double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: grpo-bench-tokenizer PATH [--mb N]\n");
    return 2;
  }
  double mb = 4;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--mb") mb = std::atof(argv[i + 1]);
  }
  const char* src = std::getenv("GRPO_SOURCE_DIR");
  std::ifstream in(std::string(src ? src : ".") + "/tests/tokenizer/corpus.jsonl");
  std::string corpus, line;
  while (std::getline(in, line)) corpus += nlohmann::json::parse(line)["text"].get<std::string>() + "\n";
  if (corpus.empty()) {
    std::fprintf(stderr, "cannot read tests/tokenizer/corpus.jsonl (set GRPO_SOURCE_DIR)\n");
    return 1;
  }
  std::string text;
  while (text.size() < mb * 1e6) text += corpus;

  // Baseline: map every byte through a 256-entry table into a new string.
  auto t0 = std::chrono::steady_clock::now();
  std::string table(256, 0);
  for (int i = 0; i < 256; ++i) table[i] = static_cast<char>(i ^ 0x5a);
  std::string mapped(text.size(), 0);
  for (size_t i = 0; i < text.size(); ++i) mapped[i] = table[static_cast<unsigned char>(text[i])];
  const double copy_s = Seconds(t0);

  auto tok = grpo::tokenizer::BpeTokenizer::FromFile(argv[1]);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  t0 = std::chrono::steady_clock::now();
  size_t n = tok->Encode(text).size();
  const double cold = Seconds(t0);
  t0 = std::chrono::steady_clock::now();
  tok->Encode(text);
  const double warm = Seconds(t0);
  const double size_mb = text.size() / 1e6;
  std::printf("%.1f MB -> %zu tokens (checksum %d)\n", size_mb, n, mapped[text.size() / 2]);
  std::printf("byte-table copy  %8.1f MB/s\n", size_mb / copy_s);
  std::printf("encode, cold     %8.1f MB/s  (%.3f of the copy)\n", size_mb / cold, copy_s / cold);
  std::printf("encode, warm     %8.1f MB/s  (%.3f of the copy)\n", size_mb / warm, copy_s / warm);
  return 0;
}
