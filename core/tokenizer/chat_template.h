// Chat templates: turn one user prompt (and an optional system message) into the text a
// model was trained to continue, exactly as the Hugging Face chat templates render a
// [system?, user] conversation with add_generation_prompt=true.
//
//   kChatML  Qwen2.5/Qwen3 style:
//            [<|im_start|>system\n{system}<|im_end|>\n]   (only if system is non-empty)
//            <|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n
//            (Qwen2.5-Instruct's own template adds a default system message when none
//            is given; pass it as `system` to reproduce that.)
//   kLlama3  Llama-3 Instruct:
//            <|begin_of_text|>[<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>]
//            <|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>
//            <|start_header_id|>assistant<|end_header_id|>\n\n
//            (no line breaks between the parts; the template trims system and prompt
//            with Jinja's `trim`, i.e. Python's str.strip(), and so do we)
//   kPlain   `plain_template` with every "{prompt}" replaced by the prompt (e.g. the
//            DeepSeek-R1-Zero template); `system` is ignored.
#ifndef GRPO_CORE_TOKENIZER_CHAT_TEMPLATE_H_
#define GRPO_CORE_TOKENIZER_CHAT_TEMPLATE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace grpo::tokenizer {

enum class ChatTemplate { kPlain, kChatML, kLlama3 };

// "plain", "chatml" or "llama3".
absl::StatusOr<ChatTemplate> ParseChatTemplate(std::string_view name);
std::string_view ChatTemplateName(ChatTemplate t);

std::string ApplyChatTemplate(ChatTemplate t, std::string_view prompt, std::string_view plain_template,
                              std::string_view system = "");

// The token strings that end the assistant's turn under template `t` (look them up with
// BpeTokenizer::TokenToId): <|im_end|> and <|endoftext|> for ChatML; <|eot_id|> and
// <|end_of_text|> for Llama-3; none for plain (the tokenizer's own EOS applies).
std::vector<std::string> ChatTemplateStopTokens(ChatTemplate t);

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_CHAT_TEMPLATE_H_
