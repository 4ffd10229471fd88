#include "core/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/common/utf8.h"

namespace grpo::tokenizer {

using json = nlohmann::json;

namespace {

// Pre-tokens up to this many bytes are cached, up to this many entries (then the cache
// stops growing; a hit rate on natural text is high long before that).
constexpr size_t kMaxCachedBytes = 64;
constexpr size_t kMaxCacheEntries = 1 << 17;

uint64_t PairKey(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

// JSON string literal for messages: "a\"b".
std::string Quote(std::string_view s) { return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace); }

std::string Str(absl::string_view s) { return std::string(s.data(), s.size()); }
// Debian's Abseil has its own string_view; hash-map lookups by a std::string_view go
// through it.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

struct BpeTokenizer::Impl {
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  struct TokenInfo {
    bool valid = false;
    bool special = false;
    std::string token;  // as spelled in tokenizer.json
    std::string bytes;  // what the ByteLevel decoder turns it into
  };

  Normalizer normalizer;
  PreTokenizer pre_tokenizer;

  // The BPE model, on bytes: each byte starts as the id of its byte-level symbol.
  std::array<int32_t, 256> byte_ids;
  absl::flat_hash_map<uint64_t, Merge> merges;  // (left id, right id) -> merge
  bool ignore_merges = false;
  absl::flat_hash_map<std::string, int32_t> whole_words;  // raw bytes -> id, for ignore_merges
  int32_t unk_id = -1;
  bool fuse_unk = false;

  std::vector<AddedToken> added;  // by id
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false
  AddedTokenMatcher normalized_matcher;  // added tokens with normalized=true

  std::vector<TokenInfo> tokens;  // index = id
  absl::flat_hash_map<std::string, int64_t> token_to_id;
  // Ids a TemplateProcessing post-processor puts before a single text (e.g.
  // Llama-3's <|begin_of_text|>).
  std::vector<int64_t> leading_special_ids;

  mutable absl::Mutex cache_mu;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache ABSL_GUARDED_BY(cache_mu);

  void EncodeWord(std::string_view bytes, std::vector<int64_t>* out) const;
  void MergeWord(std::string_view bytes, std::vector<int32_t>* ids) const;
};

// tokenizers' Word::merge_all: repeatedly apply the lowest-ranked merge among adjacent
// pairs (the leftmost on ties), with a heap of candidates and lazy invalidation.
void BpeTokenizer::Impl::MergeWord(std::string_view bytes, std::vector<int32_t>* ids) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(bytes.size());
  for (char c : bytes) {
    int32_t id = byte_ids[static_cast<uint8_t>(c)];
    if (id < 0) {
      if (unk_id < 0) continue;  // no unk token: the byte is dropped, as tokenizers does
      if (fuse_unk && !sym.empty() && sym.back().id == unk_id) continue;
      id = unk_id;
    }
    int32_t n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, -1, true});
    if (n > 0) sym[n - 1].next = n;
  }
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    int32_t next = sym[pos].next;
    if (next < 0) return;
    auto it = merges.find(PairKey(sym[pos].id, sym[next].id));
    if (it != merges.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip a stale candidate: the pair here changed since it was queued.
    auto it = merges.find(PairKey(left.id, sym[left.next].id));
    if (it == merges.end() || it->second.new_id != top.new_id) continue;
    Symbol& right = sym[left.next];
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (const Symbol& s : sym) {
    if (s.alive) ids->push_back(s.id);
  }
}

