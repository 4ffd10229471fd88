#include "core/common/program_tasks.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <nlohmann/json.hpp>

namespace grpo {
namespace {

enum class Kind { kPair, kOne, kList, kLoop };

// An expression over the kind's variables: operands joined by + - *, evaluated as
// Python does (* before + and -).
struct Expr {
  std::vector<std::string> operands;  // a variable name or a constant
  std::vector<char> ops;              // ops[i] joins operands[i] and operands[i + 1]

  std::string Text() const {
    std::string s = operands[0];
    for (size_t i = 0; i < ops.size(); ++i) absl::StrAppend(&s, std::string(1, ops[i]), operands[i + 1]);
    return s;
  }
  // Value with the variables bound by `value_of` (name -> value).
  template <typename F>
  int64_t Eval(const F& value_of) const {
    auto operand = [&](const std::string& o) -> int64_t {
      if (o[0] >= '0' && o[0] <= '9') return std::stoll(o);
      return value_of(o);
    };
    int64_t sum = 0, term = operand(operands[0]);
    char pending = '+';
    for (size_t i = 0; i < ops.size(); ++i) {
      const int64_t x = operand(operands[i + 1]);
      if (ops[i] == '*') {
        term *= x;
      } else {
        sum = pending == '+' ? sum + term : sum - term;
        pending = ops[i];
        term = x;
      }
    }
    return pending == '+' ? sum + term : sum - term;
  }
};

struct Spec {
  Kind kind = Kind::kOne;
  std::string func;  // list: "sum", "maximum", "minimum", "count"
  Expr expr;
};

std::vector<std::string> VarsOf(Kind k) {
  switch (k) {
    case Kind::kPair: return {"a", "b"};
    case Kind::kOne: return {"n"};
    case Kind::kList: return {"m"};
    case Kind::kLoop: return {"i"};
  }
  return {};
}

const char* kFuncs[] = {"sum", "maximum", "minimum", "count"};

std::string PythonFunc(const std::string& func) {
  if (func == "sum") return "sum";
  if (func == "maximum") return "max";
  if (func == "minimum") return "min";
  return "len";
}

Expr RandomExpr(Kind kind, int64_t max_constant, std::mt19937_64& rng) {
  const std::vector<std::string> vars = VarsOf(kind);
  std::uniform_int_distribution<int64_t> n_operands(2, 3), constant(1, max_constant);
  static const char kOps[] = "+-*";
  for (;;) {
    Expr e;
    const int64_t n = n_operands(rng);
    for (int64_t i = 0; i < n; ++i) {
      if (i) e.ops.push_back(kOps[rng() % 3]);
      // Variables about half the time; every variable of the kind must appear.
      if (rng() % 2 == 0) {
        e.operands.push_back(vars[rng() % vars.size()]);
      } else {
        e.operands.push_back(absl::StrCat(constant(rng)));
      }
    }
    bool all = true;
    for (const std::string& v : vars) {
      bool found = false;
      for (const std::string& o : e.operands) found = found || o == v;
      all = all && found;
    }
    if (all) return e;
  }
}

std::string Prompt(const Spec& s) {
  const std::string e = s.expr.Text();
  switch (s.kind) {
    case Kind::kPair: return absl::StrCat("Read two integers a and b. Print ", e);
    case Kind::kOne: return absl::StrCat("Read an integer n. Print ", e);
    case Kind::kList: return absl::StrCat("Read a line of integers. Let m be their ", s.func, ". Print ", e);
    case Kind::kLoop: return absl::StrCat("Read an integer n. For each i from 1 to n, print ", e);
  }
  return "";
}

// The program, right or with one mistake (`mistake` "" for the right one).
std::string Program(const Spec& s, const std::string& mistake, std::mt19937_64& rng) {
  std::string e = s.expr.Text();
  if (mistake == "operator") {
    Expr slipped = s.expr;
    const size_t at = rng() % slipped.ops.size();
    const char was = slipped.ops[at];
    static const char kOps[] = "+-*";
    while (slipped.ops[at] == was) slipped.ops[at] = kOps[rng() % 3];
    e = slipped.Text();
  }
  const std::string print = mistake == "print2" ? absl::StrCat("print ", e) : absl::StrCat("print(", e, ")");
  switch (s.kind) {
    case Kind::kPair:
      if (mistake == "no_int") return absl::StrCat("a, b = input().split()\n", print, "\n");
      if (mistake == "two_inputs") return absl::StrCat("a = int(input())\nb = int(input())\n", print, "\n");
      return absl::StrCat("a, b = map(int, input().split())\n", print, "\n");
    case Kind::kOne:
      if (mistake == "no_int") return absl::StrCat("n = input()\n", print, "\n");
      return absl::StrCat("n = int(input())\n", print, "\n");
    case Kind::kList: {
      std::string read = mistake == "no_int" ? "xs = input().split()\n" : "xs = list(map(int, input().split()))\n";
      std::string func = PythonFunc(s.func);
      if (mistake == "function") {
        std::string other = func;
        while (other == func) other = PythonFunc(kFuncs[rng() % 4]);
        func = other;
      }
      return absl::StrCat(read, "m = ", func, "(xs)\n", print, "\n");
    }
    case Kind::kLoop: {
      std::string read = mistake == "no_int" ? "n = input()\n" : "n = int(input())\n";
      if (mistake == "never_steps") return absl::StrCat(read, "i = 1\nwhile i <= n:\n    ", print, "\n");
      std::string range = mistake == "range_n" ? "range(n)" : mistake == "range_short" ? "range(1, n)" : "range(1, n + 1)";
      return absl::StrCat(read, "for i in ", range, mistake == "colon" ? "" : ":", "\n    ", print, "\n");
    }
  }
  return "";
}

std::vector<std::string> MistakesOf(Kind k) {
  switch (k) {
    case Kind::kPair: return {"no_int", "two_inputs", "print2", "operator"};
    case Kind::kOne: return {"no_int", "print2", "operator"};
    case Kind::kList: return {"no_int", "function", "print2", "operator"};
    case Kind::kLoop: return {"no_int", "range_n", "range_short", "colon", "print2", "operator", "never_steps"};
  }
  return {};
}

// Hidden tests: inputs drawn for the kind, outputs computed as Python would print them.
nlohmann::json Tests(const Spec& s, int64_t n, std::mt19937_64& rng) {
  nlohmann::json tests = nlohmann::json::array();
  std::uniform_int_distribution<int64_t> small(1, 20), item(1, 30), count(2, 6), loop_n(1, 5);
  for (int64_t t = 0; t < n; ++t) {
    std::string input, output;
    switch (s.kind) {
      case Kind::kPair: {
        const int64_t a = small(rng), b = small(rng);
        input = absl::StrCat(a, " ", b, "\n");
        output = absl::StrCat(s.expr.Eval([&](const std::string& v) { return v == "a" ? a : b; }), "\n");
        break;
      }
      case Kind::kOne: {
        const int64_t x = item(rng);
        input = absl::StrCat(x, "\n");
        output = absl::StrCat(s.expr.Eval([&](const std::string&) { return x; }), "\n");
        break;
      }
      case Kind::kList: {
        std::vector<int64_t> xs(static_cast<size_t>(count(rng)));
        for (int64_t& x : xs) x = item(rng);
        int64_t m = 0;
        if (s.func == "sum") {
          for (int64_t x : xs) m += x;
        } else if (s.func == "maximum") {
          m = *std::max_element(xs.begin(), xs.end());
        } else if (s.func == "minimum") {
          m = *std::min_element(xs.begin(), xs.end());
        } else {
          m = static_cast<int64_t>(xs.size());
        }
        input = absl::StrCat(absl::StrJoin(xs, " "), "\n");
        output = absl::StrCat(s.expr.Eval([&](const std::string&) { return m; }), "\n");
        break;
      }
      case Kind::kLoop: {
        const int64_t k = loop_n(rng);
        input = absl::StrCat(k, "\n");
        for (int64_t i = 1; i <= k; ++i) {
          absl::StrAppend(&output, s.expr.Eval([&](const std::string&) { return i; }), "\n");
        }
        break;
      }
    }
    tests.push_back({{"input", input}, {"output", output}});
  }
  return tests;
}

Spec RandomSpec(const ProgramOptions& o, std::mt19937_64& rng) {
  Spec s;
  s.kind = static_cast<Kind>(rng() % 4);
  if (s.kind == Kind::kList) s.func = kFuncs[rng() % 4];
  s.expr = RandomExpr(s.kind, o.max_constant, rng);
  return s;
}

// What a short chain of thought says about the program (the tagged transcripts').
std::string Thought(const Spec& s) {
  const std::string e = s.expr.Text();
  switch (s.kind) {
    case Kind::kPair: return absl::StrCat("a and b are on one line: split it and convert both to int, then print ", e);
    case Kind::kOne: return absl::StrCat("convert the line to int, then print ", e);
    case Kind::kList:
      return absl::StrCat("split the line, convert each number to int, m is ", PythonFunc(s.func),
                          " of them, then print ", e);
    case Kind::kLoop: return absl::StrCat("convert n to int, loop i over range(1, n + 1) and print ", e);
  }
  return "";
}

// Parses a prompt made by Prompt() back into its spec.
bool ParseSpec(const std::string& prompt, Spec* s) {
  std::string rest;
  auto expr_of = [](const std::string& text, Expr* e) {
    e->operands.clear();
    e->ops.clear();
    std::string cur;
    for (char c : text) {
      if (c == '+' || c == '-' || c == '*') {
        if (cur.empty()) return false;
        e->operands.push_back(cur);
        e->ops.push_back(c);
        cur.clear();
      } else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
        cur += c;
      } else {
        return false;
      }
    }
    if (cur.empty()) return false;
    e->operands.push_back(cur);
    return true;
  };
  static const std::pair<const char*, Kind> kHeads[] = {
      {"Read two integers a and b. Print ", Kind::kPair},
      {"Read an integer n. Print ", Kind::kOne},
      {"Read an integer n. For each i from 1 to n, print ", Kind::kLoop}};
  for (const auto& [head, kind] : kHeads) {
    if (absl::StartsWith(prompt, head)) {
      s->kind = kind;
      return expr_of(prompt.substr(std::string(head).size()), &s->expr);
    }
  }
  const std::string list = "Read a line of integers. Let m be their ";
  if (!absl::StartsWith(prompt, list)) return false;
  rest = prompt.substr(list.size());
  const size_t dot = rest.find(". Print ");
  if (dot == std::string::npos) return false;
  s->kind = Kind::kList;
  s->func = rest.substr(0, dot);
  bool known = false;
  for (const char* f : kFuncs) known = known || s->func == f;
  return known && expr_of(rest.substr(dot + 8), &s->expr);
}

// Always-right notes on the Python the tasks need.
std::string Note(std::mt19937_64& rng) {
  static const char* kNotes[] = {
      "In Python 3, input() returns a string. int(input()) reads one integer from a line.",
      "To read two integers from one line: a, b = map(int, input().split())",
      "To read a line of integers as a list: xs = list(map(int, input().split()))",
      "print is a function in Python 3: print(x), not print x.",
      "range(1, n + 1) counts 1, 2, ..., n; range(n) counts 0 to n - 1.",
      "sum(xs) adds a list, max(xs) and min(xs) give its largest and smallest item, len(xs) counts it.",
      "A for statement ends with a colon: for i in range(1, n + 1):",
      "input().split() gives strings; multiplying a string repeats it, adding strings joins them.",
  };
  return kNotes[rng() % (sizeof(kNotes) / sizeof(kNotes[0]))];
}

}  // namespace

