// MathChecker: structure of an answer, then leaf by leaf comparison.
//
// An answer's plain text (latex.h) is read into a Node tree:
//   kList   a, b; c  (also "a and b")   order-free against lists and sets, ordered
//                                        against a parenthesised tuple: 1,3 == (1,3);
//                                        "a, b; c, d" is a list of two lists
//   kSet    {a, b}                       order-free
//   kSeq    (a, b) [a, b) (a, b]         ordered; both brackets must match. A tuple and
//                                        an open interval are the same thing here.
//   kUnion  A U B                        order-free
//   kRel    a = b = c, a < b <= c ...    chains of relations
//   kLeaf   an expression or a word
// Equations whose left side is a name (x = 3, f(x) = 3, (p,q) = (3,2), |AB| = 1) are
// assignments: against a bare value only the value counts; against another assignment
// the names must agree too. lo < x < hi is the interval (lo, hi). A +- b is the set
// {a + b, a - b}. Trailing unit words (5 cm, 125 miles, 28 percent) are dropped.
//
// Leaves: equal canonical text, else numbers (integers exactly, decimals with rel_tol,
// other exact values to 1e-12), else GiNaC in a worker (worker_pool.h). Relations
// compare as rearranged differences: a < b equals c < d when (b - a)/(d - c) is a
// positive constant; equations when the ratio is any non-zero constant.
#include "core/math/math_checker.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "core/math/expr.h"
#include "core/math/latex.h"
#include "core/math/worker_pool.h"

namespace grpo::math {
namespace {

constexpr int kMaxDepth = 32;
constexpr size_t kMaxItems = 64;
constexpr double kExactTol = 1e-12;

struct Node {
  enum class Kind { kLeaf, kList, kSet, kSeq, kUnion, kRel };
  Kind kind = Kind::kLeaf;
  std::string text;               // kLeaf: plain text
  char open = 0, close = 0;       // kSeq brackets
  std::vector<Node> items;
  std::vector<std::string> ops;   // kRel: ops[i] between items[i] and items[i + 1]
  bool plus_minus = false;        // a kSet made from a +- b
};

// The node as text without spaces (to find repeated items).
std::string Key(const Node& n) {
  std::string k;
  if (n.kind == Node::Kind::kLeaf) {
    for (char c : n.text) {
      if (c != ' ') k += c;
    }
    return k;
  }
  k = std::to_string(static_cast<int>(n.kind)) + n.open + n.close + "[";
  for (size_t i = 0; i < n.items.size(); ++i) {
    absl::StrAppend(&k, Key(n.items[i]), i < n.ops.size() ? n.ops[i] : ",");
  }
  return k + "]";
}

bool IsOpen(char c) { return c == '(' || c == '[' || c == '{'; }
bool IsClose(char c) { return c == ')' || c == ']' || c == '}'; }

// Splits `s` at top-level occurrences of any char in `seps`.
std::vector<std::string> SplitTop(const std::string& s, absl::string_view seps) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsOpen(s[i])) ++depth;
    if (IsClose(s[i])) --depth;
    if (depth == 0 && seps.find(s[i]) != absl::string_view::npos) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

// Index of the bracket closing the one at 0 (any kind, intervals mix them), or npos.
size_t MatchOpen(const std::string& s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsOpen(s[i])) ++depth;
    if (IsClose(s[i]) && --depth == 0) return i;
  }
  return std::string::npos;
}

std::string Trim(absl::string_view s) {
  s = absl::StripAsciiWhitespace(s);
  while (!s.empty() && (s.back() == '.' || s.back() == ',')) s = absl::StripAsciiWhitespace(s.substr(0, s.size() - 1));
  return std::string(s);
}

bool IsUnitWord(absl::string_view w) {
  if (w.size() < 2) return false;
  for (char c : w) {
    if (!std::isalpha(static_cast<unsigned char>(c))) return false;
  }
  static const char* const kKeep[] = {"pi", "oo", "sqrt", "sin", "cos", "tan", "log", "ln", "exp", "abs"};
  for (const char* k : kKeep) {
    if (w == k) return false;
  }
  return true;
}