void BpeTokenizer::Impl::EncodeWord(std::string_view bytes, std::vector<int64_t>* out) const {
  if (ignore_merges) {
    auto it = whole_words.find(AV(bytes));
    if (it != whole_words.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = bytes.size() <= kMaxCachedBytes;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu);
    auto it = cache.find(AV(bytes));
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  MergeWord(bytes, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    absl::MutexLock lock(&cache_mu);
    if (cache.size() < kMaxCacheEntries) cache.emplace(std::string(bytes), std::move(ids));
  }
}

namespace {

// Loading: every error names the source, the JSON path and what is wrong.
class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  absl::Status Error(const std::string& msg) const { return absl::InvalidArgumentError(absl::StrCat(source_, ": ", msg)); }

  absl::StatusOr<std::shared_ptr<BpeTokenizer::Impl>> Load(std::string_view text);

 private:
  absl::Status LoadModel(const json& model, BpeTokenizer::Impl* impl, absl::flat_hash_map<std::string, int64_t>* vocab);
  absl::Status LoadPostProcessor(const json& post_processor, BpeTokenizer::Impl* impl);
  absl::Status LoadAddedTokens(const json& list, const absl::flat_hash_map<std::string, int64_t>& vocab,
                               BpeTokenizer::Impl* impl);
  std::string source_;
};

absl::StatusOr<std::shared_ptr<BpeTokenizer::Impl>> Loader::Load(std::string_view text) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> from "parse error".
    size_t at = what.find("] ");
    return Error(absl::StrCat("invalid JSON: ", at == std::string::npos ? what : what.substr(at + 2)));
  }
  if (!root.is_object()) return Error("the top level must be a JSON object");
  if (root.contains("version") && root["version"] != "1.0") {
    return Error(absl::StrCat("version ", root["version"].dump(), " is not supported (expected \"1.0\")"));
  }
  auto impl = std::make_shared<BpeTokenizer::Impl>();

  absl::StatusOr<Normalizer> normalizer = Normalizer::FromJson(root.value("normalizer", json()), "normalizer");
  if (!normalizer.ok()) return Error(Str(normalizer.status().message()));
  impl->normalizer = std::move(*normalizer);

  absl::StatusOr<PreTokenizer> pre = PreTokenizer::FromJson(root.value("pre_tokenizer", json()), "pre_tokenizer");
  if (!pre.ok()) return Error(Str(pre.status().message()));
  if (!pre->ends_with_byte_level()) {
    return Error("pre_tokenizer must be ByteLevel or a Sequence ending in ByteLevel (only byte-level BPE is supported)");
  }
  impl->pre_tokenizer = std::move(*pre);

  const json decoder = root.value("decoder", json());
  if (!decoder.is_object() || decoder.value("type", json()) != "ByteLevel") {
    return Error(absl::StrCat("decoder must be {\"type\": \"ByteLevel\"} (got ",
                              decoder.is_object() ? decoder.value("type", json()).dump() : decoder.dump(), ")"));
  }

  if (!root.contains("model")) return Error("model is missing");
  absl::flat_hash_map<std::string, int64_t> vocab;
  absl::Status s = LoadModel(root["model"], impl.get(), &vocab);
  if (!s.ok()) return s;
  s = LoadAddedTokens(root.value("added_tokens", json::array()), vocab, impl.get());
  if (!s.ok()) return s;
  s = LoadPostProcessor(root.value("post_processor", json()), impl.get());
  if (!s.ok()) return s;
  return impl;
}

