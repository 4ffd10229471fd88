// A small expression tree for the leaves of an answer (internal to grpo_math).
//
// Parses the plain text of latex.h (numbers, names, + - * / ^ !, implicit products,
// sqrt/sin/cos/tan/sec/csc/cot/log/ln/exp/abs, sin^2(x) = sin(x)^2, |x|), evaluates
// constant trees in double precision and prints a canonical form that GiNaC's parser
// reads (decimals as exact rationals; sec as 1/cos).
// Multi-letter names are products of letters (ab = a*b) except known words (pi,
// function names, Greek letters); a subscript stays with its letter (a_37).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grpo::math {

struct Expr {
  enum class Kind { kNumber, kSymbol, kFunction, kAdd, kSub, kMul, kDiv, kPow, kNeg, kFactorial };
  Kind kind;
  std::string text;  // number literal (digits, '.', exponent), symbol or function name
  std::vector<std::unique_ptr<Expr>> args;
};

absl::StatusOr<std::unique_ptr<Expr>> ParseExpr(absl::string_view plain);

// The value of a constant tree.
struct Value {
  enum class Kind { kNumber, kInfinite, kSymbolic, kUndefined, kOverflow };
  Kind kind = Kind::kNumber;
  double number = 0;
};
Value Evaluate(const Expr& e);

// True when a literal with a decimal point (or a negative exponent) occurs.
bool IsInexact(const Expr& e);
// The integer literal (optionally negated) as sign + digits without leading zeros, or
// "" when `e` is not one.
std::string IntegerLiteral(const Expr& e);
// Canonical text, fully parenthesised, GiNaC syntax (Pi, factorial, exact rationals).
std::string Print(const Expr& e);
// Whether a power with a non-constant base has a constant exponent above `limit` in
// size (expanding it could take GiNaC forever).
bool HasHugeSymbolicPower(const Expr& e, double limit);

}  // namespace grpo::math
