#include "distill/memory_check.h"

#include "common/error.h"
#include "distill/hidden_loss.h"
#include "model/accounting.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

namespace mp {
namespace {

std::string gib(int64_t bytes) { return fmt::format("{:.1f}", static_cast<double>(bytes) / static_cast<double>(kGiB)); }

std::string flags(ShardMode m, bool recompute) {
  std::string f = fmt::format("--shard {}", shard_mode_name(m));
  return recompute ? f + " --recompute" : f;
}

int64_t mode_index(ShardMode m) { return static_cast<int64_t>(m); }

// Flags that would make the run fit `card`, the cheapest change first.
std::vector<std::string> remedies(const JobPlan& p) {
  const ModelConfig& st = p.models.student;
  const ModelConfig* te = p.models.teacher_ptr();
  const PlanSettings& s = p.settings;
  const int64_t limit = p.card.usable_bytes;
  const bool can_recompute = s.hidden_pairs == 0;  // the hidden-state loss needs the kept activations
  std::vector<std::string> out;
  auto peak = [&](PlanSettings t) { return plan_rank_memory(st, te, t).peak; };
  if (!s.recompute && can_recompute) {
    PlanSettings t = s;
    t.recompute = true;
    if (peak(t) <= limit) out.push_back(fmt::format("--recompute ({} GiB)", gib(peak(t))));
  }
  if (s.world_size > 1 && out.empty()) {
    for (bool rc : {s.recompute, true}) {
      if (rc && !can_recompute) continue;
      for (ShardMode m : all_shard_modes()) {
        if (m == s.shard && rc == s.recompute) continue;
        PlanSettings t = s;
        t.shard = m, t.recompute = rc;
        if (peak(t) <= limit) {
          out.push_back(fmt::format("{} ({} GiB)", flags(m, rc), gib(peak(t))));
          break;
        }
      }
      if (!out.empty()) break;
    }
  }
  if (s.micro_batch > 1) {
    PlanSettings t = s;
    t.micro_batch = 1;
    if (peak(t) <= limit) out.push_back(fmt::format("--micro-batch 1 ({} GiB)", gib(peak(t))));
  }
  for (ShardMode m : {ShardMode::Optimizer, ShardMode::Full}) {
    for (bool rc : {s.recompute, true}) {
      if (rc && !can_recompute) continue;
      PlanSettings t = s;
      t.shard = m, t.recompute = rc;
      if (auto w = smallest_world_size(st, te, t, limit); w && *w > s.world_size) {
        out.push_back(fmt::format("{} on {} ranks", flags(m, rc), *w));
        break;
      }
    }
  }
  return out;
}

nlohmann::json rank_json(const RankMemory& r, int64_t usable) {
  return {{"student_weights_bytes", r.weights},
          {"gradients_bytes", r.gradients},
          {"masters_bytes", r.masters},
          {"moments_bytes", r.moments},
          {"teacher_weights_bytes", r.teacher},
          {"activations_bytes", r.activations},
          {"activations_no_recompute_bytes", r.activations_no_recompute},
          {"activations_recompute_bytes", r.activations_recompute},
          {"loss_workspace_bytes", r.loss_workspace},
          {"communication_bytes", r.communication},
          {"workspace_bytes", r.workspace},
          {"peak_bytes", r.peak},
          {"peak_phase", r.peak_phase},
          {"fits", r.peak <= usable}};
}

}  // namespace

JobModels job_models(const TrainConfig& c) {
  JobModels m;
  if (c.mode == "distill") {
    if (c.teacher.empty() || c.student.empty())
      fail_usage("distill needs --teacher and --student (checkpoint folders or config.json files)");
    m.student_path = c.student, m.teacher_path = c.teacher;
    m.teacher = load_config(c.teacher);
  } else {
    if (c.config.empty() == c.model.empty())
      fail_usage("train needs exactly one of --config or --model (a config.json file or a checkpoint folder)");
    m.student_path = c.config.empty() ? c.model : c.config;
  }
  m.student = load_config(m.student_path);
  return m;
}

PlanSettings plan_settings(const TrainConfig& c, const JobModels& m, int64_t world_size,
                           const std::string& fallback_shard) {
  PlanSettings s;
  s.seq_len = c.seq_len, s.micro_batch = c.micro_batch, s.global_batch = c.global_batch;
  s.world_size = world_size;
  const nlohmann::json j = train_config_to_json(c);
  s.shard = parse_shard_mode(j.contains("shard") ? j["shard"].get<std::string>() : fallback_shard);
  s.recompute = c.recompute, s.keep_ssd_states = c.keep_ssd_states;
  s.element_bytes = c.dtype == "fp32" || c.dtype == "float32" ? 4 : 2;
  s.loss = parse_loss_kind(c.loss);
  s.temperature = c.temperature;
  s.logit_slice = c.logit_slice;
  if (c.mode == "distill" && c.hidden_loss == "cosine" && m.teacher)
    s.hidden_pairs = static_cast<int64_t>(match_layers(m.student.num_layers(), m.teacher->num_layers(), c.hidden_map).size());
  return s;
}

Card card_of_size(const std::string& name, int64_t total_bytes) {
  return Card{name, std::max<int64_t>(0, total_bytes - kCudaContextBytes)};
}

const std::vector<Card>& reference_cards() {
  static const std::vector<Card> cards = {card_of_size("80 GB card", kCard80GB), card_of_size("141 GB card", kCard141GB)};
  return cards;
}

JobPlan make_job_plan(const std::string& mode, const JobModels& m, const PlanSettings& s, const Card& card) {
  JobPlan p;
  p.mode = mode;
  p.models = m;
  p.student_params = count_params(m.student).total();
  p.teacher_params = m.teacher ? count_params(*m.teacher).total() : 0;
  p.settings = s;
  p.card = card;
  for (ShardMode sm : all_shard_modes()) {
    PlanSettings t = s;
    t.shard = sm;
    p.by_mode.push_back(plan_rank_memory(m.student, m.teacher_ptr(), t));
  }
  p.run = p.by_mode[mode_index(s.shard)];
  p.fits = p.run.peak <= card.usable_bytes;
  for (const Card& c : reference_cards())
    for (bool rc : {false, true}) {
      SmallestWorld w{c, rc, {}};
      for (ShardMode sm : all_shard_modes()) {
        PlanSettings t = s;
        t.shard = sm, t.recompute = rc;
        w.by_mode.push_back(smallest_world_size(m.student, m.teacher_ptr(), t, c.usable_bytes));
      }
      p.smallest.push_back(w);
    }
  if (!p.fits) p.remedies = remedies(p);
  return p;
}

nlohmann::json job_plan_json(const JobPlan& p) {
  const PlanSettings& s = p.settings;
  nlohmann::json j = {{"mode", p.mode},
                      {"student", {{"path", p.models.student_path}, {"parameters", p.student_params}}},
                      {"seq_len", s.seq_len},
                      {"micro_batch", s.micro_batch},
                      {"global_batch", s.global_batch},
                      {"world_size", s.world_size},
                      {"shard", shard_mode_name(s.shard)},
                      {"recompute", s.recompute},
                      {"compute_bytes_per_element", s.element_bytes},
                      {"card", {{"name", p.card.name}, {"usable_bytes", p.card.usable_bytes}}},
                      {"fits", p.fits},
                      {"peak_bytes", p.run.peak}};
  if (p.models.teacher)
    j["teacher"] = {{"path", p.models.teacher_path}, {"parameters", p.teacher_params}};
  j["per_rank"] = nlohmann::json::object();
  for (ShardMode sm : all_shard_modes())
    j["per_rank"][shard_mode_name(sm)] = rank_json(p.by_mode[mode_index(sm)], p.card.usable_bytes);
  j["smallest_world_size"] = nlohmann::json::array();
  for (const SmallestWorld& w : p.smallest) {
    nlohmann::json e = {{"card", w.card.name}, {"usable_bytes", w.card.usable_bytes}, {"recompute", w.recompute}};
    for (ShardMode sm : all_shard_modes()) {
      const auto& v = w.by_mode[mode_index(sm)];
      e[shard_mode_name(sm)] = v ? nlohmann::json(*v) : nlohmann::json();
    }
    j["smallest_world_size"].push_back(e);
  }
  j["would_fit_with"] = p.remedies;
  return j;
}

void check_job_fits(const TrainConfig& c, int64_t world_size, const Card& card, const std::string& fallback_shard) {
  if (const char* v = std::getenv("MP_MEMORY_CHECK"); v && std::string(v) == "0") return;
  const JobModels m = job_models(c);
  const JobPlan p = make_job_plan(c.mode, m, plan_settings(c, m, world_size, fallback_shard), card);
  if (p.fits) return;
  const RankMemory& r = p.run;
  std::string fix = p.remedies.empty() ? "no shard mode, --recompute or world size up to 4096 makes it fit" : "";
  for (size_t i = 0; i < p.remedies.size(); ++i) fix += (i ? ", or " : "it would fit with ") + p.remedies[i];
  fail_input("{} does not fit on {}: the memory plan needs {} GiB per rank ({} rank(s), {}) and {} GiB is usable: "
             "student weights {}, gradients {}, masters {}, moments {}, teacher {}, activations {}, loss workspace {}, "
             "communication {}, workspace {} GiB, at its peak in the {}; {}; `minipuzzle {} --plan` prints the "
             "table, MP_MEMORY_CHECK=0 skips this check",
             c.mode, card.name, gib(r.peak), world_size, flags(p.settings.shard, p.settings.recompute),
             gib(card.usable_bytes), gib(r.weights), gib(r.gradients), gib(r.masters), gib(r.moments),
             gib(r.teacher), gib(r.activations), gib(r.loss_workspace), gib(r.communication), gib(r.workspace),
             r.peak_phase, fix, c.mode);
}

}  // namespace mp
