// Small tokenizer.json files written by tests: a GPT-2-style byte-level BPE with a few merges
// and one special token, and a SentencePiece-style BPE with byte fallback. Their expected ids
// are worked out by hand in the tests from the merge ranks.
#pragma once

#include "data/tokenizer/unicode.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace mp::test {

// Ids: byte b -> b (as its GPT-2 character); 256 "Ġt", 257 "he", 258 "Ġthe", 259 "aa",
// 260 "<|eos|>" (special). Merges in rank order: Ġ t, h e, Ġt he, a a.
inline nlohmann::json tiny_byte_level_tokenizer() {
  const auto& table = mp::tok::byte_level_table();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[table.byte_to_utf8[b]] = b;
  vocab["\xC4\xA0t"] = 256;
  vocab["he"] = 257;
  vocab["\xC4\xA0the"] = 258;
  vocab["aa"] = 259;
  return nlohmann::json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {{{"id", 260}, {"content", "<|eos|>"}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                 {"vocab", vocab}, {"merges", {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "a a"}}}}};
}

// Ids: 0 <unk>, 1 <s>, 2 </s>, 3 + b for <0xBB>, 259 "▁", 260 "a", 261 "b", 262 "▁a".
// Merge: ▁ a. Normalizer: prepend ▁, spaces -> ▁; template "<s> A"; SentencePiece decoder.
inline nlohmann::json tiny_metaspace_tokenizer(bool byte_fallback) {
  nlohmann::json vocab = nlohmann::json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) vocab[std::string("<0x") + hex[b / 16] + hex[b % 16] + ">"] = 3 + b;
  vocab["\xE2\x96\x81"] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab["\xE2\x96\x81" "a"] = 262;
  auto special = [](int id, const char* s) {
    return nlohmann::json{{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  return nlohmann::json{
      {"version", "1.0"},
      {"added_tokens", {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                             {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", {{"type", "TemplateProcessing"},
                          {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                          {"pair", nlohmann::json::array()},
                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                                       {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"fuse_unk", true},
                 {"byte_fallback", byte_fallback}, {"vocab", vocab}, {"merges", {"\xE2\x96\x81 a"}}}}};
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace mp::test
