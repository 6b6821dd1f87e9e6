// UTF-8 and Unicode helpers for the tokenizer: decoding and encoding code points, validation,
// lossy decoding (each maximal invalid subsequence becomes U+FFFD, as Rust's from_utf8_lossy),
// normalization forms through utf8proc, and the character classes the Hugging Face components
// use (Rust's char::is_whitespace / is_numeric / is_alphanumeric, Unicode punctuation).
// Every function here takes valid UTF-8 unless it says otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mp::tok {

// Byte offset of the first byte that does not start a valid UTF-8 sequence, if any.
std::optional<size_t> first_invalid_utf8(std::string_view s);
// Decodes the code point at s[i] (valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);
inline size_t utf8_length_of_lead(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }
void append_utf8(std::string& out, char32_t c);
std::string utf8_lossy(std::string_view bytes);
// The text in double quotes with control characters escaped, for one-line error messages.
std::string quote_for_message(std::string_view s);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, NormalForm form);
std::string lowercase(std::string_view s);  // full lowercase mapping, per character
char32_t titlecase(char32_t c);             // simple titlecase mapping of one character

bool is_whitespace(char32_t c);    // White_Space property
bool is_numeric(char32_t c);       // general category N*
bool is_alphanumeric(char32_t c);  // letters, Nl, N*
bool is_punctuation(char32_t c);   // ASCII punctuation or general category P*
bool is_word_char(char32_t c);     // regex \w: letters, marks, Nd, Nl, Pc, ZWJ/ZWNJ
bool is_combining_mark(char32_t c);

// GPT-2's byte-to-character table: printable bytes map to themselves, the rest to U+0100 + n.
struct ByteLevelTable {
  char32_t byte_to_char[256];
  std::string byte_to_utf8[256];
  ByteLevelTable();
  // The byte a character stands for, or -1 when the character is not in the table.
  int char_to_byte(char32_t c) const;
};
const ByteLevelTable& byte_level_table();

}  // namespace mp::tok