// Only what encoding with add_special_tokens=True puts before the text matters to
// us: the SpecialToken pieces of a TemplateProcessing "single" template that come
// before its first Sequence. Other processors (ByteLevel, ...) add nothing.
absl::Status Loader::LoadPostProcessor(const json& pp, BpeTokenizer::Impl* impl) {
  if (!pp.is_object()) return absl::OkStatus();
  std::vector<std::pair<json, std::string>> parts;
  if (pp.value("type", json()) == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (size_t i = 0; i < pp["processors"].size(); ++i) {
      parts.emplace_back(pp["processors"][i], absl::StrCat("post_processor.processors[", i, "]"));
    }
  } else {
    parts.emplace_back(pp, "post_processor");
  }
  for (const auto& [p, path] : parts) {
    if (!p.is_object() || p.value("type", json()) != "TemplateProcessing") continue;
    const json single = p.value("single", json());
    const json specials = p.value("special_tokens", json::object());
    if (!single.is_array()) return Error(absl::StrCat(path, ".single must be an array"));
    for (const json& piece : single) {
      if (piece.is_object() && piece.contains("Sequence")) break;
      if (!piece.is_object() || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object()) continue;
      const json name = piece["SpecialToken"].value("id", json());
      if (!name.is_string() || !specials.is_object() || !specials.contains(name.get<std::string>())) {
        return Error(absl::StrCat(path, ": special token ", name.dump(), " is not in special_tokens"));
      }
      const json ids = specials[name.get<std::string>()].value("ids", json());
      if (!ids.is_array()) return Error(absl::StrCat(path, ".special_tokens[", name.dump(), "].ids must be an array"));
      for (const json& id : ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
            id.get<int64_t>() >= static_cast<int64_t>(impl->tokens.size()) || !impl->tokens[id.get<int64_t>()].valid) {
          return Error(absl::StrCat(path, ": special token ", name.dump(), " has unknown id ", id.dump()));
        }
        impl->leading_special_ids.push_back(id.get<int64_t>());
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadModel(const json& model, BpeTokenizer::Impl* impl,
                               absl::flat_hash_map<std::string, int64_t>* vocab) {
  if (!model.is_object()) return Error("model must be an object");
  if (!model.contains("type")) return Error("model.type is missing");
  if (model["type"] != "BPE") {
    return Error(absl::StrCat("model.type ", model["type"].dump(), " is not supported (only \"BPE\")"));
  }
  // Options we do not implement must be off.
  const json dropout = model.value("dropout", json());
  if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
    return Error(absl::StrCat("model.dropout ", dropout.dump(), " is not supported (must be null)"));
  }
  const json byte_fallback = model.value("byte_fallback", json(false));
  if (byte_fallback != json(false) && !byte_fallback.is_null()) {
    return Error("model.byte_fallback true is not supported (byte-level BPE needs no byte fallback)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json v = model.value(key, json());
    if (!v.is_null() && v != "") {
      return Error(absl::StrCat("model.", key, " ", v.dump(), " is not supported (must be null or \"\")"));
    }
  }
  const json ignore_merges = model.value("ignore_merges", json(false));
  const json fuse_unk = model.value("fuse_unk", json(false));
  impl->ignore_merges = ignore_merges.is_boolean() && ignore_merges.get<bool>();
  impl->fuse_unk = fuse_unk.is_boolean() && fuse_unk.get<bool>();

  // vocab: token string -> id.
  if (!model.contains("vocab") || !model["vocab"].is_object()) return Error("model.vocab must be an object of token -> id");
  int64_t max_id = -1;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX) {
      return Error(absl::StrCat("model.vocab[", Quote(it.key()), "] must be a non-negative integer id (got ",
                                it.value().dump(), ")"));
    }
    int64_t id = it.value().get<int64_t>();
    vocab->emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  impl->tokens.resize(max_id + 1);
  for (const auto& [token, id] : *vocab) {
    BpeTokenizer::Impl::TokenInfo& info = impl->tokens[id];
    if (info.valid) {
      return Error(absl::StrCat("model.vocab: id ", id, " is given to both ", Quote(info.token), " and ", Quote(token)));
    }
    info.valid = true;
    info.token = token;
    std::optional<std::string> bytes = SymbolsToBytes(token);
    // The ByteLevel decoder maps a token back to bytes when every character is a byte
    // symbol, and otherwise keeps its text.
    info.bytes = bytes ? *bytes : token;
    if (bytes && impl->ignore_merges) impl->whole_words.emplace(*bytes, static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab->find(ByteToSymbol(static_cast<uint8_t>(b)));
    impl->byte_ids[b] = it == vocab->end() ? -1 : static_cast<int32_t>(it->second);
  }
  const json unk = model.value("unk_token", json());
  if (!unk.is_null()) {
    if (!unk.is_string() || !vocab->contains(unk.get<std::string>())) {
      return Error(absl::StrCat("model.unk_token ", unk.dump(), " is not in model.vocab"));
    }
    impl->unk_id = static_cast<int32_t>(vocab->at(unk.get<std::string>()));
  }

  // merges: ["a b", ...] (older files) or [["a", "b"], ...]; rank = position.
  if (!model.contains("merges") || !model["merges"].is_array()) return Error("model.merges must be an array");
  const json& merges = model["merges"];
  impl->merges.reserve(merges.size());
  uint32_t rank = 0;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string a, b;
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;  // a merges.txt header kept as an entry
      size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return Error(absl::StrCat("model.merges[", i, "] ", Quote(line), " must be two tokens separated by one space"));
      }
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return Error(absl::StrCat("model.merges[", i, "] must be a string \"a b\" or a pair [\"a\", \"b\"] (got ",
                                m.dump(), ")"));
    }
    for (const std::string* t : {&a, &b}) {
      if (!vocab->contains(*t)) {
        return Error(absl::StrCat("model.merges[", i, "] uses ", Quote(*t), ", which is not in model.vocab"));
      }
    }
    auto merged = vocab->find(a + b);
    if (merged == vocab->end()) {
      return Error(absl::StrCat("model.merges[", i, "] makes ", Quote(a + b), ", which is not in model.vocab"));
    }
    // A repeated pair keeps its last rank, as in tokenizers.
    impl->merges[PairKey(static_cast<int32_t>(vocab->at(a)), static_cast<int32_t>(vocab->at(b)))] = {
        rank++, static_cast<int32_t>(merged->second)};
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadAddedTokens(const json& list, const absl::flat_hash_map<std::string, int64_t>& vocab,
                                     BpeTokenizer::Impl* impl) {
  if (!list.is_array()) return Error("added_tokens must be an array");
  // tokenizers ignores the ids in the file and gives each new token the next id after
  // the vocabulary (or the vocabulary's id, if its content is a vocabulary token). We
  // compute the same and insist the file agrees, so ids never silently differ.
  int64_t next_id = static_cast<int64_t>(vocab.size());
  absl::flat_hash_map<std::string, int64_t> added_ids;       // content -> id
  absl::flat_hash_map<int64_t, AddedToken> by_id;            // id -> token (last wins)
  absl::flat_hash_map<int64_t, std::string> normalized_form; // id -> normalized content
  absl::flat_hash_set<std::string> special_contents;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!t.is_object()) return Error(absl::StrCat(path, " must be an object"));
    if (!t.contains("content") || !t["content"].is_string()) return Error(absl::StrCat(path, ".content must be a string"));
    if (!t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() > INT32_MAX) {
      return Error(absl::StrCat(path, ".id must be a non-negative integer"));
    }
    AddedToken token;
    token.content = t["content"].get<std::string>();
    token.id = t["id"].get<int64_t>();
    struct Flag {
      const char* key;
      bool* field;
      bool dflt;
    };
    for (const Flag& f : {Flag{"special", &token.special, false}, Flag{"lstrip", &token.lstrip, false},
                          Flag{"rstrip", &token.rstrip, false}, Flag{"single_word", &token.single_word, false},
                          Flag{"normalized", &token.normalized, true}}) {
      const json v = t.value(f.key, json(f.dflt));
      if (!v.is_boolean()) return Error(absl::StrCat(path, ".", f.key, " must be true or false"));
      *f.field = v.get<bool>();
    }
    if (token.content.empty()) continue;  // tokenizers ignores empty added tokens
    if (!IsValidUtf8(token.content)) return Error(absl::StrCat(path, ".content is not valid UTF-8"));
    auto known = added_ids.find(token.content);
    int64_t id;
    if (known != added_ids.end()) {
      id = known->second;
    } else if (auto v = vocab.find(token.content); v != vocab.end()) {
      id = v->second;
    } else {
      id = next_id++;
    }
    if (id != token.id) {
      return Error(absl::StrCat(path, " ", Quote(token.content), " has id ", token.id,
                                " but Hugging Face tokenizers would give it id ", id,
                                " (added tokens take the ids right after the vocabulary, in order)"));
    }
    if (token.normalized && !impl->normalizer.is_identity()) {
      std::string normed = impl->normalizer.Apply(token.content);
      if (normed != token.content) normalized_form[id] = normed;
    }
    added_ids[token.content] = id;
    if (token.special) special_contents.insert(token.content);
    by_id[id] = std::move(token);
  }

  std::vector<int64_t> ids;
  for (const auto& [id, token] : by_id) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  if (!ids.empty() && ids.back() >= static_cast<int64_t>(impl->tokens.size())) impl->tokens.resize(ids.back() + 1);
  for (int64_t id : ids) {
    AddedToken& token = by_id[id];
    const int index = static_cast<int>(impl->added.size());
    if (token.normalized) {
      // Matched in normalized text, so by its normalized form.
      auto normed = normalized_form.find(id);
      impl->normalized_matcher.Add(normed != normalized_form.end() ? normed->second : token.content, index);
    } else {
      impl->raw_matcher.Add(token.content, index);
    }
    // Decoded from its content as written (tokenizers 0.22; 0.23 decodes a normalized
    // added token from its normalized form instead).
    BpeTokenizer::Impl::TokenInfo& info = impl->tokens[id];
    info.valid = true;
    info.token = token.content;
    std::optional<std::string> bytes = SymbolsToBytes(token.content);
    info.bytes = bytes ? *bytes : token.content;
    impl->added.push_back(std::move(token));
  }
  // skip_special_tokens goes by token text, so a vocabulary token spelled like a special
  // token is special too (as in tokenizers).
  for (BpeTokenizer::Impl::TokenInfo& info : impl->tokens) {
    info.special = info.valid && special_contents.contains(info.token);
  }
  for (const auto& [token, id] : vocab) impl->token_to_id.emplace(token, id);
  for (const auto& [content, id] : added_ids) impl->token_to_id[content] = id;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromJson(std::string_view json_text, std::string_view source_name) {
  Loader loader{std::string(source_name)};
  absl::StatusOr<std::shared_ptr<Impl>> impl = loader.Load(json_text);
  if (!impl.ok()) return impl.status();
  return BpeTokenizer(std::move(*impl));
}

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromFile(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (std::filesystem::is_directory(path, ec)) file = (std::filesystem::path(path) / "tokenizer.json").string();
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read tokenizer ", file, ": ", std::strerror(errno)));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return FromJson(buf.str(), file);
}

std::vector<int64_t> BpeTokenizer::Encode(std::string_view text) const {
  const Impl& m = *impl_;
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    sanitized = Utf8Lossy(text);
    text = sanitized;
  }
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 1);
  auto encode_normalized = [&](std::string_view piece) {
    m.normalized_matcher.Split(piece, m.added, [&](size_t start, size_t end, int token) {
      if (token >= 0) {
        out.push_back(m.added[token].id);
        return;
      }
      m.pre_tokenizer.Run(piece.substr(start, end - start), [&](std::string_view word) { m.EncodeWord(word, &out); });
    });
  };
  m.raw_matcher.Split(text, m.added, [&](size_t start, size_t end, int token) {
    if (token >= 0) {
      out.push_back(m.added[token].id);
      return;
    }
    std::string_view piece = text.substr(start, end - start);
    if (m.normalizer.is_identity()) {
      encode_normalized(piece);
    } else {
      encode_normalized(m.normalizer.Apply(piece));
    }
  });
  return out;
}

