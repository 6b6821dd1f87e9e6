// Decoder implementations (see decoders.h).
#include "data/tokenizer/decoders.h"

#include "common/error.h"
#include "data/tokenizer/regex.h"
#include "data/tokenizer/unicode.h"

namespace mp::tok {

namespace {

class ByteLevel : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    const ByteLevelTable& table = byte_level_table();
    std::string bytes;
    std::string tok_bytes;
    for (const std::string& t : tokens) {
      tok_bytes.clear();
      bool all = true;
      size_t i = 0;
      while (i < t.size()) {
        int b = table.char_to_byte(next_code_point(t, i));
        if (b < 0) {
          all = false;
          break;
        }
        tok_bytes.push_back(static_cast<char>(b));
      }
      bytes += all ? tok_bytes : t;
    }
    return {utf8_lossy(bytes)};
  }
};

class Metaspace : public Decoder {
 public:
  Metaspace(char32_t rep, bool strip_first) : rep_(rep), strip_first_(strip_first) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      const std::string& t = tokens[k];
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        char32_t c = next_code_point(t, i);
        if (c == rep_) {
          if (!(k == 0 && strip_first_)) out += ' ';
        } else {
          out.append(t, b, i - b);
        }
      }
      tokens[k].swap(out);
    }
    return tokens;
  }

 private:
  char32_t rep_;
  bool strip_first_;
};

class Replace : public Decoder {
 public:
  Replace(std::unique_ptr<Regex> re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for (std::string& t : tokens) {
      re_->find_all(t, m);
      if (m.empty()) continue;
      std::string out;
      size_t last = 0;
      for (const auto& r : m) {
        out.append(t, last, r.first - last);
        out += content_;
        last = r.second;
      }
      out.append(t, last, std::string::npos);
      t.swap(out);
    }
    return tokens;
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallback : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (!first_invalid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_digit(t[3]) >= 0 && hex_digit(t[4]) >= 0) {
        pending.push_back(static_cast<char>(hex_digit(t[3]) * 16 + hex_digit(t[4])));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    return out;
  }
};

class Fuse : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

class Strip : public Decoder {
 public:
  Strip(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        chars.push_back({b, next_code_point(t, i)});
      }
      size_t start_cut = 0;
      for (size_t k = 0; k < start_ && k < chars.size(); ++k) {
        if (chars[k].second != content_) break;
        start_cut = k + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t k = 0; k < stop_ && k < chars.size(); ++k) {
        size_t index = chars.size() - k - 1;
        if (chars[index].second != content_) break;
        stop_cut = index;
      }
      if (stop_cut <= start_cut) {
        t.clear();
        continue;
      }
      size_t a = chars[start_cut].first;
      size_t e = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
      t = t.substr(a, e - a);
    }
    return tokens;
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t last = 0, p;
  while ((p = s.find(from, last)) != std::string::npos) {
    out.append(s, last, p - last);
    out += to;
    last = p + from.size();
  }
  out.append(s, last, std::string::npos);
  return out;
}

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) tokens[k] = replace_all(tokens[k], suffix_, k + 1 == tokens.size() ? "" : " ");
    return tokens;
  }

 private:
  std::string suffix_;
};

class WordPiece : public Decoder {
 public:
  WordPiece(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string& t = tokens[k];
      if (k != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t = t.substr(prefix_.size());
        else t = " " + t;
      }
      if (cleanup_) {
        static const std::pair<const char*, const char*> kRules[] = {
            {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
            {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (const auto& r : kRules) t = replace_all(t, r.first, r.second);
      }
    }
    return tokens;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& p : parts_) tokens = p->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

char32_t single_char(const Node& n) {
  std::string s = n.str();
  size_t i = 0;
  if (s.empty() || first_invalid_utf8(s)) n.fail("a single character");
  char32_t c = next_code_point(s, i);
  if (i != s.size()) n.fail("a single character");
  return c;
}

size_t count(const Node& n) {
  int64_t v = n.integer();
  if (v < 0) n.fail("a non-negative integer");
  return static_cast<size_t>(v);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Node& n) {
  if (n.is_null()) return nullptr;
  const std::string type = n.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") {
    std::string scheme = n.str_or("prepend_scheme", "always");
    if (auto a = n.find("add_prefix_space"); a && !a->boolean()) scheme = "never";
    return std::make_unique<Metaspace>(single_char(n.at("replacement")), scheme != "never");
  }
  if (type == "Replace") {
    Node pat = n.at("pattern");
    std::unique_ptr<Regex> re;
    if (auto s = pat.find("String")) re = Regex::literal(s->str(), s->where);
    else if (auto r = pat.find("Regex")) re = std::make_unique<Regex>(r->str(), r->where);
    else pat.fail("an object with \"String\" or \"Regex\"");
    return std::make_unique<Replace>(std::move(re), n.at("content").str());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") return std::make_unique<Strip>(single_char(n.at("content")), count(n.at("start")), count(n.at("stop")));
  if (type == "BPEDecoder") return std::make_unique<BpeDecoder>(n.str_or("suffix", "</w>"));
  if (type == "WordPiece") return std::make_unique<WordPiece>(n.str_or("prefix", "##"), n.bool_or("cleanup", true));
  if (type == "Sequence") {
    Node list = n.at("decoders");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.array().size(); ++i)
      if (auto p = make_decoder(list.at(i))) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail_input("{}: unsupported decoder type \"{}\" (supported: ByteLevel, Metaspace, Replace, ByteFallback, "
             "Fuse, Strip, BPEDecoder, WordPiece, Sequence)", n.where, type);
}

}  // namespace mp::tok
