// A deployment budget: the card, the number formats, the context the model must serve.
// Read from JSON (configs/budgets/*.json); every field named in errors.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace mp {

// Storage formats for weights and caches.
//   bf16 / fp16: 2 bytes a value.
//   fp8:   1 byte a value + one fp32 scale per tensor.
//   nvfp4: 4 bits a value + one fp8 (E4M3) scale per 16 values + one fp32 scale per tensor
//          (4.5 bits a value), NVIDIA's NVFP4 block format.
//   fp32:  4 bytes a value.
enum class NumberFormat { FP32, BF16, FP8, NVFP4 };
NumberFormat parse_number_format(const std::string& s, const std::string& where);
const char* number_format_name(NumberFormat f);
// Bytes to store `values` numbers of one tensor in format f (scales included).
double format_bytes(NumberFormat f, double values);

struct Budget {
  std::string name = "default";
  double memory_limit_gib = 31.7;       // what a candidate may use in total
  NumberFormat weights = NumberFormat::BF16;
  bool embeddings_bf16 = false;         // keep embedding table and LM head in bf16
  NumberFormat kv_cache = NumberFormat::BF16;
  NumberFormat mamba_conv_state = NumberFormat::BF16;
  NumberFormat mamba_ssm_state = NumberFormat::FP32;
  int64_t context_tokens = 8192;
  int64_t batch = 1;
  int64_t prefill_chunk_tokens = 2048;  // activation workspace is sized for a prefill chunk
};

Budget load_budget(const std::string& path);  // bad input naming the file and field
Budget budget_from_json(const nlohmann::json& j, const std::string& source);
Budget budget_from_json_text(const std::string& text, const std::string& source);

}  // namespace mp