// "125 miles" -> "125", "28 percent" -> "28", "9 mod (11)" -> "9"; words alone stay.
std::string StripUnits(std::string s) {
  if (auto m = s.find(" mod "); m != std::string::npos) s = Trim(s.substr(0, m));
  for (;;) {
    size_t sp = s.rfind(' ');
    if (sp == std::string::npos) break;
    absl::string_view last = absl::string_view(s).substr(sp + 1);
    std::string head = Trim(s.substr(0, sp));
    bool head_has_digit = head.find_first_of("0123456789") != std::string::npos;
    if (!IsUnitWord(last) || !head_has_digit) break;
    s = head;
  }
  return s;
}

// Relation operators at the top level, longest first.
bool ReadRelOp(const std::string& s, size_t i, std::string& op) {
  for (const char* cand : {"<=", ">=", "!=", "=", "<", ">", "?"}) {
    size_t n = std::strlen(cand);
    if (s.compare(i, n, cand) == 0) {
      op = cand;
      return true;
    }
  }
  return false;
}

absl::StatusOr<Node> ParseNode(const std::string& raw, int depth);

absl::StatusOr<Node> ParseItems(Node::Kind kind, const std::vector<std::string>& parts, int depth) {
  Node n;
  n.kind = kind;
  for (const std::string& p : parts) {
    if (Trim(p).empty()) continue;
    auto item = ParseNode(p, depth + 1);
    if (!item.ok()) return item.status();
    if (kind != Node::Kind::kSeq && item->kind == Node::Kind::kSet && item->plus_minus) {
      // {1 +- sqrt(5), -2} is the set of three numbers.
      for (Node& x : item->items) n.items.push_back(std::move(x));
    } else {
      n.items.push_back(std::move(*item));
    }
  }
  if (kind == Node::Kind::kSet || kind == Node::Kind::kList) {
    // Repeated items (same text) count once: {1, 1, 2} == {1, 2}.
    std::vector<Node> unique;
    for (Node& x : n.items) {
      bool seen = false;
      for (const Node& u : unique) seen = seen || Key(u) == Key(x);
      if (!seen) unique.push_back(std::move(x));
    }
    n.items = std::move(unique);
  }
  if (n.items.size() > kMaxItems) return absl::InvalidArgumentError("too many items");
  return n;
}

// a & b (plus-or-minus) -> {a + b, a - b}; several & take the same sign.
Node ExpandPlusMinus(const std::string& s) {
  Node set;
  set.kind = Node::Kind::kSet;
  set.plus_minus = true;
  for (char sign : {'+', '-'}) {
    Node leaf;
    leaf.text = absl::StrReplaceAll(s, {{"&", std::string(1, sign)}});
    set.items.push_back(std::move(leaf));
  }
  return set;
}