ProgramTasks GenerateProgramTasks(const ProgramOptions& o) {
  std::mt19937_64 rng(o.seed * 7919 + 26);
  ProgramTasks out;
  std::set<std::string> seen;
  auto make = [&](std::vector<Task>* into, int64_t n, const std::string& prefix) {
    int64_t tries = 0;
    while (static_cast<int64_t>(into->size()) < n && tries++ < 200 * n + 1000) {
      Spec s = RandomSpec(o, rng);
      const std::string prompt = Prompt(s);
      if (!seen.insert(prompt).second) continue;
      Task t;
      t.id = absl::StrCat(prefix, into->size());
      t.task = "code";
      t.language = "python";
      t.prompt = prompt;
      t.tests = Tests(s, o.tests_per_task, rng);
      into->push_back(std::move(t));
    }
  };
  make(&out.test, o.test_tasks, "code-test-");
  make(&out.train, o.train_tasks, "code-");
  return out;
}

std::string ReferenceProgram(const std::string& prompt) {
  Spec s;
  if (!ParseSpec(prompt, &s)) return "";
  std::mt19937_64 rng(0);
  return Program(s, "", rng);
}

std::vector<std::string> GenerateProgramCorpus(const ProgramOptions& tasks, const ProgramCorpusOptions& o,
                                               const std::vector<Task>& exclude) {
  std::set<std::string> held_out;
  for (const Task& t : exclude) held_out.insert(t.prompt);
  std::mt19937_64 rng(o.seed * 104729 + 26);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::string> docs;
  docs.reserve(static_cast<size_t>(o.documents));
  static const char* kScriptHeads[] = {"# ", "# Task: ", "# Exercise: ", "# "};
  static const char* kPageHeads[] = {"Problem: ", "Exercise: ", "Task: "};
  static const char* kPageSolutions[] = {"Solution:", "Answer:", "Code:"};
  static const char* kLeads[] = {"", "", "Here is a program.", "Easy one.", "Try this:", "This should work:"};
  while (static_cast<int64_t>(docs.size()) < o.documents) {
    if (u(rng) < o.notes_share) {
      docs.push_back(nlohmann::json({{"text", Note(rng)}}).dump());
      continue;
    }
    Spec s = RandomSpec(tasks, rng);
    const std::string prompt = Prompt(s);
    if (held_out.count(prompt)) continue;
    std::string mistake;
    if (u(rng) < o.wrong_share) {
      const std::vector<std::string> m = MistakesOf(s.kind);
      mistake = m[rng() % m.size()];
      // A loop that never steps is rare on pages: most mistakes fail quickly.
      if (mistake == "never_steps" && rng() % 4) mistake = "range_n";
    }
    const std::string program = Program(s, mistake, rng);
    std::string text;
    const double shape = u(rng);
    if (shape < o.tagged_share) {
      text = absl::StrCat("User: ", prompt, ". Assistant: <think> ", Thought(s), " </think> <answer>\n", program,
                          "</answer>");
    } else if (shape < o.tagged_share + o.dialog_share) {
      const std::string lead = kLeads[rng() % (sizeof(kLeads) / sizeof(kLeads[0]))];
      text = absl::StrCat("User: ", prompt, ". Assistant: ", lead, lead.empty() ? "" : " ", "```python\n", program,
                          "```");
    } else if (rng() % 2 == 0) {
      text = absl::StrCat(kScriptHeads[rng() % 4], prompt, "\n", program);
    } else {
      text = absl::StrCat(kPageHeads[rng() % 3], prompt, ".\n", kPageSolutions[rng() % 3], "\n```python\n", program,
                          "```");
    }
    docs.push_back(nlohmann::json({{"text", text}}).dump());
  }
  return docs;
}

}  // namespace grpo
