// See expr.h.
#include "core/math/expr.h"

#include <cctype>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"

namespace grpo::math {
namespace {

constexpr int kMaxDepth = 200;

bool IsLetter(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

const std::set<std::string>& Functions() {
  static const auto* const kSet =
      new std::set<std::string>{"sqrt", "sin", "cos", "tan", "sec", "csc", "cot", "log", "ln", "exp", "abs"};
  return *kSet;
}

const std::set<std::string>& Words() {
  static const auto* const kSet = new std::set<std::string>{
      "pi",    "oo",    "alpha", "beta",  "gamma", "delta",   "epsilon", "varepsilon",
      "zeta",  "eta",   "theta", "vartheta", "iota", "kappa", "lambda", "mu",
      "nu",    "xi",    "rho",   "sigma", "tau",   "upsilon", "phi",     "varphi",
      "chi",   "psi",   "omega", "Gamma", "Delta", "Theta",   "Lambda",  "Xi",
      "Pi",    "Sigma", "Phi",   "Psi",   "Omega"};
  return *kSet;
}

struct Token {
  enum class Kind { kNumber, kName, kFunction, kOp, kEnd } kind;
  std::string text;
};

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ') {
      ++i;
      continue;
    }
    if (IsDigit(c) || (c == '.' && i + 1 < s.size() && IsDigit(s[i + 1]))) {
      size_t j = i;
      while (j < s.size() && IsDigit(s[j])) ++j;
      if (j < s.size() && s[j] == '.') {
        ++j;
        while (j < s.size() && IsDigit(s[j])) ++j;
      }
      // 1e3, 1.5e-3 (an exponent needs a digit after it; "2e" is 2*e).
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && IsDigit(s[k])) {
          while (k < s.size() && IsDigit(s[k])) ++k;
          j = k;
        }
      }
      if (j < s.size() && s[j] == '_') {  // 1112_3: a number in another base, a name
        size_t k = j + 1;
        while (k < s.size() && (IsDigit(s[k]) || IsLetter(s[k]))) ++k;
        out.push_back({Token::Kind::kName, absl::StrCat("n", s.substr(i, k - i))});
        i = k;
        continue;
      }
      out.push_back({Token::Kind::kNumber, std::string(s.substr(i, j - i))});
      i = j;
      continue;
    }
    if (IsLetter(c)) {
      size_t j = i;
      while (j < s.size() && IsLetter(s[j])) ++j;
      std::string word(s.substr(i, j - i));
      std::string sub;
      if (j < s.size() && s[j] == '_') {
        size_t k = j + 1;
        while (k < s.size() && (IsDigit(s[k]) || IsLetter(s[k]))) ++k;
        sub = std::string(s.substr(j, k - j));
        j = k;
      }
      while (j < s.size() && s[j] == '\'') {
        sub += "_p";
        ++j;
      }
      i = j;
      if (Functions().count(word) != 0 && sub.empty()) {
        out.push_back({Token::Kind::kFunction, word});
      } else if (Words().count(word) != 0 || word.size() >= 4) {
        // Known names, and words: "Evelyn" is not the product E*v*e*l*y*n (which would
        // equal "Evenly"). Up to three letters are a product: ab = ba.
        out.push_back({Token::Kind::kName, word + sub});
      } else {
        for (size_t k = 0; k < word.size(); ++k) {
          std::string name(1, word[k]);
          if (k + 1 == word.size()) name += sub;
          out.push_back({Token::Kind::kName, name});
        }
      }
      continue;
    }
    if (absl::string_view("+-*/^()[]!|").find(c) != absl::string_view::npos) {
      out.push_back({Token::Kind::kOp, std::string(1, c)});
      ++i;
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat("unexpected '", std::string(1, c), "'"));
  }
  out.push_back({Token::Kind::kEnd, ""});
  return out;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<Expr>> Parse() {
    auto e = Sum(0);
    if (!e.ok()) return e;
    if (t_[i_].kind != Token::Kind::kEnd) return Error("unexpected '" + t_[i_].text + "'");
    return e;
  }

 private:
  using Result = absl::StatusOr<std::unique_ptr<Expr>>;
  static absl::Status Error(const std::string& m) { return absl::InvalidArgumentError(m); }
  bool IsOp(const char* op) const {
    return t_[i_].kind == Token::Kind::kOp && t_[i_].text == op;
  }
  static std::unique_ptr<Expr> Make(Expr::Kind k, std::unique_ptr<Expr> a,
                                    std::unique_ptr<Expr> b = nullptr) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->args.push_back(std::move(a));
    if (b) e->args.push_back(std::move(b));
    return e;
  }

  Result Sum(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    auto left = Product(depth + 1);
    if (!left.ok()) return left;
    std::unique_ptr<Expr> e = std::move(*left);
    while (IsOp("+") || IsOp("-")) {
      bool add = IsOp("+");
      ++i_;
      auto right = Product(depth + 1);
      if (!right.ok()) return right;
      e = Make(add ? Expr::Kind::kAdd : Expr::Kind::kSub, std::move(e), std::move(*right));
    }
    return e;
  }

  bool StartsPrimary() const {
    const Token& t = t_[i_];
    if (t.kind == Token::Kind::kNumber || t.kind == Token::Kind::kName ||
        t.kind == Token::Kind::kFunction) {
      return true;
    }
    return t.kind == Token::Kind::kOp && (t.text == "(" || t.text == "[");
  }

  Result Product(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    auto left = Unary(depth + 1);
    if (!left.ok()) return left;
    std::unique_ptr<Expr> e = std::move(*left);
    for (;;) {
      Expr::Kind kind;
      if (IsOp("*")) {
        kind = Expr::Kind::kMul;
        ++i_;
      } else if (IsOp("/")) {
        kind = Expr::Kind::kDiv;
        ++i_;
      } else if (StartsPrimary()) {
        kind = Expr::Kind::kMul;  // implicit: 2x, 3sqrt(2), (a)(b)
      } else {
        break;
      }
      auto right = Unary(depth + 1);
      if (!right.ok()) return right;
      e = Make(kind, std::move(e), std::move(*right));
    }
    return e;
  }

  Result Unary(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    if (IsOp("-") || IsOp("+")) {
      bool neg = IsOp("-");
      ++i_;
      auto inner = Unary(depth + 1);
      if (!inner.ok() || !neg) return inner;
      return Make(Expr::Kind::kNeg, std::move(*inner));
    }
    return Power(depth + 1);
  }

  Result Power(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    auto base = Postfix(depth + 1);
    if (!base.ok()) return base;
    if (!IsOp("^")) return base;
    ++i_;
    auto exponent = Unary(depth + 1);  // right-associative, 2^-1 allowed
    if (!exponent.ok()) return exponent;
    return Make(Expr::Kind::kPow, std::move(*base), std::move(*exponent));
  }

  Result Postfix(int depth) {
    auto e = Primary(depth + 1);
    if (!e.ok()) return e;
    while (IsOp("!")) {
      ++i_;
      *e = Make(Expr::Kind::kFactorial, std::move(*e));
    }
    return e;
  }

  Result Primary(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    const Token t = t_[i_];
    if (t.kind == Token::Kind::kNumber || t.kind == Token::Kind::kName) {
      ++i_;
      auto e = std::make_unique<Expr>();
      e->kind = t.kind == Token::Kind::kNumber ? Expr::Kind::kNumber : Expr::Kind::kSymbol;
      e->text = t.text;
      return e;
    }
    if (t.kind == Token::Kind::kFunction) {
      ++i_;
      // sin^2(x) is sin(x)^2. Only a positive integer power: sin^{-1} is arcsin.
      std::unique_ptr<Expr> power;
      if (IsOp("^")) {
        ++i_;
        auto p = Primary(depth + 1);
        if (!p.ok()) return p;
        if ((*p)->kind != Expr::Kind::kNumber || (*p)->text.find_first_not_of("0123456789") != std::string::npos) {
          return Error("unsupported power of a function");
        }
        power = std::move(*p);
      }
      auto arg = IsOp("(") ? Primary(depth + 1) : Power(depth + 1);
      if (!arg.ok()) return arg;
      auto e = Make(Expr::Kind::kFunction, std::move(*arg));
      e->text = t.text == "ln" ? "log" : t.text;
      if (power) return Make(Expr::Kind::kPow, std::move(e), std::move(power));
      return e;
    }
    if (IsOp("(") || IsOp("[")) {
      const char* close = IsOp("(") ? ")" : "]";
      ++i_;
      auto e = Sum(depth + 1);
      if (!e.ok()) return e;
      if (!IsOp(close)) return Error(absl::StrCat("missing '", close, "'"));
      ++i_;
      return e;
    }
    if (IsOp("|") && !in_abs_) {
      ++i_;
      in_abs_ = true;
      auto e = Sum(depth + 1);
      in_abs_ = false;
      if (!e.ok()) return e;
      if (!IsOp("|")) return Error("missing '|'");
      ++i_;
      auto f = Make(Expr::Kind::kFunction, std::move(*e));
      f->text = "abs";
      return f;
    }
    return Error(t.kind == Token::Kind::kEnd ? "unexpected end" : "unexpected '" + t.text + "'");
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  bool in_abs_ = false;
};

