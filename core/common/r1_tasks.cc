#include "core/common/r1_tasks.h"

#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include <nlohmann/json.hpp>

namespace grpo {
namespace {

struct Chain {
  std::vector<int64_t> operands;
  std::vector<char> ops;  // ops[i] joins operands[i] and operands[i + 1]
  std::string text;
  int64_t value = 0;
};

Chain RandomChain(const ChainOptions& o, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> n_ops(o.min_operands, o.max_operands), operand(1, o.max_operand);
  std::uniform_int_distribution<size_t> op(0, o.operators.size() - 1);
  Chain c;
  const int64_t n = n_ops(rng);
  c.value = operand(rng);
  c.operands.push_back(c.value);
  c.text = absl::StrCat(c.value);
  for (int64_t i = 1; i < n; ++i) {
    char o_ = o.operators[op(rng)];
    int64_t x = operand(rng);
    if (o_ == '-' && x > c.value) o_ = '+';  // stay at or above zero
    c.value = o_ == '+' ? c.value + x : c.value - x;
    c.ops.push_back(o_);
    c.operands.push_back(x);
    absl::StrAppend(&c.text, std::string(1, o_), x);
  }
  return c;
}

// The chain worked one operation at a time, each step written as the arithmetic fact
// it is: "14+7=21, 21-9=12, 12+18=30". The operands of a step sit right before its
// "=", as in the fact documents, so a small model reuses what it learned there.
std::string Worked(const Chain& c) {
  std::string out;
  int64_t v = c.operands[0];
  for (size_t i = 0; i < c.ops.size(); ++i) {
    const int64_t next = c.ops[i] == '+' ? v + c.operands[i + 1] : v - c.operands[i + 1];
    absl::StrAppend(&out, i ? ", " : "", v, std::string(1, c.ops[i]), c.operands[i + 1], "=", next);
    v = next;
  }
  return out;
}

// The single steps of a chain: "14+7=21", "21-9=12", "12+18=30".
std::vector<std::string> Steps(const Chain& c) {
  std::vector<std::string> out;
  int64_t v = c.operands[0];
  for (size_t i = 0; i < c.ops.size(); ++i) {
    const int64_t next = c.ops[i] == '+' ? v + c.operands[i + 1] : v - c.operands[i + 1];
    out.push_back(absl::StrCat(v, std::string(1, c.ops[i]), c.operands[i + 1], "=", next));
    v = next;
  }
  return out;
}

// A plausible wrong answer: a slip of a few units or of ten.
int64_t WrongAnswer(int64_t right, std::mt19937_64& rng) {
  static const int64_t kSlips[] = {-10, -2, -1, 1, 2, 10, -3, 3, 11, -9};
  int64_t w = right + kSlips[rng() % 10];
  return w < 0 ? right + 1 : w;
}

}  // namespace

const char* R1ZeroTemplate() {
  return "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
         "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
         "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
         "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
         "User: {prompt}. Assistant:";
}

std::string WorkedSolution(const std::string& chain) {
  Chain c;
  c.text = chain;
  size_t i = 0;
  auto number = [&] {
    int64_t v = 0;
    while (i < chain.size() && chain[i] >= '0' && chain[i] <= '9') v = v * 10 + (chain[i++] - '0');
    return v;
  };
  c.operands.push_back(number());
  while (i < chain.size() && (chain[i] == '+' || chain[i] == '-')) {
    c.ops.push_back(chain[i++]);
    c.operands.push_back(number());
  }
  return Worked(c);
}

ChainTasks GenerateChainTasks(const ChainOptions& o) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + 17);
  ChainTasks out;
  std::set<std::string> seen;
  auto make = [&](int64_t n, const char* prefix, std::vector<Task>* to) {
    for (int64_t tries = 0; static_cast<int64_t>(to->size()) < n && tries < n * 100; ++tries) {
      Chain c = RandomChain(o, rng);
      if (!seen.insert(c.text).second) continue;
      Task t;
      t.id = absl::StrFormat("%s-%06d", prefix, to->size());
      t.task = "math";
      t.prompt = c.text;
      t.answer = absl::StrCat(c.value);
      to->push_back(std::move(t));
    }
  };
  make(o.test_tasks, "test", &out.test);
  make(o.train_tasks, "train", &out.train);
  return out;
}

std::vector<std::string> GeneratePretrainCorpus(const ChainOptions& tasks, const CorpusOptions& o,
                                                const std::vector<Task>& exclude) {
  std::set<std::string> banned;
  for (const Task& t : exclude) banned.insert(t.prompt);
  std::mt19937_64 rng(o.seed * 0xD1B54A32D192ED03ULL + 5);
  std::uniform_real_distribution<double> u(0, 1);
  const std::string preamble = absl::StrReplaceAll(R1ZeroTemplate(), {{"User: {prompt}. Assistant:", ""}});
  std::vector<std::string> docs;
  while (static_cast<int64_t>(docs.size()) < o.documents) {
    Chain c = RandomChain(tasks, rng);
    if (banned.count(c.text)) continue;
    if (u(rng) < o.facts_share) {
      // Six steps of random chains: the facts a worked solution is made of.
      std::string doc;
      for (int i = 0; i < 6; ++i) {
        std::vector<std::string> steps = Steps(RandomChain(tasks, rng));
        absl::StrAppend(&doc, i ? ". " : "", steps[rng() % steps.size()]);
      }
      docs.push_back(nlohmann::json{{"text", doc + "."}}.dump());
      continue;
    }
    const bool dialog = u(rng) < o.dialog_share;
    const bool worked = u(rng) < (dialog ? o.dialog_worked_share : o.worked_share);
    const int64_t said = !worked && u(rng) < o.wrong_share ? WrongAnswer(c.value, rng) : c.value;
    std::string doc;
    if (dialog) {
      std::string answer;
      if (u(rng) < o.tagged_share / o.dialog_share) {
        answer = worked ? absl::StrCat("<think> ", Worked(c), " </think> <answer> ", c.value, " </answer>")
                        : absl::StrCat("<think> </think> <answer> ", said, " </answer>");
      } else {
        answer = worked ? Worked(c) : absl::StrCat(said);
      }
      doc = absl::StrCat(u(rng) < o.preamble_share ? preamble : "", "User: ", c.text, ". Assistant: ", answer);
    } else {
      switch (rng() % 3) {
        case 0:
          doc = worked ? Worked(c) : absl::StrCat(c.text, " = ", said);
          break;
        case 1:
          doc = worked ? absl::StrCat("Q: What is ", c.text, "? A: ", Worked(c))
                       : absl::StrCat("Q: What is ", c.text, "? A: ", said);
          break;
        default:
          doc = absl::StrCat("Exercise: ", c.text, ". Solution: ", worked ? Worked(c) : c.text + " = " + std::to_string(said),
                             ".");
      }
    }
    docs.push_back(nlohmann::json{{"text", doc}}.dump());
  }
  return docs;
}

}  // namespace grpo
