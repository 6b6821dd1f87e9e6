// The memory plan's terminal table and JSON (distill/memory_check.h holds the arithmetic).
// Table figures are GiB (2^30 bytes); the JSON keeps bytes.
#include "cli/format.h"
#include "cli/train_plan.h"
#include "model/device_memory.h"
#include "model/model.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace mp::cli {
namespace {

std::string g(int64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / static_cast<double>(kGiB)); }

}  // namespace

std::optional<Card> run_card(const std::string& gpu_memory, const std::string& device, int64_t local_rank) {
  if (!gpu_memory.empty())
    return card_of_size("--gpu-memory " + gpu_memory, parse_memory_size(gpu_memory, "--gpu-memory"));
  if (device.rfind("cuda", 0) != 0) return std::nullopt;
  const at::Device dev = parse_device(device == "cuda" ? "cuda:" + std::to_string(local_rank) : device);
  const std::optional<DeviceMemory> m = device_memory(dev);
  if (!m) return std::nullopt;
  return Card{fmt::format("cuda:{} ({} GiB free of {})", dev.has_index() ? dev.index() : 0, g(m->free_bytes),
                          g(m->total_bytes)),
              m->free_bytes};
}

void print_train_plan(const JobPlan& p, bool json) {
  if (json) {
    std::cout << job_plan_json(p).dump(2) << "\n";
    return;
  }
  const PlanSettings& s = p.settings;
  std::string out = fmt::format("{} plan: student {} ({} parameters)", p.mode, p.models.student_path,
                                billions(static_cast<double>(p.student_params)));
  if (p.models.teacher)
    out += fmt::format(", teacher {} ({})", p.models.teacher_path, billions(static_cast<double>(p.teacher_params)));
  out += fmt::format("\nsequence {} x micro-batch {} (global batch {}), {} rank(s), {} compute, card {}: {} GiB usable\n\n",
                     s.seq_len, s.micro_batch, s.global_batch, s.world_size, s.element_bytes == 2 ? "bf16" : "fp32",
                     p.card.name, g(p.card.usable_bytes));
  std::vector<std::vector<std::string>> rows = {{"GiB per rank"}};
  for (ShardMode m : all_shard_modes())
    rows[0].push_back(std::string("--shard ") + shard_mode_name(m) + (m == s.shard ? " *" : ""));
  auto row = [&](const std::string& name, auto field) {
    std::vector<std::string> r{name};
    for (const RankMemory& m : p.by_mode) r.push_back(field(m));
    rows.push_back(r);
  };
  row("student weights", [](const RankMemory& m) { return g(m.weights); });
  row("gradients", [](const RankMemory& m) { return g(m.gradients); });
  row("fp32 masters", [](const RankMemory& m) { return g(m.masters); });
  row("AdamW moments", [](const RankMemory& m) { return g(m.moments); });
  if (p.models.teacher) row("teacher weights", [](const RankMemory& m) { return g(m.teacher); });
  row(std::string("activations") + (s.recompute ? "" : " *"), [](const RankMemory& m) { return g(m.activations_no_recompute); });
  row(std::string("activations, --recompute") + (s.recompute ? " *" : ""),
      [](const RankMemory& m) { return g(m.activations_recompute); });
  row("loss workspace (logits)", [](const RankMemory& m) { return g(m.loss_workspace); });
  row("communication buffers", [](const RankMemory& m) { return g(m.communication); });
  row("workspace + allocator slack", [](const RankMemory& m) { return g(m.workspace); });
  row("peak", [](const RankMemory& m) { return g(m.peak); });
  row("  reached in", [](const RankMemory& m) { return m.peak_phase; });
  row("fits " + g(p.card.usable_bytes), [&](const RankMemory& m) { return m.peak <= p.card.usable_bytes ? "yes" : "no"; });
  out += table(rows);
  out += "* this run's settings. Peak: the largest of load, forward, backward and optimizer step (docs/distributed.md).\n\n";

  std::vector<std::vector<std::string>> w = {{"smallest world size that fits"}};
  for (ShardMode m : all_shard_modes()) w[0].push_back(std::string("--shard ") + shard_mode_name(m));
  for (const SmallestWorld& sw : p.smallest) {
    std::vector<std::string> r{fmt::format("{} ({} GiB){}", sw.card.name, g(sw.card.usable_bytes),
                                           sw.recompute ? ", --recompute" : "")};
    for (const auto& v : sw.by_mode) r.push_back(v ? std::to_string(*v) : "-");
    w.push_back(r);
  }
  out += table(w);
  out += fmt::format("\nthis run ({} rank(s), --shard {}{}): {} GiB per rank, {}", s.world_size, shard_mode_name(s.shard),
                     s.recompute ? " --recompute" : "", g(p.run.peak), p.fits ? "fits" : "does not fit");
  for (size_t i = 0; i < p.remedies.size(); ++i) out += (i ? ", or " : "; it would fit with ") + p.remedies[i];
  if (!p.fits && p.remedies.empty()) out += "; no shard mode, --recompute or world size up to 4096 makes it fit";
  std::cout << out << "\n";
}

}  // namespace mp::cli