absl::StatusOr<Node> ParseNode(const std::string& raw, int depth) {
  if (depth > kMaxDepth) return absl::InvalidArgumentError("nested too deeply");
  std::string s = Trim(raw);
  // "p=5, q=2; p=7, q=2": with both at the top level, ';' separates groups and ','
  // the items of a group (two solutions, each a pair).
  if (auto groups = SplitTop(s, ";"); groups.size() > 1 && SplitTop(s, ",").size() > 1) {
    auto list = ParseItems(Node::Kind::kList, groups, depth);
    if (list.ok() && list->items.size() == 1) return std::move(list->items[0]);
    return list;
  }
  if (auto parts = SplitTop(s, ",;"); parts.size() > 1) {
    auto list = ParseItems(Node::Kind::kList, parts, depth);
    if (list.ok() && list->items.size() == 1) return std::move(list->items[0]);
    return list;
  }
  // x = 1/3 \approx 0.33: the approximation after an exact value is dropped; otherwise
  // \approx is '=' (x \approx 11 is x = 11).
  if (auto parts = SplitTop(s, "#"); parts.size() > 1) {
    if (parts[0].find('=') != std::string::npos) {
      s = Trim(parts[0]);
    } else {
      s = absl::StrReplaceAll(s, {{"#", "="}});
    }
  }
  if (auto parts = SplitTop(s, "@"); parts.size() > 1) {
    return ParseItems(Node::Kind::kUnion, parts, depth);
  }
  // Relations.
  {
    Node rel;
    rel.kind = Node::Kind::kRel;
    int d = 0;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (IsOpen(s[i])) ++d;
      if (IsClose(s[i])) --d;
      std::string op;
      if (d == 0 && ReadRelOp(s, i, op)) {
        auto item = ParseNode(s.substr(start, i - start), depth + 1);
        if (!item.ok()) return item.status();
        rel.items.push_back(std::move(*item));
        rel.ops.push_back(op);
        i += op.size() - 1;
        start = i + 1;
      }
    }
    if (!rel.ops.empty()) {
      auto item = ParseNode(s.substr(start), depth + 1);
      if (!item.ok()) return item.status();
      rel.items.push_back(std::move(*item));
      if (rel.items.size() > kMaxItems) return absl::InvalidArgumentError("too many items");
      return rel;
    }
  }
  if (!s.empty() && IsOpen(s[0]) && MatchOpen(s) == s.size() - 1) {
    std::string inner = s.substr(1, s.size() - 2);
    // \left[ \begin{array}...\end{array} \right]: brackets around a matrix.
    if (s[0] == '[' && s.back() == ']' && absl::StartsWith(inner, "((") &&
        MatchOpen(inner) == inner.size() - 1) {
      return ParseNode(inner, depth + 1);
    }
    // Redundant parentheses around a bracketed whole: ((1, 2)) is (1, 2), and
    // (\begin{pmatrix}...\end{pmatrix}) the matrix.
    if (s[0] == '(' && s.back() == ')' && !inner.empty() && IsOpen(inner[0]) &&
        MatchOpen(inner) == inner.size() - 1) {
      return ParseNode(inner, depth + 1);
    }
    if (s[0] == '{' && s.back() == '}') return ParseItems(Node::Kind::kSet, SplitTop(inner, ",;"), depth);
    auto parts = SplitTop(inner, ",;");
    if (parts.size() > 1 && s.back() != '}') {
      auto seq = ParseItems(Node::Kind::kSeq, parts, depth);
      if (!seq.ok()) return seq;
      seq->open = s[0];
      seq->close = s.back();
      return seq;
    }
    if (s[0] == '(' && s.back() == ')' && inner.find_first_of("=<>?@") != std::string::npos) {
      return ParseNode(inner, depth + 1);
    }
  }
  s = StripUnits(s);
  if (s.find('&') != std::string::npos) return ExpandPlusMinus(s);
  Node leaf;
  leaf.text = s;
  return leaf;
}

// A name on the left of '=': no digits outside subscripts, no + or -.
bool IsName(const Node& n) {
  std::string text;
  if (n.kind == Node::Kind::kLeaf) {
    text = n.text;
  } else if (n.kind == Node::Kind::kSeq) {
    for (const Node& item : n.items) {
      if (!IsName(item)) return false;
    }
    return true;
  } else {
    return false;
  }
  if (text.empty()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '_') {  // skip the subscript
      while (i + 1 < text.size() && std::isalnum(static_cast<unsigned char>(text[i + 1]))) ++i;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-') return false;
  }
  return true;
}

std::string NameKey(const Node& n) {
  if (n.kind == Node::Kind::kLeaf) {
    std::string k;
    for (char c : n.text) {
      if (c != ' ') k += c;
    }
    return k;
  }
  std::string k = "(";
  for (const Node& item : n.items) absl::StrAppend(&k, NameKey(item), ",");
  return k + ")";
}

// For an assignment (name = ... = value, or name ? set): the index of the name.
int AssignmentName(const Node& n) {
  if (n.kind != Node::Kind::kRel) return -1;
  const std::string& last = n.ops.back();
  if (last != "=" && last != "?") return -1;
  for (const std::string& op : n.ops) {
    if (op != last) return -1;
  }
  // x = 5 + 5 + 1 = 11: the value is the last item; the name is the last name before it
  // (1 = k = x = 0 names x).
  for (int i = static_cast<int>(n.items.size()) - 2; i >= 0; --i) {
    if (IsName(n.items[i])) return i;
  }
  return -1;
}

