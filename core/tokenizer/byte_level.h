// GPT-2's byte-level alphabet (bytes_to_unicode in openai/gpt-2 encoder.py, also
// Hugging Face tokenizers' ByteLevel): every byte 0..255 stands for one printable
// Unicode character, so any byte string can be written as a vocabulary string. Printable
// Latin-1 bytes map to themselves ('!' is '!'); the other 68 bytes map to U+0100 and up
// in byte order (' ' is 'Ġ' U+0120, '\n' is 'Ċ' U+010A). Immutable tables: thread-safe.
#ifndef GRPO_CORE_TOKENIZER_BYTE_LEVEL_H_
#define GRPO_CORE_TOKENIZER_BYTE_LEVEL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace grpo::tokenizer {

// The character byte `b` stands for, as UTF-8.
const std::string& ByteToSymbol(uint8_t b);

// The byte that character `cp` stands for, if it is one of the 256 symbols.
std::optional<uint8_t> SymbolToByte(char32_t cp);

// The 256 bytes in GPT-2's order: the printable ones ascending, then the rest
// ascending. A fresh byte-level vocabulary (GPT-2, Qwen2, our trainer) gives byte
// ByteOrder()[i] the id i.
const std::array<uint8_t, 256>& ByteOrder();

// "Hi there" -> "HiĠthere".
std::string BytesToSymbols(std::string_view bytes);

// The inverse: "HiĠthere" -> "Hi there"; nullopt if `symbols` is not valid UTF-8 or
// has a character outside the alphabet (then it cannot be byte-level text).
std::optional<std::string> SymbolsToBytes(std::string_view symbols);

}  // namespace grpo::tokenizer

#endif  // GRPO_CORE_TOKENIZER_BYTE_LEVEL_H_
