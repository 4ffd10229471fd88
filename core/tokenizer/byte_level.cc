#include "core/tokenizer/byte_level.h"

#include "core/common/utf8.h"

namespace grpo::tokenizer {
namespace {

struct Tables {
  std::array<std::string, 256> symbol;  // byte -> UTF-8 of its character
  std::array<char32_t, 256> code;       // byte -> code point of its character
  std::array<uint8_t, 256> order;       // GPT-2's byte order
  std::array<int16_t, 512> byte_of;     // code point (< 512) -> byte, or -1

  Tables() {
    byte_of.fill(-1);
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    int n = 0, next = 0;
    for (int b = 0; b < 256; ++b) {
      if (printable(b)) {
        code[b] = static_cast<char32_t>(b);
        order[n++] = static_cast<uint8_t>(b);
      }
    }
    for (int b = 0; b < 256; ++b) {
      if (!printable(b)) {
        code[b] = static_cast<char32_t>(256 + next++);
        order[n++] = static_cast<uint8_t>(b);
      }
    }
    for (int b = 0; b < 256; ++b) {
      AppendUtf8(code[b], &symbol[b]);
      byte_of[code[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& T() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

const std::string& ByteToSymbol(uint8_t b) { return T().symbol[b]; }

std::optional<uint8_t> SymbolToByte(char32_t cp) {
  if (cp >= 512 || T().byte_of[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(T().byte_of[cp]);
}

const std::array<uint8_t, 256>& ByteOrder() { return T().order; }

std::string BytesToSymbols(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += ByteToSymbol(static_cast<uint8_t>(c));
  return out;
}

std::optional<std::string> SymbolsToBytes(std::string_view symbols) {
  std::string out;
  out.reserve(symbols.size());
  size_t i = 0;
  while (i < symbols.size()) {
    Utf8Step step = NextUtf8(symbols, i);
    if (!step.valid) return std::nullopt;
    std::optional<uint8_t> b = SymbolToByte(step.cp);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    i += step.len;
  }
  return out;
}

}  // namespace grpo::tokenizer
