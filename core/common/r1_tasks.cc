#include "core/common/r1_tasks.h"

#include <random>
#include <set>
#include <utility>

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

// Writes c's text and value from its operands and operators.
void Restate(Chain* c) {
  c->value = c->operands[0];
  c->text = absl::StrCat(c->value);
  for (size_t i = 0; i < c->ops.size(); ++i) {
    c->value = c->ops[i] == '+' ? c->value + c->operands[i + 1] : c->value - c->operands[i + 1];
    absl::StrAppend(&c->text, std::string(1, c->ops[i]), c->operands[i + 1]);
  }
}

Chain RandomChain(const ChainOptions& o, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> n_ops(o.min_operands, o.max_operands), operand(1, o.max_operand);
  std::uniform_int_distribution<size_t> op(0, o.operators.size() - 1);
  Chain c;
  const int64_t n = n_ops(rng);
  int64_t value = operand(rng);
  c.operands.push_back(value);
  for (int64_t i = 1; i < n; ++i) {
    char o_ = o.operators[op(rng)];
    int64_t x = operand(rng);
    if (o_ == '-' && x > value) o_ = '+';  // stay at or above zero
    value = o_ == '+' ? value + x : value - x;
    c.ops.push_back(o_);
    c.operands.push_back(x);
  }
  Restate(&c);
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

// The chain worked in number words, or switching notation before step `switch_at`
// (language mixing): steps before it in `first_words ? words : digits`, the rest in the
// other notation. switch_at >= the number of steps: one notation throughout.
std::string WorkedIn(const Chain& c, bool first_words, size_t switch_at) {
  std::string out;
  int64_t v = c.operands[0];
  for (size_t i = 0; i < c.ops.size(); ++i) {
    const int64_t next = c.ops[i] == '+' ? v + c.operands[i + 1] : v - c.operands[i + 1];
    const bool words = i < switch_at ? first_words : !first_words;
    if (words) {
      absl::StrAppend(&out, i ? ", " : "", NumberWords(v), c.ops[i] == '+' ? " plus " : " minus ",
                      NumberWords(c.operands[i + 1]), " is ", NumberWords(next));
    } else {
      absl::StrAppend(&out, i ? ", " : "", v, std::string(1, c.ops[i]), c.operands[i + 1], "=", next);
    }
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

// How a worked solution opens: nothing half the time, else a phrase of one to five
// words. Without this variety the only thing between a problem and its worked solution
// is a fixed few tokens per document shape, and a small model learns to find the next
// operand by its distance back rather than by reading the problem; that fails wherever
// the gap differs, as it does after "Assistant: <think>".
std::string Lead(std::mt19937_64& rng) {
  static const char* kLeads[] = {"So ", "First, ", "Step by step: ", "Let's see: ", "In order: ", "Working: ",
                                 "Left to right, ", "One step at a time: "};
  if (rng() % 2 == 0) return "";
  return kLeads[rng() % (sizeof(kLeads) / sizeof(kLeads[0]))];
}

}  // namespace

const char* R1ZeroTemplate() {
  return "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
         "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
         "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
         "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
         "User: {prompt}. Assistant:";
}

std::string NumberWords(int64_t n) {
  static const char* kOnes[] = {"zero",    "one",     "two",       "three",    "four",     "five",    "six",
                                "seven",   "eight",   "nine",      "ten",      "eleven",   "twelve",  "thirteen",
                                "fourteen", "fifteen", "sixteen",  "seventeen", "eighteen", "nineteen"};
  static const char* kTens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  if (n < 0) return "minus " + NumberWords(-n);
  if (n >= 1000000) return absl::StrCat(n);
  if (n >= 1000) {
    const std::string rest = n % 1000 ? " " + NumberWords(n % 1000) : "";
    return NumberWords(n / 1000) + " thousand" + rest;
  }
  if (n >= 100) return absl::StrCat(kOnes[n / 100], " hundred", n % 100 ? " " + NumberWords(n % 100) : "");
  if (n >= 20) return absl::StrCat(kTens[n / 10], n % 10 ? absl::StrCat("-", kOnes[n % 10]) : "");
  return kOnes[n];
}

std::string NotationInstruction(const std::string& language) { return " (in " + language + ")"; }

std::string NotationOf(const std::string& prompt) {
  for (const char* l : {"digits", "words"}) {
    if (prompt.find(NotationInstruction(l)) != std::string::npos) return l;
  }
  return "";
}

double NotationConsistency(std::string_view text, const std::string& language) {
  static const std::set<std::string> kWords = [] {
    std::set<std::string> w = {"plus", "minus", "is", "equals", "hundred", "thousand"};
    for (int64_t n = 0; n < 100; ++n) w.insert(NumberWords(n));
    return w;
  }();
  int64_t digits = 0, words = 0;
  auto letter = [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); };
  for (size_t i = 0; i < text.size();) {
    const char ch = text[i];
    if (ch >= '0' && ch <= '9') {
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
      ++digits;
    } else if (ch == '+' || ch == '-' || ch == '=') {
      ++digits;
      ++i;
    } else if (letter(ch)) {
      // A word, hyphens inside it included ("twenty-one"): a number word or an
      // operator word counts once.
      size_t j = i;
      while (j < text.size() && (letter(text[j]) || (text[j] == '-' && j + 1 < text.size() && letter(text[j + 1])))) ++j;
      std::string w(text.substr(i, j - i));
      for (char& x : w) x = static_cast<char>(x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x);
      if (kWords.count(w)) ++words;
      i = j;
    } else {
      ++i;
    }
  }
  if (digits + words == 0) return 1.0;
  return static_cast<double>(language == "words" ? words : digits) / static_cast<double>(digits + words);
}

std::string WorkedSolution(const std::string& chain, bool words) {
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
  return words ? WorkedIn(c, true, c.ops.size()) : Worked(c);
}

std::vector<std::string> ColdStartExamples(const std::vector<Task>& tasks, int64_t n) {
  std::vector<std::string> out;
  for (const Task& t : tasks) {
    if (static_cast<int64_t>(out.size()) >= n) break;
    const std::string chain = t.prompt.substr(0, t.prompt.find(' '));
    const bool words = (t.language.empty() ? NotationOf(t.prompt) : t.language) == "words";
    nlohmann::json j = {{"prompt", t.prompt},
                        {"completion", absl::StrCat(" <think> ", WorkedSolution(chain, words), " </think> <answer> ",
                                                    t.answer, " </answer>")}};
    out.push_back(j.dump());
  }
  return out;
}

ChainTasks GenerateChainTasks(const ChainOptions& o) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + 17);
  // The notation each prompt asks for is drawn apart: the sums are the same as without.
  std::mt19937_64 notation_rng(o.seed * 0x94D049BB133111EBULL + 23);
  std::uniform_real_distribution<double> u(0, 1);
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
      if (o.words_share > 0) {
        t.language = u(notation_rng) < o.words_share ? "words" : "digits";
        t.prompt += NotationInstruction(t.language);
      }
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
  // Notations: drawn from a generator of their own, and only when on, so that a corpus
  // without them is the same bytes as before they existed.
  const bool notations = o.words_share > 0 || o.mixed_share > 0 || o.instruction_share > 0;
  std::mt19937_64 nrng(o.seed * 0x94D049BB133111EBULL + 29);
  // Restated results: their own generator too, drawn only when on.
  std::mt19937_64 rrng(o.seed * 0xBF58476D1CE4E5B9ULL + 31);
  auto restate = [&](const Chain& c) -> std::string {
    if (o.restated_share <= 0 || u(rrng) >= o.restated_share) return "";
    static const char* kRestate[] = {". The answer is ", ", so the answer is ", ". Answer: ", ". Result: "};
    return absl::StrCat(kRestate[rrng() % (sizeof(kRestate) / sizeof(kRestate[0]))], c.value);
  };
  // A worked solution of c and the problem as stated before it (with an instruction
  // sometimes): digits, words or mixed.
  auto render = [&](const Chain& c) -> std::pair<std::string, std::string> {
    if (!notations) return {c.text, Worked(c)};
    const size_t steps = c.ops.size();
    std::string problem = c.text;
    bool words = u(nrng) < o.words_share;
    size_t switch_at = steps;
    if (u(nrng) < o.instruction_share) {
      const bool asked_words = nrng() % 2 == 0;
      problem += NotationInstruction(asked_words ? "words" : "digits");
      words = u(nrng) < o.instruction_kept ? asked_words : !asked_words;
    }
    if (steps > 1 && u(nrng) < o.mixed_share) switch_at = 1 + nrng() % (steps - 1);
    return {problem, WorkedIn(c, words, switch_at)};
  };
  while (static_cast<int64_t>(docs.size()) < o.documents) {
    Chain c = RandomChain(tasks, rng);
    if (u(rng) < o.large_start_share) {
      // The same chain from a larger first number: running values that the tasks reach
      // only in their last steps, where the policy's sums went wrong most (41% of
      // additions to 20 or more against 7% below).
      c.operands[0] = tasks.max_operand + 1 + static_cast<int64_t>(rng() % (2 * tasks.max_operand));
      Restate(&c);
    }
    if (banned.count(c.text)) continue;
    if (u(rng) < o.facts_share) {
      // A stretch of an addition or subtraction table, "Adding 9: 24+9=33, 25+9=34,
      // ...": the facts worked solutions are made of, the large running values
      // included, which chains reach rarely. The operand repeats down the table; a
      // fact document with a fresh operand in every fact would teach that the number
      // after "21-" is anyone's guess, which is what worked solutions must copy.
      const char op = tasks.operators[rng() % tasks.operators.size()];
      const int64_t b = 1 + static_cast<int64_t>(rng() % tasks.max_operand);
      const int64_t top = tasks.max_operand * tasks.max_operands;
      const int64_t lo = op == '-' ? b : 0;
      const int64_t a0 = lo + static_cast<int64_t>(rng() % std::max<int64_t>(1, top - lo - 6));
      const bool words = notations && u(nrng) < o.words_share;
      std::string doc = absl::StrCat(op == '-' ? "Subtracting " : "Adding ", words ? NumberWords(b) : absl::StrCat(b), ":");
      for (int64_t a = a0; a < a0 + 8; ++a) {
        const int64_t r = op == '-' ? a - b : a + b;
        if (words) {
          absl::StrAppend(&doc, a == a0 ? " " : ", ", NumberWords(a), op == '-' ? " minus " : " plus ", NumberWords(b),
                          " is ", NumberWords(r));
        } else {
          absl::StrAppend(&doc, a == a0 ? " " : ", ", a, std::string(1, op), b, "=", r);
        }
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
      std::string problem = c.text;
      if (u(rng) < o.tagged_share / o.dialog_share) {
        // The tags mean "reasoning here, answer there": a tagged transcript always
        // thinks. (With empty <think> blocks in the corpus, GRPO settled on tagged
        // direct answers and accuracy fell: the format reward pays for the tags alone.)
        auto [stated, work] = render(c);
        problem = stated;
        answer = absl::StrCat("<think> ", Lead(rng), work, " </think> <answer> ", c.value, " </answer>");
      } else if (worked) {
        auto [stated, work] = render(c);
        problem = stated;
        answer = Lead(rng) + work + restate(c);
      } else {
        answer = absl::StrCat(said);
      }
      doc = absl::StrCat(u(rng) < o.preamble_share ? preamble : "", "User: ", problem, ". Assistant: ", answer);
    } else {
      auto [problem, work] = worked ? render(c) : std::pair<std::string, std::string>{c.text, ""};
      if (worked) work += restate(c);
      switch (rng() % 3) {
        case 0:
          // The problem always comes first: a bare worked solution ("5+12=17, 17+15=32")
          // teaches that the next operand is anyone's guess, and the base model then
          // guessed the last operand of 3-number chains in two of three tries.
          doc = worked ? absl::StrCat(problem, ": ", Lead(rng), work) : absl::StrCat(c.text, " = ", said);
          break;
        case 1:
          doc = worked ? absl::StrCat("Q: What is ", problem, "? A: ", Lead(rng), work)
                       : absl::StrCat("Q: What is ", c.text, "? A: ", said);
          break;
        default:
          doc = absl::StrCat("Exercise: ", problem, ". Solution: ",
                             worked ? Lead(rng) + work : c.text + " = " + std::to_string(said), ".");
      }
    }
    docs.push_back(nlohmann::json{{"text", doc}}.dump());
  }
  return docs;
}

}  // namespace grpo