// Rewrites lo < x < hi (x a name) into the interval (lo, hi), and a > b into b < a.
void Normalize(Node& n) {
  for (Node& item : n.items) Normalize(item);
  if (n.kind != Node::Kind::kRel) return;
  bool greater = !n.ops.empty();
  for (const std::string& op : n.ops) greater = greater && (op == ">" || op == ">=");
  if (greater) {
    std::reverse(n.items.begin(), n.items.end());
    std::reverse(n.ops.begin(), n.ops.end());
    for (std::string& op : n.ops) op = op == ">" ? "<" : "<=";
  }
  if (n.items.size() == 3 && IsName(n.items[1]) && (n.ops[0] == "<" || n.ops[0] == "<=") &&
      (n.ops[1] == "<" || n.ops[1] == "<=")) {
    Node seq;
    seq.kind = Node::Kind::kSeq;
    seq.open = n.ops[0] == "<" ? '(' : '[';
    seq.close = n.ops[1] == "<" ? ')' : ']';
    seq.items.push_back(std::move(n.items[0]));
    seq.items.push_back(std::move(n.items[2]));
    n = std::move(seq);
  }
}

class Comparison {
 public:
  Comparison(const CheckOptions& options, WorkerPool* pool, absl::Time deadline)
      : options_(options), pool_(pool), deadline_(deadline) {}

  bool Equal(const Node& a, const Node& b) {
    if (Expired()) return false;
    // Assignments.
    int na = AssignmentName(a), nb = AssignmentName(b);
    if (na >= 0 && nb >= 0) {
      return NameKey(a.items[na]) == NameKey(b.items[nb]) && Equal(a.items.back(), b.items.back());
    }
    // y = 2x + 1 against 2x - y + 1 = 0: both are equations.
    auto equation = [](const Node& n) {
      return n.kind == Node::Kind::kRel && n.items.size() == 2 && n.ops[0] == "=";
    };
    if (na >= 0 && equation(a) && equation(b) && a.items.back().kind == Node::Kind::kLeaf) {
      return RelationsEqual(a, b);
    }
    if (nb >= 0 && equation(a) && equation(b) && b.items.back().kind == Node::Kind::kLeaf) {
      return RelationsEqual(a, b);
    }
    if (na >= 0) return Equal(a.items.back(), b);
    if (nb >= 0) return Equal(a, b.items.back());
    using K = Node::Kind;
    if (a.kind == K::kRel || b.kind == K::kRel) {
      if (a.kind != b.kind) return false;
      SetMethod("relation");
      return RelationsEqual(a, b);
    }
    if (a.kind == K::kLeaf && b.kind == K::kLeaf) return LeavesEqual(a.text, b.text);
    if (a.kind == K::kSeq && b.kind == K::kSeq) {
      SetMethod(a.open == '(' && a.close == ')' ? "tuple" : "interval");
      return a.open == b.open && a.close == b.close && Ordered(a.items, b.items);
    }
    // A bare list against a tuple: 1, 3 == (1, 3).
    if ((a.kind == K::kList && b.kind == K::kSeq && b.open == '(' && b.close == ')') ||
        (b.kind == K::kList && a.kind == K::kSeq && a.open == '(' && a.close == ')')) {
      SetMethod("tuple");
      return Ordered(a.items, b.items);
    }
    bool a_set = a.kind == K::kList || a.kind == K::kSet;
    bool b_set = b.kind == K::kList || b.kind == K::kSet;
    if ((a_set && b_set) || (a.kind == K::kUnion && b.kind == K::kUnion)) {
      SetMethod(a.kind == K::kUnion ? "interval" : "set");
      return Unordered(a.items, b.items);
    }
    return false;
  }

  bool expired() const { return expired_; }
  const std::string& error() const { return error_; }
  const std::string& method() const { return method_; }

 private:
  bool Expired() {
    if (!expired_ && absl::Now() >= deadline_) {
      expired_ = true;
      error_ = "timeout";
    }
    return expired_;
  }