// "12.50e-3" -> numerator digits and a power of ten: "1250", -5.
void Decimal(const std::string& lit, std::string& digits, long& exp10) {
  digits.clear();
  exp10 = 0;
  size_t i = 0;
  bool after_point = false;
  for (; i < lit.size() && lit[i] != 'e' && lit[i] != 'E'; ++i) {
    if (lit[i] == '.') {
      after_point = true;
      continue;
    }
    digits += lit[i];
    if (after_point) --exp10;
  }
  if (i < lit.size()) exp10 += std::strtol(lit.c_str() + i + 1, nullptr, 10);
  size_t nz = digits.find_first_not_of('0');
  digits = nz == std::string::npos ? "0" : digits.substr(nz);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Expr>> ParseExpr(absl::string_view plain) {
  auto tokens = Tokenize(plain);
  if (!tokens.ok()) return tokens.status();
  return Parser(std::move(*tokens)).Parse();
}

Value Evaluate(const Expr& e) {
  using K = Value::Kind;
  auto number = [](double v) {
    Value r;
    if (std::isnan(v)) {
      r.kind = K::kUndefined;
    } else if (std::isinf(v)) {
      r.kind = K::kOverflow;
    } else {
      r.number = v;
    }
    return r;
  };
  switch (e.kind) {
    case Expr::Kind::kNumber:
      return number(std::strtod(e.text.c_str(), nullptr));
    case Expr::Kind::kSymbol:
      if (e.text == "pi") return number(M_PI);
      if (e.text == "oo") return Value{K::kInfinite, INFINITY};
      return Value{K::kSymbolic, 0};
    default:
      break;
  }
  std::vector<Value> v;
  for (const auto& a : e.args) v.push_back(Evaluate(*a));
  // Worst kind first: overflow, symbolic, undefined, infinite.
  for (K k : {K::kOverflow, K::kSymbolic, K::kUndefined}) {
    for (const Value& x : v) {
      if (x.kind == k) return Value{k, 0};
    }
  }
  for (const Value& x : v) {
    if (x.kind == K::kInfinite) {
      // Only -oo and +oo are kept; anything else with infinity is left undecided.
      if (e.kind == Expr::Kind::kNeg) return Value{K::kInfinite, -x.number};
      return Value{K::kUndefined, 0};
    }
  }
  double a = v[0].number;
  double b = v.size() > 1 ? v[1].number : 0;
  switch (e.kind) {
    case Expr::Kind::kAdd: return number(a + b);
    case Expr::Kind::kSub: return number(a - b);
    case Expr::Kind::kMul: return number(a * b);
    case Expr::Kind::kDiv: return b == 0 ? Value{K::kUndefined, 0} : number(a / b);
    case Expr::Kind::kNeg: return number(-a);
    case Expr::Kind::kPow: {
      if (a < 0 && b != std::floor(b)) {
        // Odd roots of negative numbers: (-8)^(1/3) = -2.
        double inv = 1 / b;
        if (std::fabs(inv - std::round(inv)) < 1e-9 && std::fmod(std::round(inv), 2) != 0) {
          return number(-std::pow(-a, b));
        }
        return Value{K::kUndefined, 0};
      }
      return number(std::pow(a, b));
    }
    case Expr::Kind::kFactorial:
      if (a < 0 || a != std::floor(a)) return Value{K::kUndefined, 0};
      if (a > 170) return Value{K::kOverflow, 0};
      return number(std::tgamma(a + 1));
    case Expr::Kind::kFunction: {
      const std::string& f = e.text;
      if (f == "sqrt") return a < 0 ? Value{K::kUndefined, 0} : number(std::sqrt(a));
      if (f == "sin") return number(std::sin(a));
      if (f == "cos") return number(std::cos(a));
      if (f == "tan") return number(std::tan(a));
      if (f == "sec") return number(1 / std::cos(a));
      if (f == "csc") return number(1 / std::sin(a));
      if (f == "cot") return number(1 / std::tan(a));
      if (f == "log") return a <= 0 ? Value{K::kUndefined, 0} : number(std::log(a));
      if (f == "exp") return number(std::exp(a));
      if (f == "abs") return number(std::fabs(a));
      return Value{K::kUndefined, 0};
    }
    default:
      return Value{K::kUndefined, 0};
  }
}

bool IsInexact(const Expr& e) {
  if (e.kind == Expr::Kind::kNumber) {
    if (e.text.find('.') != std::string::npos) return true;
    size_t x = e.text.find_first_of("eE");
    return x != std::string::npos && e.text.find('-', x) != std::string::npos;
  }
  for (const auto& a : e.args) {
    if (IsInexact(*a)) return true;
  }
  return false;
}

std::string IntegerLiteral(const Expr& e) {
  const Expr* n = &e;
  std::string sign;
  if (n->kind == Expr::Kind::kNeg) {
    sign = "-";
    n = n->args[0].get();
  }
  if (n->kind != Expr::Kind::kNumber) return "";
  for (char c : n->text) {
    if (!IsDigit(c)) return "";
  }
  size_t nz = n->text.find_first_not_of('0');
  if (nz == std::string::npos) return "0";
  return sign + n->text.substr(nz);
}

std::string Print(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kNumber: {
      std::string digits;
      long exp10;
      Decimal(e.text, digits, exp10);
      if (exp10 >= 0) return digits + std::string(static_cast<size_t>(std::min(exp10, 400L)), '0');
      return absl::StrCat("(", digits, "/1", std::string(static_cast<size_t>(std::min(-exp10, 400L)), '0'), ")");
    }
    case Expr::Kind::kSymbol:
      if (e.text == "pi") return "Pi";
      if (e.text == "oo") return "infinity_";
      // Prefixed so that no name collides with GiNaC's own (I, beta, zeta, psi ...).
      return "s_" + e.text;
    case Expr::Kind::kFunction:
      // GiNaC has no sec, csc, cot.
      if (e.text == "sec") return absl::StrCat("(1/cos(", Print(*e.args[0]), "))");
      if (e.text == "csc") return absl::StrCat("(1/sin(", Print(*e.args[0]), "))");
      if (e.text == "cot") return absl::StrCat("(1/tan(", Print(*e.args[0]), "))");
      return absl::StrCat(e.text, "(", Print(*e.args[0]), ")");
    case Expr::Kind::kNeg:
      return absl::StrCat("(-", Print(*e.args[0]), ")");
    case Expr::Kind::kFactorial:
      return absl::StrCat("factorial(", Print(*e.args[0]), ")");
    default:
      break;
  }
  const char* op = e.kind == Expr::Kind::kAdd   ? "+"
                   : e.kind == Expr::Kind::kSub ? "-"
                   : e.kind == Expr::Kind::kMul ? "*"
                   : e.kind == Expr::Kind::kDiv ? "/"
                                                : "^";
  return absl::StrCat("(", Print(*e.args[0]), op, Print(*e.args[1]), ")");
}

bool HasHugeSymbolicPower(const Expr& e, double limit) {
  if (e.kind == Expr::Kind::kPow) {
    Value base = Evaluate(*e.args[0]);
    Value exponent = Evaluate(*e.args[1]);
    if (base.kind != Value::Kind::kNumber &&
        (exponent.kind == Value::Kind::kOverflow ||
         (exponent.kind == Value::Kind::kNumber && std::fabs(exponent.number) > limit))) {
      return true;
    }
  }
  for (const auto& a : e.args) {
    if (HasHugeSymbolicPower(*a, limit)) return true;
  }
  return false;
}

}  // namespace grpo::math
