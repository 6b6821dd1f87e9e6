// Post-processor implementations (see post_processors.h).
#include "data/tokenizer/post_processors.h"

#include "common/error.h"

namespace mp::tok {

namespace {

// Ids before and after the sequence: Template's single template, Bert's [CLS] A [SEP],
// Roberta's <s> A </s> all have this shape.
class Surround : public PostProcessor {
 public:
  Surround(std::vector<int32_t> before, std::vector<int32_t> after) : before_(std::move(before)), after_(std::move(after)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    std::vector<int32_t> out;
    out.reserve(before_.size() + ids.size() + after_.size());
    out.insert(out.end(), before_.begin(), before_.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    return out;
  }
  std::vector<int32_t> prefix() const override { return before_; }
  std::vector<int32_t> suffix() const override { return after_; }

 private:
  std::vector<int32_t> before_, after_;
};

class Identity : public PostProcessor {
 public:
  std::vector<int32_t> process(std::vector<int32_t> ids) const override { return ids; }
};

class Sequence : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    for (const auto& p : parts_) ids = p->process(std::move(ids));
    return ids;
  }
  std::vector<int32_t> prefix() const override {
    std::vector<int32_t> out;
    for (auto it = parts_.rbegin(); it != parts_.rend(); ++it) {
      auto p = (*it)->prefix();
      out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  }
  std::vector<int32_t> suffix() const override {
    std::vector<int32_t> out;
    for (const auto& part : parts_) {
      auto s = part->suffix();
      out.insert(out.end(), s.begin(), s.end());
    }
    return out;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

int32_t pair_id(const Node& pair) {  // ["[CLS]", 101]
  if (!pair.json.is_array() || pair.json.size() != 2) pair.fail("a [token, id] pair");
  int64_t id = pair.at(1).integer();
  if (id < 0 || id > INT32_MAX) pair.fail("a non-negative id");
  return static_cast<int32_t>(id);
}

std::unique_ptr<PostProcessor> make_template(const Node& n) {
  Node single = n.at("single");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.array().size(); ++i) {
    Node piece = single.at(i);
    if (auto seq = piece.find("Sequence")) {
      std::string id = seq->at("id").str();
      if (id != "A" || seen_sequence) seq->fail("one sequence \"A\" in the single template");
      seen_sequence = true;
    } else if (auto sp = piece.find("SpecialToken")) {
      std::string name = sp->at("id").str();
      Node special = n.at("special_tokens").at(name);
      Node ids = special.at("ids");
      std::vector<int32_t>& dst = seen_sequence ? after : before;
      for (size_t k = 0; k < ids.array().size(); ++k) {
        int64_t v = ids.at(k).integer();
        if (v < 0 || v > INT32_MAX) ids.at(k).fail("a non-negative id");
        dst.push_back(static_cast<int32_t>(v));
      }
    } else {
      piece.fail("{\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (!seen_sequence) single.fail("a template with the sequence \"A\"");
  return std::make_unique<Surround>(std::move(before), std::move(after));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const Node& n) {
  if (n.is_null()) return nullptr;
  const std::string type = n.type();
  if (type == "TemplateProcessing") return make_template(n);
  if (type == "ByteLevel") return std::make_unique<Identity>();
  if (type == "BertProcessing" || type == "RobertaProcessing")
    return std::make_unique<Surround>(std::vector<int32_t>{pair_id(n.at("cls"))}, std::vector<int32_t>{pair_id(n.at("sep"))});
  if (type == "Sequence") {
    Node list = n.at("processors");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list.array().size(); ++i)
      if (auto p = make_post_processor(list.at(i))) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail_input("{}: unsupported post_processor type \"{}\" (supported: TemplateProcessing, BertProcessing, "
             "RobertaProcessing, ByteLevel, Sequence)", n.where, type);
}

}  // namespace mp::tok