  bool Ordered(const std::vector<Node>& a, const std::vector<Node>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!Equal(a[i], b[i])) return false;
    }
    return true;
  }

  bool Unordered(const std::vector<Node>& a, const std::vector<Node>& b) {
    if (a.size() != b.size()) return false;
    std::vector<bool> used(b.size(), false);
    for (const Node& x : a) {
      bool found = false;
      for (size_t j = 0; j < b.size() && !found; ++j) {
        if (!used[j] && Equal(x, b[j])) used[j] = found = true;
      }
      if (!found) return false;
    }
    return true;
  }

  bool RelationsEqual(const Node& a, const Node& b) {
    if (a.ops != b.ops) return false;
    if (a.items.size() != 2) return Ordered(a.items, b.items);
    for (const Node* n : {&a, &b}) {
      if (n->items[0].kind != Node::Kind::kLeaf || n->items[1].kind != Node::Kind::kLeaf) {
        return Ordered(a.items, b.items);
      }
    }
    // Same sides first (cheap), then the rearranged difference.
    if (Ordered(a.items, b.items)) return true;
    if (a.ops[0] == "=" || a.ops[0] == "!=") {
      Node b_swapped = b;
      std::swap(b_swapped.items[0], b_swapped.items[1]);
      if (Ordered(a.items, b_swapped.items)) return true;
    }
    auto ea = Difference(a), eb = Difference(b);
    if (ea.empty() || eb.empty()) return false;
    bool positive = a.ops[0] == "<" || a.ops[0] == "<=";
    SetMethod("relation");
    return Symbolic(positive ? "REL" : "EQN", ea, eb);
  }

  // "(rhs)-(lhs)" in GiNaC syntax, or "" when a side does not parse.
  std::string Difference(const Node& rel) {
    auto l = ParseExpr(rel.items[0].text);
    auto r = ParseExpr(rel.items[1].text);
    if (!l.ok() || !r.ok()) return "";
    if (HasHugeSymbolicPower(**l, 1000) || HasHugeSymbolicPower(**r, 1000)) {
      error_ = "exponent too large";
      return "";
    }
    return absl::StrCat("(", Print(**r), ")-(", Print(**l), ")");
  }

  static std::string Squash(absl::string_view s, bool fold_case = false) {
    std::string out;
    for (char c : s) {
      if (c == ' ') continue;
      out += fold_case ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c;
    }
    return out;
  }
  static std::string Unwrap(const std::string& s) {
    if (s.size() >= 2 && s.front() == '(' && MatchOpen(s) == s.size() - 1) {
      return s.substr(1, s.size() - 2);
    }
    return s;
  }

  bool LeavesEqual(const std::string& a, const std::string& b) {
    if (Squash(a) == Squash(b)) {
      SetMethod("string");
      return true;
    }
    auto ea = ParseExpr(a);
    auto eb = ParseExpr(b);
    if (!ea.ok() || !eb.ok()) {
      for (const auto* e : {&ea, &eb}) {
        if (!e->ok() && absl::StrContains(e->status().message(), "deeply")) {
          error_ = "parse error: nested too deeply";
          return false;
        }
      }
      // Other text (what the expression parser cannot read): case, spaces and one pair of
      // wrapping parentheses do not count.
      SetMethod("text");
      return !a.empty() && Unwrap(Squash(a, true)) == Unwrap(Squash(b, true));
    }
    std::string pa = Print(**ea), pb = Print(**eb);
    if (pa == pb) {
      SetMethod("string");
      return true;
    }
    Value va = Evaluate(**ea), vb = Evaluate(**eb);
    using K = Value::Kind;
    if (va.kind == K::kOverflow || vb.kind == K::kOverflow) {
      error_ = "number too large";
      return false;
    }
    if (va.kind == K::kInfinite || vb.kind == K::kInfinite) {
      SetMethod("number");
      return va.kind == vb.kind && va.number == vb.number;
    }
    if (va.kind == K::kNumber && vb.kind == K::kNumber) {
      SetMethod("number");
      std::string ia = IntegerLiteral(**ea), ib = IntegerLiteral(**eb);
      if (!ia.empty() && !ib.empty()) return ia == ib;
      bool inexact = IsInexact(**ea) || IsInexact(**eb);
      double tol = inexact ? options_.rel_tol : kExactTol;
      double scale = std::max(std::fabs(va.number), std::fabs(vb.number));
      bool close = std::fabs(va.number - vb.number) <= tol * scale;
      // Exact values beyond what a double holds (1e20 vs 10^20 + 1): GiNaC decides.
      if (close && !inexact && scale > 1e12 && options_.symbolic) {
        SetMethod("symbolic");
        return Symbolic("EQ", pa, pb);
      }
      return close;
    }
    if ((va.kind == K::kNumber) != (vb.kind == K::kNumber) &&
        (va.kind == K::kSymbolic || vb.kind == K::kSymbolic)) {
      SetMethod("number");
      return false;  // a constant against an expression with variables
    }
    if (HasHugeSymbolicPower(**ea, 1000) || HasHugeSymbolicPower(**eb, 1000)) {
      error_ = "exponent too large";
      return false;
    }
    SetMethod("symbolic");
    return Symbolic("EQ", pa, pb);
  }

  bool Symbolic(const char* op, const std::string& a, const std::string& b) {
    if (!options_.symbolic || pool_ == nullptr) return false;
    if (Expired()) return false;
    auto reply = pool_->Run(absl::StrCat(op, "\t", a, "\t", b), deadline_);
    if (!reply.ok()) {
      if (absl::IsDeadlineExceeded(reply.status())) {
        expired_ = true;
        error_ = "timeout";
      } else {
        error_ = absl::StrCat("worker: ", reply.status().message());
      }
      return false;
    }
    if (*reply == "1") return true;
    if (*reply == "0") return false;
    if (absl::StartsWith(*reply, "E\t")) {
      error_ = absl::StrCat("symbolic: ", reply->substr(2));
    } else {
      error_ = "worker: bad reply";
    }
    return false;
  }

  // The first (outermost) decision names the method.
  void SetMethod(const char* m) {
    if (method_.empty()) method_ = m;
  }

  const CheckOptions& options_;
  WorkerPool* pool_;
  absl::Time deadline_;
  bool expired_ = false;
  std::string error_;
  std::string method_;
};

}  // namespace