std::string BpeTokenizer::Decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (!IsValidId(id)) continue;
    const Impl::TokenInfo& info = impl_->tokens[id];
    if (skip_special_tokens && info.special) continue;
    bytes += info.bytes;
  }
  return IsValidUtf8(bytes) ? bytes : Utf8Lossy(bytes);
}

absl::StatusOr<std::string> BpeTokenizer::DecodeChecked(const std::vector<int64_t>& ids,
                                                        bool skip_special_tokens) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!IsValidId(ids[i])) {
      return absl::OutOfRangeError(absl::StrCat("token id ", ids[i], " at index ", i, " is not in the vocabulary (ids are 0 to ",
                                                vocab_size() - 1, ")"));
    }
  }
  return Decode(ids, skip_special_tokens);
}

std::string BpeTokenizer::TokenBytes(int64_t id) const { return IsValidId(id) ? impl_->tokens[id].bytes : std::string(); }

std::optional<std::string> BpeTokenizer::IdToToken(int64_t id) const {
  if (!IsValidId(id)) return std::nullopt;
  return impl_->tokens[id].token;
}

std::optional<int64_t> BpeTokenizer::TokenToId(std::string_view token) const {
  auto it = impl_->token_to_id.find(AV(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->tokens.size()); }

bool BpeTokenizer::IsSpecial(int64_t id) const { return IsValidId(id) && impl_->tokens[id].special; }

bool BpeTokenizer::IsValidId(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(impl_->tokens.size()) && impl_->tokens[id].valid;
}

const std::vector<AddedToken>& BpeTokenizer::added_tokens() const { return impl_->added; }

const std::vector<int64_t>& BpeTokenizer::LeadingSpecialIds() const { return impl_->leading_special_ids; }

std::string StreamDecoder::Push(int64_t id) {
  if (!tokenizer_.IsValidId(id)) return "";
  if (skip_special_tokens_ && tokenizer_.IsSpecial(id)) return "";
  pending_ += tokenizer_.impl_->tokens[id].bytes;
  const size_t keep = IncompleteUtf8Tail(pending_);
  std::string_view ready(pending_.data(), pending_.size() - keep);
  std::string out = IsValidUtf8(ready) ? std::string(ready) : Utf8Lossy(ready);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::Finish() {
  std::string out = Utf8Lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace grpo::tokenizer
