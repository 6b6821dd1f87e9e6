#include "search/budget.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_file.h"

#include <nlohmann/json.hpp>

namespace mp {

NumberFormat parse_number_format(const std::string& s, const std::string& where) {
  if (s == "fp32" || s == "float32") return NumberFormat::FP32;
  if (s == "bf16" || s == "bfloat16" || s == "fp16") return NumberFormat::BF16;
  if (s == "fp8") return NumberFormat::FP8;
  if (s == "nvfp4" || s == "fp4") return NumberFormat::NVFP4;
  fail_input("{}: unknown number format '{}'; expected fp32, bf16, fp8 or nvfp4", where, s);
}

const char* number_format_name(NumberFormat f) {
  switch (f) {
    case NumberFormat::FP32: return "fp32";
    case NumberFormat::BF16: return "bf16";
    case NumberFormat::FP8: return "fp8";
    case NumberFormat::NVFP4: return "nvfp4";
  }
  return "?";
}

double format_bytes(NumberFormat f, double values) {
  switch (f) {
    case NumberFormat::FP32: return 4.0 * values;
    case NumberFormat::BF16: return 2.0 * values;
    case NumberFormat::FP8: return values + 4.0;
    case NumberFormat::NVFP4: return values / 2.0 + values / 16.0 + 4.0;
  }
  return 0.0;
}

Budget load_budget(const std::string& path) {
  return budget_from_json_text(read_regular_file(path, JsonLimits{}.max_bytes, "JSON"), path);
}

Budget budget_from_json_text(const std::string& text, const std::string& source) {
  return with_json_source(source, [&] { return budget_from_json(parse_json_text(text, source), source); });
}

Budget budget_from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) fail_input("{}: expected a JSON object", path);
  Budget b;
  auto num = [&](const char* k, auto* out, double min) {
    if (!j.contains(k)) return;
    const double v = json_number(j[k], k, path, min, 1e15);
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(v);
  };
  auto fmt_field = [&](const char* k, NumberFormat* out) {
    if (!j.contains(k)) return;
    if (!j[k].is_string()) fail_input("{}: field '{}' must be a string", path, k);
    *out = parse_number_format(j[k].get<std::string>(), path + ": field '" + k + "'");
  };
  if (j.contains("name") && j["name"].is_string()) b.name = j["name"].get<std::string>();
  num("memory_limit_gib", &b.memory_limit_gib, 1e-9);
  num("context_tokens", &b.context_tokens, 1);
  num("batch", &b.batch, 1);
  num("prefill_chunk_tokens", &b.prefill_chunk_tokens, 1);
  fmt_field("weights", &b.weights);
  fmt_field("kv_cache", &b.kv_cache);
  fmt_field("mamba_conv_state", &b.mamba_conv_state);
  fmt_field("mamba_ssm_state", &b.mamba_ssm_state);
  if (j.contains("embeddings_bf16")) {
    if (!j["embeddings_bf16"].is_boolean()) fail_input("{}: field 'embeddings_bf16' must be true or false", path);
    b.embeddings_bf16 = j["embeddings_bf16"].get<bool>();
  }
  return b;
}

}  // namespace mp