MathChecker::MathChecker(CheckOptions options) : options_(std::move(options)) {
  if (options_.symbolic) {
    pool_ = std::make_unique<WorkerPool>(FindWorkerPath(options_.worker_path),
                                         options_.max_workers, options_.worker_memory_bytes);
  }
}

MathChecker::~MathChecker() = default;

CheckResult MathChecker::Check(std::string_view predicted, std::string_view gold) const {
  try {
    return CheckImpl(predicted, gold);
  } catch (const std::exception& e) {  // std::bad_alloc: a check must not take the caller down
    CheckResult result;
    result.error = absl::StrCat("internal error: ", e.what());
    return result;
  }
}

CheckResult MathChecker::CheckImpl(std::string_view predicted, std::string_view gold) const {
  CheckResult result;
  absl::Time deadline = absl::Now() + options_.budget;
  if (predicted.size() > options_.max_answer_bytes || gold.size() > options_.max_answer_bytes) {
    result.error = "too long";
    return result;
  }
  if (absl::StripAsciiWhitespace(absl::string_view(predicted.data(), predicted.size())).empty()) {
    result.error = "empty answer";
    return result;
  }
  auto plain_pred = LatexToPlain(absl::string_view(predicted.data(), predicted.size()));
  auto plain_gold = LatexToPlain(absl::string_view(gold.data(), gold.size()));
  if (!plain_gold.ok()) {
    result.error = absl::StrCat("parse error in gold: ", plain_gold.status().message());
    return result;
  }
  if (!plain_pred.ok()) {
    result.error = absl::StrCat("parse error: ", plain_pred.status().message());
    return result;
  }
  auto pred = ParseNode(*plain_pred, 0);
  auto ref = ParseNode(*plain_gold, 0);
  if (!ref.ok()) {
    result.error = absl::StrCat("parse error in gold: ", ref.status().message());
    return result;
  }
  if (!pred.ok()) {
    result.error = absl::StrCat("parse error: ", pred.status().message());
    return result;
  }
  Normalize(*pred);
  Normalize(*ref);
  Comparison cmp(options_, pool_.get(), deadline);
  result.correct = cmp.Equal(*pred, *ref);
  result.method = cmp.method();
  if (cmp.expired()) {
    result.correct = false;
    result.error = "timeout";
  } else if (!result.correct) {
    result.error = cmp.error();
  }
  return result;
}

}  // namespace grpo::math
