// Parity with Hugging Face transformers' NemotronH: fixtures made by
// scripts/parity/make_fixtures.py (tiny random models saved by transformers, several group
// counts, state sizes, conv kernels, GQA/MQA/MHA, single-file and sharded; sequences shorter than
// one chunk and several chunks long). Our fp32 logits must match to 1e-5 relative error (measured:
// at most 4.5e-7 on the CPU).
#include "model/forward.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "tests/tensor_checks.h"
#include "tests/test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace {

std::vector<std::string> fixture_cases() {
  std::vector<std::string> out;
  fs::path root = mp::test::source_path("tests/fixtures/parity");
  if (fs::is_directory(root))
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

using mp::test::rel_err;

TEST(Parity, FixturesArePresent) { EXPECT_GE(fixture_cases().size(), 3u); }

TEST(Parity, LogitsMatchTransformersFp32) {
  at::NoGradGuard ng;
  for (const std::string& dir : fixture_cases()) {
    mp::Model m = mp::load_model(dir + "/model", {at::kCPU, at::kFloat});
    auto inputs = mp::SafetensorsFile::open(dir + "/inputs.safetensors");
    auto logits = mp::SafetensorsFile::open(dir + "/logits.safetensors");
    for (const char* tag : {"short", "long"}) {
      at::Tensor ids = inputs->load(std::string("input_ids_") + tag);
      at::Tensor ref = logits->load(std::string("logits_") + tag);
      at::Tensor ours = mp::forward_logits(m, ids);
      double err = rel_err(ours, ref);
      EXPECT_LT(err, 1e-5) << dir << " " << tag << " L=" << ids.size(1);
      std::printf("parity %s %s L=%ld rel err %.2e\n", fs::path(dir).filename().c_str(), tag,
                  static_cast<long>(ids.size(1)), err);
    }
  }
}

TEST(Parity, CudaBf16AgreesWithCpuFp32) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA";
  at::NoGradGuard ng;
  for (const std::string& dir : fixture_cases()) {
    mp::Model cpu = mp::load_model(dir + "/model", {at::kCPU, at::kFloat});
    mp::Model gpu = cpu.to(at::kCUDA, at::kBFloat16);
    mp::Model gpu32 = cpu.to(at::kCUDA, at::kFloat);
    at::Tensor ids = mp::SafetensorsFile::open(dir + "/inputs.safetensors")->load("input_ids_long");
    at::Tensor ref = mp::forward_logits(cpu, ids);
    double e16 = rel_err(mp::forward_logits(gpu, ids.cuda()).cpu(), ref);
    double e32 = rel_err(mp::forward_logits(gpu32, ids.cuda()).cpu(), ref);
    EXPECT_LT(e16, 2e-2) << dir;
    EXPECT_LT(e32, 1e-4) << dir;
    std::printf("cuda %s bf16 rel err %.2e, fp32 %.2e\n", fs::path(dir).filename().c_str(), e16, e32);
  }
}

}  // namespace
