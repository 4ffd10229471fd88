#include "core/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <cstdint>
#include <queue>
#include <tuple>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/added_tokens.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/common/utf8.h"

namespace grpo::tokenizer {
namespace {

using ojson = nlohmann::ordered_json;

uint64_t PairKey(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
int32_t Left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t Right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// A heap entry: a pair and its count when pushed (stale once the count moved on).
struct Candidate {
  int64_t count;
  uint64_t pair;
  // Highest count first, then the smaller (left, right).
  bool operator<(const Candidate& o) const {
    if (count != o.count) return count < o.count;
    return pair > o.pair;
  }
};

ojson ByteLevelSection() {
  return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
}

}  // namespace

absl::StatusOr<std::string> TrainByteLevelBpe(const std::vector<std::string>& corpus, int num_merges,
                                              const std::vector<std::string>& special_tokens,
                                              const std::vector<std::string>& plain_added_tokens,
                                              std::string_view split_pattern) {
  if (split_pattern.empty()) split_pattern = kQwen2Pattern;
  if (num_merges < 0) return absl::InvalidArgumentError(absl::StrCat("num_merges must be >= 0 (got ", num_merges, ")"));
  std::vector<AddedToken> specials;
  AddedTokenMatcher matcher;
  absl::flat_hash_set<std::string> seen;
  std::vector<std::pair<std::string, bool>> all;
  for (const std::string& s : special_tokens) all.emplace_back(s, true);
  for (const std::string& s : plain_added_tokens) all.emplace_back(s, false);
  for (const auto& [s, special] : all) {
    if (s.empty()) return absl::InvalidArgumentError("special tokens must not be empty");
    if (!IsValidUtf8(s)) return absl::InvalidArgumentError("special tokens must be valid UTF-8");
    if (!seen.insert(s).second) return absl::InvalidArgumentError(absl::StrCat("special token \"", s, "\" is repeated"));
    AddedToken t;
    t.content = s;
    t.special = special;
    matcher.Add(s, static_cast<int>(specials.size()));
    specials.push_back(std::move(t));
  }

  // 1. Pre-token counts, exactly as encoding will cut the text.
  const Normalizer nfc({Normalizer::Form::kNFC});
  absl::StatusOr<PreTokenizer> pre_or = PreTokenizer::Qwen2Shaped(split_pattern);
  if (!pre_or.ok()) return pre_or.status();
  const PreTokenizer& pre = *pre_or;
  absl::flat_hash_map<std::string, int64_t> counts;
  for (const std::string& raw : corpus) {
    const std::string text = IsValidUtf8(raw) ? raw : Utf8Lossy(raw);
    matcher.Split(text, specials, [&](size_t start, size_t end, int token) {
      if (token >= 0) return;
      pre.Run(nfc.Apply(std::string_view(text).substr(start, end - start)),
              [&](std::string_view word) { ++counts[std::string(word)]; });
    });
  }
  // Sorted, so nothing below depends on hash-map order.
  std::vector<std::pair<std::string, int64_t>> words(counts.begin(), counts.end());
  std::sort(words.begin(), words.end());

  // 2. The byte alphabet: id i is byte ByteOrder()[i].
  std::vector<std::string> vocab;  // id -> byte-level string
  absl::flat_hash_map<std::string, int32_t> vocab_ids;
  std::array<int32_t, 256> byte_id;
  for (int i = 0; i < 256; ++i) {
    const uint8_t b = ByteOrder()[i];
    vocab.push_back(ByteToSymbol(b));
    vocab_ids[vocab.back()] = i;
    byte_id[b] = i;
  }

  // 3. Words as symbol ids, pair counts and where each pair occurs.
  std::vector<std::vector<int32_t>> seqs(words.size());
  absl::flat_hash_map<uint64_t, int64_t> pair_count;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    for (char c : words[w].first) seqs[w].push_back(byte_id[static_cast<uint8_t>(c)]);
    for (size_t i = 0; i + 1 < seqs[w].size(); ++i) {
      uint64_t p = PairKey(seqs[w][i], seqs[w][i + 1]);
      pair_count[p] += words[w].second;
      pair_words[p].push_back(static_cast<int32_t>(w));
    }
  }
  std::priority_queue<Candidate> queue;
  for (const auto& [p, c] : pair_count) queue.push({c, p});

