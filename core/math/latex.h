// LaTeX answer text -> plain infix text (internal to grpo_math).
//
// The plain text uses: numbers, letters, '_' (subscripts glue onto names: a_37),
// + - * / ^ ! ( ) [ ] { } , ; : = < > <= >= != and these markers:
//   '@' set union (\cup)   '&' plus-or-minus (\pm)   '?' membership (\in)   "oo" infinity
//   '#' approximately (\approx)
// Braces stay only as set braces (\{ \}, or plain braces around the whole answer);
// other groups become parentheses. Separators (1{,}000, 1,\!000, 1\,000, 1 000,
// 1,000) are removed; a comma is never a decimal point (1,5 is the list 1, 5).
// \text{} and friends keep their content; matrices become nested tuples.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grpo::math {

absl::StatusOr<std::string> LatexToPlain(absl::string_view latex);

}  // namespace grpo::math
