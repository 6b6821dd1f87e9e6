// Tokenizer: loading tokenizer.json (and tokenizer_config.json), the encoding pipeline
// (added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor) and decoding.
#include "data/tokenizer/tokenizer.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"
#include "data/tokenizer/added_vocabulary.h"
#include "data/tokenizer/bpe.h"
#include "data/tokenizer/decoders.h"
#include "data/tokenizer/normalizers.h"
#include "data/tokenizer/post_processors.h"
#include "data/tokenizer/pre_tokenizers.h"
#include "data/tokenizer/unicode.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace mp {

using tok::Json;
using tok::Node;

struct Tokenizer::Impl {
  std::string path;
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::BpeModel> model;
  std::unique_ptr<tok::AddedVocabulary> added;
  std::unique_ptr<tok::PostProcessor> post;
  std::unique_ptr<tok::Decoder> decoder;
  std::optional<int64_t> bos, eos;
  bool byte_level = false;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

namespace {

// Bounded like every JSON the tool reads (common/json_file.h): size, nesting depth, duplicate keys.
Json parse_json_file(const std::string& path) { return read_json_file(path); }

// A token named in tokenizer_config.json: a string or {"content": "..."}.
std::optional<std::string> config_token(const Json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

bool mentions_byte_level(const Json& j) {
  if (j.is_object()) {
    auto t = j.find("type");
    if (t != j.end() && t->is_string() && t->get<std::string>() == "ByteLevel") return true;
    for (const auto& v : j) if (mentions_byte_level(v)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j) if (mentions_byte_level(v)) return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::build(const std::string& text, const std::string& path) {
  std::shared_ptr<Tokenizer> t(new Tokenizer());
  Impl& m = *t->impl_;
  m.path = path;
  const Json root_json = parse_json_text(text, path);
  Node root{root_json, path};
  if (!root_json.is_object()) root.fail("a JSON object (a Hugging Face tokenizer.json)");
  if (auto v = root.find("version"); v && v->str() != "1.0")
    fail_input("{}: unknown tokenizer.json version \"{}\"; expected \"1.0\"", v->where, v->str());
  m.normalizer = root.find("normalizer") ? tok::make_normalizer(root.at("normalizer")) : nullptr;
  m.pre_tokenizer = root.find("pre_tokenizer") ? tok::make_pre_tokenizer(root.at("pre_tokenizer")) : nullptr;
  m.model = std::make_unique<tok::BpeModel>(root.at("model"));
  m.post = root.find("post_processor") ? tok::make_post_processor(root.at("post_processor")) : nullptr;
  m.decoder = root.find("decoder") ? tok::make_decoder(root.at("decoder")) : nullptr;
  static const Json empty_list = Json::array();
  auto added = root.find("added_tokens");
  m.added = std::make_unique<tok::AddedVocabulary>(added ? *added : Node{empty_list, path + ": added_tokens"},
                                                   *m.model, m.normalizer.get());
  m.byte_level = mentions_byte_level(root_json.value("pre_tokenizer", Json())) ||
                 mentions_byte_level(root_json.value("decoder", Json()));
  return t;
}

std::shared_ptr<const Tokenizer> Tokenizer::from_json_text(const std::string& text, const std::string& source) {
  std::shared_ptr<Tokenizer> t = build(text, source);
  Impl& m = *t->impl_;
  if (m.post) {
    if (m.post->prefix().size() == 1) m.bos = m.post->prefix()[0];
    if (m.post->suffix().size() == 1) m.eos = m.post->suffix()[0];
  }
  return t;
}

std::shared_ptr<const Tokenizer> Tokenizer::load(const std::string& where) {
  std::error_code ec;
  std::string path = where;
  if (fs::is_directory(where, ec)) {
    path = (fs::path(where) / "tokenizer.json").string();
    if (!fs::exists(path, ec))
      fail_input("{}: no tokenizer.json in this folder; expected a tokenizer.json file or a checkpoint folder holding one", where);
  } else if (!fs::exists(where, ec)) {
    fail_input("{}: tokenizer not found; expected a tokenizer.json file or a folder holding one", where);
  }
  std::shared_ptr<Tokenizer> t = build(read_regular_file(path, JsonLimits{}.max_bytes, "JSON"), path);
  Impl& m = *t->impl_;

  // bos / eos: tokenizer_config.json beside the file, else the post-processor's tokens.
  const fs::path config_path = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(config_path, ec)) {
    const Json config = parse_json_file(config_path.string());
    if (!config.is_object()) Node{config, config_path.string()}.fail("a JSON object");
    for (auto [key, dst] : {std::pair<const char*, std::optional<int64_t>*>{"bos_token", &m.bos}, {"eos_token", &m.eos}}) {
      if (auto name = config_token(config, key)) {
        auto id = t->token_to_id(*name);
        if (!id)
          fail_input("{}: {} {} is not a token of {}", config_path.string(), key, tok::quote_for_message(*name), path);
        *dst = id;
      }
    }
  }
  if (m.post) {
    if (!m.bos && m.post->prefix().size() == 1) m.bos = m.post->prefix()[0];
    if (!m.eos && m.post->suffix().size() == 1) m.eos = m.post->suffix()[0];
  }
  return t;
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (auto bad = tok::first_invalid_utf8(text))
    fail_input("text to encode is not valid UTF-8 (byte {})", *bad);
  const Impl& m = *impl_;
  std::vector<tok::Piece> pieces = m.added->extract_and_normalize(text, m.normalizer.get());
  if (m.pre_tokenizer) m.pre_tokenizer->pre_tokenize(pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const tok::Piece& p : pieces) {
    if (p.added_id >= 0) ids.push_back(p.added_id);
    else m.model->tokenize(p.text, ids);
  }
  if (add_special_tokens && m.post) ids = m.post->process(std::move(ids));
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id > INT32_MAX) continue;
    const int32_t i = static_cast<int32_t>(id);
    if (const tok::AddedToken* a = m.added->by_id(i)) {
      if (skip_special_tokens && a->special) continue;
      tokens.push_back(a->content);
    } else if (const std::string* s = m.model->id_to_token(i)) {
      if (skip_special_tokens && m.added->is_special(*s)) continue;
      tokens.push_back(*s);
    }
  }
  if (!m.decoder) {
    std::string out;
    for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
    return out;
  }
  std::string out;
  for (const std::string& s : m.decoder->decode_chain(std::move(tokens))) out += s;
  return out;
}

int64_t Tokenizer::vocab_size() const {
  int64_t n = std::max(impl_->model->id_limit(), impl_->added->id_limit());
  // A post-processor may add ids no token has (a template's special_tokens name their ids).
  if (impl_->post) {
    for (int32_t id : impl_->post->prefix()) n = std::max<int64_t>(n, int64_t{id} + 1);
    for (int32_t id : impl_->post->suffix()) n = std::max<int64_t>(n, int64_t{id} + 1);
  }
  return n;
}
std::optional<int64_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int64_t> Tokenizer::eos_id() const { return impl_->eos; }

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  int32_t id = impl_->added->token_to_id(token);
  if (id < 0) id = impl_->model->token_to_id(token);
  if (id < 0) return std::nullopt;
  return id;
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id > INT32_MAX) return std::nullopt;
  if (const tok::AddedToken* a = impl_->added->by_id(static_cast<int32_t>(id))) return a->content;
  if (const std::string* s = impl_->model->id_to_token(static_cast<int32_t>(id))) return *s;
  return std::nullopt;
}

