// The demo's R1-Zero task: arithmetic chains such as "14+7-9+18" (several operations,
// multi-digit numbers), split into disjoint train and held-out test sets, and the
// pretraining corpus the base model learns the task's language from.
//
// The corpus is text a web crawl might hold about such sums, not the answer format:
//   * arithmetic facts, stretches of addition and subtraction tables ("Adding 9:
//     24+9=33, 25+9=34, ...");
//   * answer keys and worksheets ("14+7-9+18 = 31"), whose answers are often wrong
//     (a dropped carry, a slip of a few units: the base model's guesses);
//   * worked solutions ("14+7-9+18: 14+7=21, 21-9=12, 12+18=30"), correct, always after
//     the problem they solve, half of them opened by a short phrase ("First, ");
//   * transcripts "User: 14+7-9+18. Assistant: ..." answering either way, some under
//     the R1-Zero instruction, and a few (`tagged_share`) that happen to use
//     <think>/<answer> tags, so the format is possible but rare; a tagged transcript
//     always reasons inside <think>;
//   * optionally (`restated_share`), worked solutions that end by restating their
//     result as an answer ("... 12+18=30. The answer is 30."), outside the tags.
// No test-set sum appears in the corpus or the training set. Deterministic for a seed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/dataset.h"

namespace grpo {

struct ChainOptions {
  int64_t train_tasks = 2000;
  int64_t test_tasks = 200;
  int64_t min_operands = 3;
  int64_t max_operands = 4;
  int64_t max_operand = 20;  // operands in [1, max_operand]
  std::string operators = "+-";
  uint64_t seed = 1;
  // Language mixing in miniature (issue #25): each prompt names the notation its chain
  // of thought is to be written in, digits ("14+7=21") or number words ("fourteen plus
  // seven is twenty-one"), as "14+7-9+18 (in words)"; Task.language is "digits" or
  // "words", the answer stays a number. Off (0) keeps the plain prompts.
  double words_share = 0;  // > 0: notations on, this share of tasks asking for words
};

struct ChainTasks {
  std::vector<Task> train, test;
};

// Running values never go below 0, so every step is a small sum or difference.
ChainTasks GenerateChainTasks(const ChainOptions& opts);

struct CorpusOptions {
  int64_t documents = 20000;
  double facts_share = 0.4;    // arithmetic-table documents ("Adding 9: 24+9=33, ..."), always right
  double worked_share = 0.6;   // worked solutions among answers in exercises and Q&A
  double dialog_worked_share = 0.1;  // ... and in User/Assistant transcripts
  double wrong_share = 0.6;    // wrong answers among direct answers
  double dialog_share = 0.5;   // documents shaped as User/Assistant transcripts
  double tagged_share = 0.03;  // documents (transcripts) that use <think>/<answer> tags
  double preamble_share = 0.2;  // transcripts under the R1-Zero instruction
  // Worked solutions outside the tags that end by restating their result ("14+7=21,
  // 21-9=12. The answer is 12."): the copy of the last running value into an answer
  // that a tagged transcript makes, practised in many documents rather than the few
  // tagged ones. Drawn from a generator of its own: 0 keeps the corpus byte for byte.
  double restated_share = 0;
  // Documents whose chain starts from a number in (max_operand, 3 * max_operand]: large
  // running values, which the tasks reach rarely, with the same operands after it.
  double large_start_share = 0.3;
  uint64_t seed = 1;
  // Notations (issue #25; all 0 keeps the corpus byte for byte): worked solutions and
  // fact tables written in number words, worked solutions that switch notation part way
  // (language mixing), and problems that name a notation ("(in words)"), followed by
  // the worked solution in that notation only `instruction_kept` of the time.
  double words_share = 0;
  double mixed_share = 0;
  double instruction_share = 0;
  double instruction_kept = 0.6;
};

// {"text": ...} documents (JSONL lines as `grpo sft` reads them); sums drawn like the
// tasks', never one of `exclude` (the held-out prompts).
std::vector<std::string> GeneratePretrainCorpus(const ChainOptions& tasks, const CorpusOptions& opts,
                                                const std::vector<Task>& exclude);

// The worked solution of a chain: "14+7=21, 21-9=12, 12+18=30"; in words: "fourteen
// plus seven is twenty-one, twenty-one minus nine is twelve, ...". `chain` may carry a
// notation instruction ("14+7 (in words)"), which is ignored.
std::string WorkedSolution(const std::string& chain, bool words = false);

// R1's cold-start data (issue #25): the first `n` of `tasks` (chain tasks) as
// {"prompt", "completion"} JSONL lines (`grpo sft` reads them), the completion the
// whole worked solution in the notation the task asks for (digits when it names none),
// in the format: " <think> 13+3=16, 16-11=5 </think> <answer> 5 </answer>".
std::vector<std::string> ColdStartExamples(const std::vector<Task>& tasks, int64_t n);

// English number words: 21 "twenty-one", 112 "one hundred twelve" (0 to 999 999).
std::string NumberWords(int64_t n);

// The notation instruction appended to a prompt: " (in digits)" or " (in words)".
std::string NotationInstruction(const std::string& language);
// The notation a prompt names ("digits", "words"), "" when none.
std::string NotationOf(const std::string& prompt);

// The share of a chain of thought written in `language` ("digits" or "words"): its
// notation units are digit runs and the signs + - = (digits), and number words and the
// words plus, minus, is, equals (words); other words do not count. 1 when it has none.
double NotationConsistency(std::string_view text, const std::string& language);

// The R1-Zero prompt template (DeepSeek-R1 paper, table 1), with {prompt}.
const char* R1ZeroTemplate();

}  // namespace grpo
