// Pre-tokenizer implementations (see pre_tokenizers.h), following Hugging Face tokenizers:
// ByteLevel optionally prefixes a space and splits with GPT-2's pattern, then maps bytes to
// characters; Metaspace turns spaces into its replacement character, prepends one according to
// prepend_scheme and splits before each replacement character.
#include "data/tokenizer/pre_tokenizers.h"

#include "common/error.h"
#include "data/tokenizer/regex.h"
#include "data/tokenizer/unicode.h"

namespace mp::tok {

namespace {

const char* kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Applies `fn(piece, out)` to every piece that is not an added token.
template <typename Fn>
void for_each_piece(std::vector<Piece>& pieces, Fn fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (Piece& p : pieces) {
    if (p.added_id >= 0) out.push_back(std::move(p));
    else fn(p, out);
  }
  pieces.swap(out);
}

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), re_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, "ByteLevel") : nullptr) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> ranges;
    Matches m;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      if (add_prefix_space_ && p.text[0] != ' ') {
        p.text.insert(p.text.begin(), ' ');
        p.aligned = false;
      }
      size_t first = out.size();
      if (re_) {
        re_->find_all(p.text, ranges);
        covering_from_ranges(ranges, p.text.size(), m);
        split_piece(p, m, SplitBehavior::Isolated, false, out);
      } else {
        out.push_back(std::move(p));
      }
      const ByteLevelTable& table = byte_level_table();
      for (size_t k = first; k < out.size(); ++k) {
        std::string mapped;
        mapped.reserve(out[k].text.size() * 2);
        for (unsigned char b : out[k].text) mapped += table.byte_to_utf8[b];
        out[k].text.swap(mapped);
        out[k].aligned = false;
      }
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

class Split : public PreTokenizer {
 public:
  Split(std::unique_ptr<Regex> re, SplitBehavior b, bool invert) : re_(std::move(re)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> ranges;
    Matches m;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      re_->find_all(p.text, ranges);
      covering_from_ranges(ranges, p.text.size(), m);
      split_piece(p, m, behavior_, invert_, out);
    });
  }

 private:
  std::unique_ptr<Regex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on characters for which `pred` holds, with a fixed behaviour.
template <typename Pred>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior b) : pred_(pred), behavior_(b) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    Matches m;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      covering_from_chars(p.text, pred_, m);
      split_piece(p, m, behavior_, false, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> char_split(Pred pred, SplitBehavior b) {
  return std::make_unique<CharSplit<Pred>>(pred, b);
}

class Whitespace : public PreTokenizer {
 public:
  Whitespace() : re_("\\w+|[^\\w\\s]+", "Whitespace") {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::pair<size_t, size_t>> ranges;
    Matches m;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      re_.find_all(p.text, ranges);
      covering_from_ranges(ranges, p.text.size(), m);
      split_piece(p, m, SplitBehavior::Removed, true, out);
    });
  }

 private:
  Regex re_;
};

enum class PrependScheme { First, Never, Always };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(char32_t replacement, PrependScheme scheme, bool split) : replacement_(replacement), scheme_(scheme), split_(split) {
    append_utf8(rep_, replacement);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    Matches m;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      if (p.text.find(' ') != std::string::npos) {
        std::string t;
        t.reserve(p.text.size() + 8);
        for (char c : p.text) {
          if (c == ' ') t += rep_;
          else t += c;
        }
        p.text.swap(t);
        p.aligned = false;
      }
      bool starts = p.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.original_start == 0))) {
        p.text.insert(0, rep_);
        p.aligned = false;
      }
      if (split_) {
        const char32_t r = replacement_;
        covering_from_chars(p.text, [r](char32_t c) { return c == r; }, m);
        split_piece(p, m, SplitBehavior::MergedWithNext, false, out);
      } else {
        out.push_back(std::move(p));
      }
    });
  }

 private:
  char32_t replacement_;
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

char32_t single_char(const Node& n) {
  std::string s = n.str();
  size_t i = 0;
  if (s.empty() || first_invalid_utf8(s)) n.fail("a single character");
  char32_t c = next_code_point(s, i);
  if (i != s.size()) n.fail("a single character");
  return c;
}

bool is_ascii_or_unicode_punct(char32_t c) { return is_punctuation(c); }

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Node& n) {
  if (n.is_null()) return nullptr;
  const std::string type = n.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(n.bool_or("add_prefix_space", true), n.bool_or("use_regex", true));
  if (type == "Split") {
    Node pat = n.at("pattern");
    std::unique_ptr<Regex> re;
    if (auto s = pat.find("String")) re = Regex::literal(s->str(), s->where);
    else if (auto r = pat.find("Regex")) re = std::make_unique<Regex>(r->str(), r->where);
    else pat.fail("an object with \"String\" or \"Regex\"");
    Node behavior = n.at("behavior");
    return std::make_unique<Split>(std::move(re), parse_split_behavior(behavior.str(), behavior.where), n.bool_or("invert", false));
  }
  if (type == "Digits") {
    bool individual = n.bool_or("individual_digits", false);
    return char_split(is_numeric, individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return char_split(is_whitespace, SplitBehavior::Removed);
  if (type == "Punctuation") {
    SplitBehavior b = SplitBehavior::Isolated;
    if (auto bn = n.find("behavior")) b = parse_split_behavior(bn->str(), bn->where);
    return char_split(is_ascii_or_unicode_punct, b);
  }
  if (type == "CharDelimiterSplit") {
    const char32_t d = single_char(n.at("delimiter"));
    return char_split([d](char32_t c) { return c == d; }, SplitBehavior::Removed);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.push_back(char_split(is_whitespace, SplitBehavior::Removed));
    parts.push_back(char_split(is_ascii_or_unicode_punct, SplitBehavior::Isolated));
    return std::make_unique<Sequence>(std::move(parts));
  }
  if (type == "Metaspace") {
    char32_t rep = single_char(n.at("replacement"));
    PrependScheme scheme = PrependScheme::Always;
    if (auto s = n.find("prepend_scheme")) {
      std::string v = s->str();
      if (v == "first") scheme = PrependScheme::First;
      else if (v == "never") scheme = PrependScheme::Never;
      else if (v == "always") scheme = PrependScheme::Always;
      else s->fail("\"first\", \"never\" or \"always\"");
    }
    if (auto a = n.find("add_prefix_space"); a && !a->boolean()) scheme = PrependScheme::Never;
    return std::make_unique<Metaspace>(rep, scheme, n.bool_or("split", true));
  }
  if (type == "Sequence") {
    Node list = n.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.array().size(); ++i)
      if (auto p = make_pre_tokenizer(list.at(i))) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail_input("{}: unsupported pre_tokenizer type \"{}\" (supported: ByteLevel, Split, Digits, Metaspace, "
             "Whitespace, WhitespaceSplit, Punctuation, CharDelimiterSplit, BertPreTokenizer, Sequence)",
             n.where, type);
}

}  // namespace mp::tok