  // 4. Merge the best pair until done.
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int>(merges.size()) < num_merges && !queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    auto current = pair_count.find(top.pair);
    if (current == pair_count.end() || current->second != top.count || top.count <= 0) continue;  // stale
    const int32_t a = Left(top.pair), b = Right(top.pair);
    const std::string merged = vocab[a] + vocab[b];
    int32_t new_id;
    if (auto it = vocab_ids.find(merged); it != vocab_ids.end()) {
      new_id = it->second;  // reachable by another pair already; the merge still counts
    } else {
      new_id = static_cast<int32_t>(vocab.size());
      vocab.push_back(merged);
      vocab_ids[merged] = new_id;
    }
    merges.emplace_back(vocab[a], vocab[b]);

    std::vector<int32_t> where = std::move(pair_words[top.pair]);
    pair_words.erase(top.pair);
    std::sort(where.begin(), where.end());
    where.erase(std::unique(where.begin(), where.end()), where.end());
    absl::flat_hash_set<uint64_t> changed;
    for (int32_t w : where) {
      std::vector<int32_t>& seq = seqs[w];
      const int64_t freq = words[w].second;
      std::vector<int32_t> next;
      next.reserve(seq.size());
      for (size_t i = 0; i < seq.size(); ++i) {
        if (i + 1 < seq.size() && seq[i] == a && seq[i + 1] == b) {
          next.push_back(new_id);
          ++i;
        } else {
          next.push_back(seq[i]);
        }
      }
      if (next.size() == seq.size()) continue;  // the pair is no longer in this word
      for (size_t i = 0; i + 1 < seq.size(); ++i) {
        uint64_t p = PairKey(seq[i], seq[i + 1]);
        pair_count[p] -= freq;
        changed.insert(p);
      }
      for (size_t i = 0; i + 1 < next.size(); ++i) {
        uint64_t p = PairKey(next[i], next[i + 1]);
        pair_count[p] += freq;
        changed.insert(p);
        if (next[i] == new_id || next[i + 1] == new_id) pair_words[p].push_back(w);
      }
      seq = std::move(next);
    }
    for (uint64_t p : changed) {
      int64_t c = pair_count[p];
      if (c > 0) queue.push({c, p});
    }
  }

  // 5. tokenizer.json, in the layout tokenizers itself writes.
  ojson vocab_json = ojson::object();
  for (size_t id = 0; id < vocab.size(); ++id) vocab_json[vocab[id]] = id;
  ojson added = ojson::array();
  int64_t next_id = static_cast<int64_t>(vocab.size());
  for (const AddedToken& t : specials) {
    // tokenizers gives an added token that is already a vocabulary string that id.
    auto in_vocab = vocab_ids.find(t.content);
    int64_t id = in_vocab != vocab_ids.end() ? in_vocab->second : next_id++;
    added.push_back(ojson{{"id", id}, {"content", t.content}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", t.special}});
  }
  ojson root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = added;
  root["normalizer"] = ojson{{"type", "NFC"}};
  root["pre_tokenizer"] = ojson{
      {"type", "Sequence"},
      {"pretokenizers",
       ojson::array({ojson{{"type", "Split"},
                           {"pattern", ojson{{"Regex", std::string(split_pattern)}}},
                           {"behavior", "Isolated"},
                           {"invert", false}},
                     ByteLevelSection()})}};
  root["post_processor"] = ByteLevelSection();
  root["decoder"] = ByteLevelSection();
  root["model"] = ojson{{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"ignore_merges", false},
                        {"vocab", vocab_json},
                        {"merges", "@MERGES@"}};
  // Pretty-printed, but one merge per line rather than five.
  std::string merges_text = "[";
  for (size_t i = 0; i < merges.size(); ++i) {
    merges_text += absl::StrCat(i ? "," : "", "\n      [", ojson(merges[i].first).dump(), ", ",
                                ojson(merges[i].second).dump(), "]");
  }
  merges_text += merges.empty() ? "]" : "\n    ]";
  std::string out = root.dump(2);
  out.replace(out.find("\"@MERGES@\""), 10, merges_text);
  out += "\n";
  return out;
}

}  // namespace grpo::tokenizer
