// Math answer checking for the reward service (issue #4).
//
//   ExtractAnswer  takes the final answer out of a completion: the last <answer>...</answer>
//                  block (a \boxed{} inside it is unwrapped) and/or the last \boxed{} / \fbox{};
//                  or, for base models that write no tags, from free text (kFreeText).
//   MathChecker    decides whether an extracted answer equals the reference (gold) answer.
//
// How a check runs (math_checker.cc has the details):
//   1. Both sides are capped in length (10 KB) and turned from LaTeX into a plain infix
//      text (latex.cc): \frac, \sqrt, \pi, \cdot, separators, units, degrees, percent ...
//   2. The text is split into a structure (lists, sets, tuples, intervals, unions,
//      equations and inequalities) and compared structure by structure: sets and bare
//      lists are order-free, tuples and intervals are ordered and their brackets matter.
//   3. Leaves are compared in-process: identical canonical text, then numbers (exact for
//      integer literals, relative tolerance when a decimal is involved).
//   4. Leaves with free variables (2x+2 vs 2(x+1)) go to the symbolic stage: GiNaC in a
//      pool of `grpo-math-worker` processes (worker_pool.h). GiNaC cannot be interrupted,
//      so a worker that overruns the check's budget is SIGKILLed and replaced; a worker
//      that crashes or runs out of its memory limit only costs that check an error.
//
// Thread safety: a MathChecker is safe for concurrent use from many threads without
// external synchronisation. At most `max_workers` symbolic checks run at a time; the
// others wait for a worker within their own budget.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace grpo::math {

enum class ExtractMode {
  kAnswerTag,        // only the last <answer>...</answer>
  kBoxed,            // only the last \boxed{...} or \fbox{...}
  kAnswerThenBoxed,  // the answer tag if there is one, else the last box
  // Free text, in the spirit of Math-Verify, strongest first:
  //   1. the last <answer> block (a box inside unwrapped), as kAnswerTag;
  //   2. the last \boxed{} / \fbox{}; inside a math segment, all boxes of that segment
  //      and of the segments joined to it by separators only ($$\boxed{1} \text{ for (a)
  //      and } \boxed{2}$$ is "1, 2"). A "final answer" statement after it wins;
  //   3. a final-answer phrase: "final answer is / final answer: X", "the answer is X",
  //      "answer: X", "#### X"; then "... = N" at the very end; then "therefore / thus /
  //      hence / so the ... is X" when no digit follows its sentence;
  //   4. the last math segment ($...$, $$...$$, \(...\), \[...\]), with segments joined
  //      by separators ($1$ and $2$) read as one list;
  //   5. the last number (-5, 1,000.5, 7 425 000, .4, 3/4, \frac{3}{4}).
  // In 3 and 4 a chain of arithmetic ending in a value (5 \times 6 = 30) gives the value.
  // Linear in the input's length; any bytes are accepted.
  kFreeText,
};

// The final answer of `completion`, trimmed; nullopt when none is found (or a box is
// never closed). A \boxed{} inside an answer block is unwrapped.
std::optional<std::string> ExtractAnswer(std::string_view completion, ExtractMode mode);

struct CheckOptions {
  // Relative tolerance for numbers when at least one side is a decimal (0.333 vs 1/3
  // fails, 0.3333333 vs 1/3 passes). Exact values are compared exactly (integers) or
  // to 1e-12 (rationals, radicals, pi).
  double rel_tol = 1e-6;
  // Wall-clock budget of one Check, waiting for a worker included.
  absl::Duration budget = absl::Seconds(1);
  // Whether expressions with free variables go to the GiNaC worker; when false they
  // are equal only if their canonical text is.
  bool symbolic = true;
  // The worker executable. Empty: $GRPO_BIN_DIR/grpo-math-worker, else the file next
  // to the current executable.
  std::string worker_path;
  // Worker processes at most (started lazily, kept between checks).
  int max_workers = 2;
  // Address-space limit of one worker (RLIMIT_AS).
  size_t worker_memory_bytes = size_t{1} << 30;
  // Longer answers are an error without any parsing.
  size_t max_answer_bytes = 10 * 1024;
};

struct CheckResult {
  bool correct = false;
  // Empty unless the check could not be decided (then `correct` is false): "timeout",
  // "too long", "parse error: ...", "worker: ...".
  std::string error;
  // How it was decided, for diagnostics: "string", "number", "set", "tuple",
  // "interval", "relation", "symbolic", "text".
  std::string method;
};

class WorkerPool;

class MathChecker {
 public:
  explicit MathChecker(CheckOptions options = {});
  ~MathChecker();
  MathChecker(const MathChecker&) = delete;
  MathChecker& operator=(const MathChecker&) = delete;

  // Is `predicted` (an extracted answer) equal to `gold`? Never throws, returns within
  // the budget plus a few milliseconds.
  CheckResult Check(std::string_view predicted, std::string_view gold) const;

  const CheckOptions& options() const { return options_; }
  // For tests: the worker pool (nullptr when symbolic is off).
  WorkerPool* TEST_pool() const { return pool_.get(); }

 private:
  CheckResult CheckImpl(std::string_view predicted, std::string_view gold) const;

  CheckOptions options_;
  std::unique_ptr<WorkerPool> pool_;
};

}  // namespace grpo::math