bool Tokenizer::is_special(int64_t id) const {
  if (id < 0 || id > INT32_MAX) return false;
  const tok::AddedToken* a = impl_->added->by_id(static_cast<int32_t>(id));
  return a && a->special;
}

const std::string& Tokenizer::path() const { return impl_->path; }

std::string Tokenizer::summary() const {
  const Impl& m = *impl_;
  auto name = [&](const std::optional<int64_t>& id) {
    return id ? fmt::format("{} ({})", id_to_token(*id).value_or("?"), *id) : std::string("none");
  };
  return fmt::format("BPE ({}{}), {} ids, {} added tokens, bos {}, eos {}",
                     m.byte_level ? "byte-level" : "characters", m.model->byte_fallback() ? ", byte fallback" : "",
                     vocab_size(), m.added->tokens().size(), name(m.bos), name(m.eos));
}

void check_tokenizer_fits_model(const Tokenizer& tokenizer, int64_t model_vocab_size, const std::string& model) {
  if (tokenizer.vocab_size() > model_vocab_size)
    fail_input("{}: tokenizer ids go up to {} but model {} has vocab_size {}; use the model's own tokenizer",
               tokenizer.path(), tokenizer.vocab_size() - 1, model, model_vocab_size);
}

std::optional<size_t> invalid_utf8_offset(std::string_view text) { return tok::first_invalid_utf8(text); }

}  // namespace mp
