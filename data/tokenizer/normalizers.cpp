// Normalizer implementations (see normalizers.h). Semantics follow Hugging Face tokenizers:
// Prepend leaves an empty string empty; Strip and StripAccents use the White_Space property
// and the Mark categories; Replace replaces every non-overlapping match, left to right.
#include "data/tokenizer/normalizers.h"

#include "common/error.h"
#include "data/tokenizer/regex.h"
#include "data/tokenizer/unicode.h"

#include <vector>

namespace mp::tok {

namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(NormalForm f) : form_(f) {}
  std::string apply(std::string t) const override { return normalize(t, form_); }

 private:
  NormalForm form_;
};

class Lowercase : public Normalizer {
 public:
  std::string apply(std::string t) const override { return lowercase(t); }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string apply(std::string t) const override {
    size_t a = 0, b = t.size();
    if (left_) {
      while (a < b) {
        size_t i = a;
        if (!is_whitespace(next_code_point(t, i))) break;
        a = i;
      }
    }
    if (right_) {
      while (b > a) {
        size_t s = b - 1;
        while (s > a && (static_cast<unsigned char>(t[s]) & 0xC0) == 0x80) --s;
        size_t i = s;
        if (!is_whitespace(next_code_point(t, i))) break;
        b = s;
      }
    }
    return t.substr(a, b - a);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  std::string apply(std::string t) const override {
    std::string out;
    out.reserve(t.size());
    size_t i = 0;
    while (i < t.size()) {
      size_t b = i;
      char32_t c = next_code_point(t, i);
      if (!is_combining_mark(c)) out.append(t, b, i - b);
    }
    return out;
  }
};

class Replace : public Normalizer {
 public:
  Replace(std::unique_ptr<Regex> re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  std::string apply(std::string t) const override {
    std::vector<std::pair<size_t, size_t>> m;
    re_->find_all(t, m);
    if (m.empty()) return t;
    std::string out;
    out.reserve(t.size() + m.size() * content_.size());
    size_t last = 0;
    for (const auto& r : m) {
      out.append(t, last, r.first - last);
      out += content_;
      last = r.second;
    }
    out.append(t, last, std::string::npos);
    return out;
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prefix_(std::move(p)) {}
  std::string apply(std::string t) const override { return t.empty() ? t : prefix_ + t; }

 private:
  std::string prefix_;
};

class Nmt : public Normalizer {
 public:
  std::string apply(std::string t) const override {
    std::string out;
    out.reserve(t.size());
    size_t i = 0;
    while (i < t.size()) {
      size_t b = i;
      char32_t c = next_code_point(t, i);
      if ((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F)
        continue;
      if (c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
          c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD)
        out += ' ';
      else
        out.append(t, b, i - b);
    }
    return out;
  }
};

class ByteLevelNormalizer : public Normalizer {
 public:
  std::string apply(std::string t) const override {
    const ByteLevelTable& table = byte_level_table();
    std::string out;
    out.reserve(t.size() * 2);
    for (unsigned char b : t) out += table.byte_to_utf8[b];
    return out;
  }
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string apply(std::string t) const override {
    for (const auto& p : parts_) t = p->apply(std::move(t));
    return t;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

std::unique_ptr<Regex> pattern_regex(const Node& pattern) {
  if (auto s = pattern.find("String")) return Regex::literal(s->str(), s->where);
  if (auto r = pattern.find("Regex")) return std::make_unique<Regex>(r->str(), r->where);
  pattern.fail("an object with \"String\" or \"Regex\"");
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Node& n) {
  if (n.is_null()) return nullptr;
  const std::string type = n.type();
  if (type == "NFC") return std::make_unique<UnicodeForm>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") return std::make_unique<Strip>(n.bool_or("strip_left", true), n.bool_or("strip_right", true));
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Nmt") return std::make_unique<Nmt>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Prepend") return std::make_unique<Prepend>(n.at("prepend").str());
  if (type == "Replace") return std::make_unique<Replace>(pattern_regex(n.at("pattern")), n.at("content").str());
  if (type == "Sequence") {
    Node list = n.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.array().size(); ++i)
      if (auto p = make_normalizer(list.at(i))) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail_input("{}: unsupported normalizer type \"{}\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
             "StripAccents, Replace, Prepend, Nmt, ByteLevel, Sequence)", n.where, type);
}

}  // namespace mp::tok
