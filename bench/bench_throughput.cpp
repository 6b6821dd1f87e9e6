// Measures generation latency on this card and fits search's throughput model to it, then checks
// the model's predicted speed-ups against whole candidate models measured the same way.
//
//   bench_throughput measure --families demo,8b,56b --card "NVIDIA H200" --out-samples s.json --out-model m.json
//   bench_throughput check --throughput-model m.json --parent configs/nemotron-h-8b/config.json \
//       --budget B.json --auto 4 [--candidate CONFIG.json ...] --out check.json
//
// measure: single-type stacks (k Mamba, attention or MLP layers plus embedding and LM head) at
// each family's widths and narrower ones, prefill of L tokens and decode steps at context c, on
// random bf16 weights built on the device. Each sample is a whole model timed end to end (the same
// prefill / decode_step calls a generation makes), so the fit attributes time to layer types by
// their counts (search/throughput.h has the model).
// check: the parent and candidates (from a search under the budget, spread over the predicted
// speed-ups, and any given configs), each timed as prefill(P) + O decode steps at context P + O/2,
// against the prediction. Times: CUDA-synchronised wall clock, median of repeats; the models are
// held together and measured in turn within each repeat unless --sequential.
#include "bench/bench_util.h"
#include "model/config.h"
#include "model/decode.h"
#include "model/model.h"
#include "search/budget.h"
#include "search/search.h"
#include "search/space.h"
#include "search/throughput.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

namespace {

using Clock = std::chrono::steady_clock;

void sync(at::Device dev) {
  if (dev.is_cuda()) at::zeros({1}, at::TensorOptions().device(dev)).item<float>();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One prefill of `batch` x `length` random tokens into a fresh cache; median of `reps` after a warm-up.
double time_prefill(const mp::Model& m, at::Device dev, int64_t batch, int64_t length, int reps) {
  at::Tensor ids = at::randint(0, m.config.vocab_size, {batch, length}, at::TensorOptions().dtype(at::kLong)).to(dev);
  std::vector<double> t;
  for (int r = 0; r <= reps; ++r) {
    mp::InferenceCache cache(m, batch, length + 1);
    sync(dev);
    const auto t0 = Clock::now();
    mp::prefill(m, ids, cache);
    sync(dev);
    if (r > 0) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(t);
}

// Seconds per decode step at context `context` (the cache filled with random state), median over
// `reps` runs of `steps` steps each.
double time_decode(const mp::Model& m, at::Device dev, int64_t batch, int64_t context, int steps, int reps) {
  at::Tensor ids = at::randint(0, m.config.vocab_size, {batch}, at::TensorOptions().dtype(at::kLong)).to(dev);
  std::vector<double> t;
  mp::InferenceCache cache(m, batch, context + steps + 8);
  mp::fill_for_benchmark(cache, context, 7);
  for (int r = 0; r <= reps; ++r) {
    // Back to `context` tokens seen (the states' values do not change the work).
    cache.length = context;
    for (mp::LayerCache& lc : cache.layers)
      if (lc.type == mp::LayerType::Attention) lc.length = context;
    mp::decode_step(m, cache, ids);  // first step after a rewind: not timed
    sync(dev);
    const auto t0 = Clock::now();
    for (int s = 0; s < steps; ++s) mp::decode_step(m, cache, ids);
    sync(dev);
    if (r > 0) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / steps);
  }
  return median(t);
}

// The family's config with `k` layers of one type.
mp::ModelConfig stack_of(mp::ModelConfig c, mp::LayerType t, int64_t k) {
  c.layers.assign(static_cast<size_t>(k), t);
  return c;
}

struct Variant {
  std::string name;
  mp::ModelConfig config;
};

// The family's widths, then 3/4 of the MLP width, Mamba heads and query heads, then 3/4 of the
// hidden size: the axes a search moves. Divisibility (heads by kv heads, Mamba heads by groups)
// is kept by rounding to a multiple.
std::vector<Variant> width_variants(const mp::ModelConfig& base) {
  auto down = [](int64_t v, int64_t multiple) { return std::max(multiple, (v * 3 / 4) / multiple * multiple); };
  std::vector<Variant> out{{"base", base}};
  mp::ModelConfig narrow = base;
  narrow.intermediate_size = down(base.intermediate_size, 64);
  narrow.mamba_num_heads = down(base.mamba_num_heads, base.n_groups);
  narrow.num_attention_heads = down(base.num_attention_heads, base.num_key_value_heads);
  out.push_back({"narrow", narrow});
  mp::ModelConfig thin = base;
  thin.hidden_size = down(base.hidden_size, 64);
  out.push_back({"thin", thin});
  return out;
}

struct Family {
  std::string name, config;
  std::vector<int64_t> prefill_lengths, decode_contexts;
};

std::vector<Family> families_named(const std::string& list, const std::string& root) {
  const std::vector<Family> known = {
      {"demo", root + "/configs/demo/config.json", {256, 2048}, {256, 4096}},
      {"8b", root + "/configs/nemotron-h-8b/config.json", {2048, 16384, 65536}, {1024, 65536, 262144}},
      {"56b", root + "/configs/nemotron-h-56b/config.json", {2048, 65536}, {1024, 65536, 262144}},
  };
  std::vector<Family> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t end = std::min(list.find(',', pos), list.size());
    const std::string name = list.substr(pos, end - pos);
    auto it = std::find_if(known.begin(), known.end(), [&](const Family& f) { return f.name == name; });
    if (it == known.end()) throw std::runtime_error("unknown family '" + name + "' (demo, 8b, 56b)");
    out.push_back(*it);
    pos = end + 1;
  }
  return out;
}

int fit_and_write(const std::vector<mp::ThroughputSample>& samples, const std::string& card, const std::string& commit,
                  const std::string& date, const std::string& out_model);

int fit_samples(const std::string& path, const std::string& card, const std::string& commit, const std::string& date,
                const std::string& out_model) {
  std::vector<mp::ThroughputSample> samples;
  for (const auto& j : nlohmann::json::parse(std::ifstream(path))) samples.push_back(mp::sample_from_json(j, path));
  return fit_and_write(samples, card, commit, date, out_model);
}

// The recorded measurements of a check against another model's predictions (no GPU needed).
int rescore(const std::string& throughput, const std::string& check_path, const std::string& out) {
  const mp::ThroughputModel tm = mp::load_throughput(throughput);
  nlohmann::json doc = nlohmann::json::parse(std::ifstream(check_path));
  const mp::Workload w{doc["workload"]["batch"], doc["workload"]["prompt_tokens"], doc["workload"]["output_tokens"]};
  const mp::ModelConfig parent = mp::load_config(doc["parent"].get<std::string>());
  const mp::GenerationEstimate pp = tm.estimate(parent, w);
  const double parent_measured = doc["parent_measured"]["generation_s"];
  doc["parent_predicted"] = {{"prefill_s", pp.prefill_s}, {"decode_s", pp.decode_s_per_token}, {"generation_s", pp.generation_s}};
  double worst = 0;
  std::cout << fmt::format("{:<36} {:>9} {:>9} {:>8}\n", "candidate", "speedup", "pred. sp", "error");
  for (auto& row : doc["candidates"]) {
    if (!row.contains("measured")) continue;
    const mp::ModelConfig c = mp::config_from_json(row["config"], check_path);
    const mp::GenerationEstimate pc = tm.estimate(c, w);
    const double ms = parent_measured / row["measured"]["generation_s"].get<double>(), ps = pp.generation_s / pc.generation_s;
    row["predicted"] = {{"prefill_s", pc.prefill_s}, {"decode_s", pc.decode_s_per_token}, {"generation_s", pc.generation_s},
                        {"speedup", ps}};
    row["speedup_relative_error"] = ps / ms - 1.0;
    worst = std::max(worst, std::abs(ps / ms - 1.0));
    std::cout << fmt::format("{:<36} {:>8.3f}x {:>8.3f}x {:>7.1f}%\n", row["name"].get<std::string>().substr(0, 36), ms, ps,
                             100 * (ps / ms - 1.0));
  }
  doc["throughput_model"] = throughput;
  doc["worst_speedup_relative_error"] = worst;
  std::cout << fmt::format("worst speed-up error {:.1f}%\n", 100 * worst);
  if (!out.empty()) std::ofstream(out) << doc.dump(2) << "\n";
  return 0;
}

int measure(const std::string& families, const std::string& root, at::Device dev, const std::string& card,
            const std::string& commit, const std::string& date, int reps, const std::string& out_samples,
            const std::string& out_model) {
  std::vector<mp::ThroughputSample> samples;
  const auto t_all = Clock::now();
  for (const Family& f : families_named(families, root)) {
    const mp::ModelConfig base = mp::load_config(f.config);
    for (const Variant& v : width_variants(base)) {
      for (mp::LayerType t : {mp::LayerType::Mamba, mp::LayerType::Attention, mp::LayerType::Mlp}) {
        for (int64_t k : {1, 3}) {
          const mp::ModelConfig c = stack_of(v.config, t, k);
          const mp::Model m = mp::bench::random_model_on(c, dev, at::kBFloat16);
          for (int64_t L : f.prefill_lengths) {
            const double s = time_prefill(m, dev, 1, L, reps);
            samples.push_back({c, mp::Phase::Prefill, 1, L, s});
            std::cout << fmt::format("{:>4} {:<6} {:<9} x{}  prefill L={:<6} {:9.3f} ms\n", f.name, v.name,
                                     mp::layer_type_name(t), k, L, 1e3 * s) << std::flush;
          }
          for (int64_t ctx : f.decode_contexts) {
            const double s = time_decode(m, dev, 1, ctx, 16, reps);
            samples.push_back({c, mp::Phase::Decode, 1, ctx, s});
            std::cout << fmt::format("{:>4} {:<6} {:<9} x{}  decode  c={:<6} {:9.3f} ms\n", f.name, v.name,
                                     mp::layer_type_name(t), k, ctx, 1e3 * s) << std::flush;
          }
        }
      }
    }
  }
  nlohmann::json js = nlohmann::json::array();
  for (const auto& s : samples) js.push_back(mp::sample_to_json(s));
  if (!out_samples.empty()) std::ofstream(out_samples) << js.dump(1) << "\n";
  std::cout << fmt::format("{} samples in {:.0f} s\n", samples.size(), std::chrono::duration<double>(Clock::now() - t_all).count());
  return fit_and_write(samples, card, commit, date, out_model);
}

int fit_and_write(const std::vector<mp::ThroughputSample>& samples, const std::string& card, const std::string& commit,
                  const std::string& date, const std::string& out_model) {
  mp::ThroughputModel tm = mp::fit_throughput(samples);
  tm.card = card, tm.commit = commit, tm.date = date;
  tm.runtime = "minipuzzle prefill / decode_step, eager LibTorch, bf16, own SSD + conv1d CUDA kernels";
  if (!out_model.empty()) std::ofstream(out_model) << mp::throughput_to_json(tm).dump(2) << "\n";
  std::cout << fmt::format("fit ({} samples, decode {}): prefill rms {:.1f}% (worst {:.1f}%), decode rms {:.1f}% "
                           "(worst {:.1f}%)\n",
                           samples.size(), tm.decode_combine == mp::DecodeCombine::Overlap ? "max(host, device)" : "sum",
                           100 * tm.rms_rel_error[0], 100 * tm.max_rel_error[0], 100 * tm.rms_rel_error[1],
                           100 * tm.max_rel_error[1]);
  return 0;
}

struct Measured {
  double prefill_s = 0, decode_s = 0, generation_s = 0;
  bool ok = false;
  std::string why;
};

Measured measure_generation(const mp::ModelConfig& c, at::Device dev, const mp::Workload& w, int reps) {
  Measured r;
  try {
    const mp::Model m = mp::bench::random_model_on(c, dev, at::kBFloat16);
    r.prefill_s = time_prefill(m, dev, w.batch, w.prompt_tokens, reps);
    r.decode_s = time_decode(m, dev, w.batch, w.prompt_tokens + w.output_tokens / 2, 32, reps);
    r.generation_s = r.prefill_s + static_cast<double>(w.output_tokens) * r.decode_s;
    r.ok = true;
  } catch (const c10::Error& e) {
    r.why = std::string(e.what_without_backtrace()).substr(0, 200);
  }
  return r;
}

// All models resident at once, measured in turn within each repeat, so that drift of the card's
// clocks or the host's launch rate over the run falls on every model alike (a decode step at
// batch 1 is tens of small kernels a layer, sensitive to the host). Medians over repeats.
std::vector<Measured> measure_interleaved(const std::vector<mp::ModelConfig>& configs, at::Device dev,
                                          const mp::Workload& w, int reps) {
  std::vector<mp::Model> models;
  for (size_t i = 0; i < configs.size(); ++i) models.push_back(mp::bench::random_model_on(configs[i], dev, at::kBFloat16, i));
  const int64_t ctx = w.prompt_tokens + w.output_tokens / 2;
  std::vector<std::vector<double>> pre(models.size()), dec(models.size());
  for (int r = 0; r <= reps; ++r) {  // r = 0 warms every model up and is not counted
    for (size_t i = 0; i < models.size(); ++i) {
      const double p = time_prefill(models[i], dev, w.batch, w.prompt_tokens, 1);
      const double d = time_decode(models[i], dev, w.batch, ctx, 64, 1);
      if (r > 0) pre[i].push_back(p), dec[i].push_back(d);
    }
  }
  std::vector<Measured> out(models.size());
  for (size_t i = 0; i < models.size(); ++i) {
    out[i].prefill_s = median(pre[i]), out[i].decode_s = median(dec[i]);
    out[i].generation_s = out[i].prefill_s + static_cast<double>(w.output_tokens) * out[i].decode_s;
    out[i].ok = true;
  }
  return out;
}

int check(const std::string& throughput, const std::string& parent_path, const std::string& budget_path, int64_t n_auto,
          const std::vector<std::string>& candidate_paths, const mp::Workload& w, at::Device dev, int reps,
          bool sequential, const std::string& out) {
  const mp::ThroughputModel tm = mp::load_throughput(throughput);
  const mp::ModelConfig parent = mp::load_config(parent_path);
  std::vector<std::pair<std::string, mp::ModelConfig>> cands;
  for (const std::string& p : candidate_paths) cands.push_back({p, mp::load_config(p)});
  if (n_auto > 0) {
    // Feasible candidates spread over the predicted speed-ups: the fastest, the slowest, and evenly between.
    const mp::Budget budget = budget_path.empty() ? mp::Budget{} : mp::load_budget(budget_path);
    mp::SearchResult r = mp::run_search(parent, budget, mp::default_space(parent), {}, {},
                                        mp::SpeedPrediction{tm, w});
    std::sort(r.feasible.begin(), r.feasible.end(), [](const auto& a, const auto& b) { return a.speedup < b.speedup; });
    for (int64_t i = 0; i < n_auto && !r.feasible.empty(); ++i) {
      const size_t at = n_auto == 1 ? r.feasible.size() - 1 : i * (r.feasible.size() - 1) / (n_auto - 1);
      cands.push_back({r.feasible[at].candidate.key(), r.feasible[at].config});
    }
  }
  std::vector<Measured> measured;
  if (sequential) {
    measured.push_back(measure_generation(parent, dev, w, reps));
    for (const auto& [name, c] : cands) measured.push_back(measure_generation(c, dev, w, reps));
  } else {
    std::vector<mp::ModelConfig> all{parent};
    for (const auto& [name, c] : cands) all.push_back(c);
    measured = measure_interleaved(all, dev, w, reps);
  }
  const Measured parent_measured = measured[0];
  if (!parent_measured.ok) throw std::runtime_error("parent: " + parent_measured.why);
  const mp::GenerationEstimate pp = tm.estimate(parent, w);
  nlohmann::json rows = nlohmann::json::array();
  std::cout << fmt::format("workload: batch {}, {} prompt + {} new tokens; parent {} measured {:.3f} s (predicted {:.3f} s)\n",
                           w.batch, w.prompt_tokens, w.output_tokens, parent.pattern(), parent_measured.generation_s,
                           pp.generation_s);
  std::cout << fmt::format("{:<36} {:>10} {:>10} {:>9} {:>9} {:>8}\n", "candidate", "measured s", "predicted", "speedup",
                           "pred. sp", "error");
  double worst = 0;
  for (size_t k = 0; k < cands.size(); ++k) {
    const auto& [name, c] = cands[k];
    const Measured mc = measured[k + 1];
    const mp::GenerationEstimate pc = tm.estimate(c, w);
    nlohmann::json row = {{"name", name}, {"pattern", c.pattern()}, {"config", mp::config_to_json(c)},
                          {"predicted", {{"prefill_s", pc.prefill_s}, {"decode_s", pc.decode_s_per_token},
                                         {"generation_s", pc.generation_s}, {"speedup", pp.generation_s / pc.generation_s}}}};
    if (!mc.ok) {
      row["skipped"] = mc.why;
      std::cout << fmt::format("{:<36} skipped: {}\n", name.substr(0, 36), mc.why);
    } else {
      const double ms = parent_measured.generation_s / mc.generation_s, ps = pp.generation_s / pc.generation_s;
      const double err = ps / ms - 1.0;
      worst = std::max(worst, std::abs(err));
      row["measured"] = {{"prefill_s", mc.prefill_s}, {"decode_s", mc.decode_s}, {"generation_s", mc.generation_s},
                         {"speedup", ms}};
      row["speedup_relative_error"] = err;
      std::cout << fmt::format("{:<36} {:>10.3f} {:>10.3f} {:>8.3f}x {:>8.3f}x {:>7.1f}%\n", name.substr(0, 36),
                               mc.generation_s, pc.generation_s, ms, ps, 100 * err);
    }
    rows.push_back(row);
  }
  nlohmann::json doc = {{"throughput_model", throughput}, {"card", tm.card}, {"parent", parent_path},
                        {"workload", {{"batch", w.batch}, {"prompt_tokens", w.prompt_tokens}, {"output_tokens", w.output_tokens}}},
                        {"parent_measured", {{"prefill_s", parent_measured.prefill_s}, {"decode_s", parent_measured.decode_s},
                                             {"generation_s", parent_measured.generation_s}}},
                        {"parent_predicted", {{"prefill_s", pp.prefill_s}, {"decode_s", pp.decode_s_per_token},
                                              {"generation_s", pp.generation_s}}},
                        {"candidates", rows}, {"worst_speedup_relative_error", worst},
                        {"measurement", sequential ? "one model at a time, median of repeats"
                                                   : "all models resident, measured in turn each repeat, medians"}};
  if (!out.empty()) std::ofstream(out) << doc.dump(2) << "\n";
  std::cout << fmt::format("worst speed-up error {:.1f}%\n", 100 * worst);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"throughput model: measure, fit, check"};
  app.require_subcommand(1);
  std::string device = "cuda", card = "unknown", commit = "", date = "", root = ".";
  int reps = 3;
  app.add_option("--device", device)->capture_default_str();
  app.add_option("--reps", reps, "Timed repeats (median)")->capture_default_str();
  app.fallthrough();  // --device / --reps may also follow the subcommand

  CLI::App* me = app.add_subcommand("measure", "Time single-type stacks and fit the model");
  std::string families = "demo,8b,56b", out_samples, out_model;
  me->add_option("--families", families)->capture_default_str();
  me->add_option("--root", root, "Source tree (for configs/)")->capture_default_str();
  me->add_option("--card", card)->capture_default_str();
  me->add_option("--commit", commit);
  me->add_option("--date", date);
  me->add_option("--out-samples", out_samples);
  me->add_option("--out-model", out_model);

  std::string throughput, out;
  CLI::App* fi = app.add_subcommand("fit", "Fit a model to recorded samples (measure --out-samples)");
  std::string samples_in;
  fi->add_option("--samples", samples_in)->required();
  fi->add_option("--card", card)->capture_default_str();
  fi->add_option("--commit", commit);
  fi->add_option("--date", date);
  fi->add_option("--out-model", out_model);

  CLI::App* rs = app.add_subcommand("rescore", "Predictions of another model for a recorded check's measurements");
  std::string check_in;
  rs->add_option("--check", check_in, "JSON written by check --out")->required();
  rs->add_option("--throughput-model", throughput)->required();
  rs->add_option("--out", out);

  CLI::App* ch = app.add_subcommand("check", "Predicted against measured speed-ups of whole candidates");
  std::string parent, budget;
  std::vector<std::string> candidates;
  int64_t n_auto = 0;
  mp::Workload w;
  ch->add_option("--throughput-model", throughput)->required();
  ch->add_option("--parent", parent)->required();
  ch->add_option("--budget", budget);
  ch->add_option("--auto", n_auto, "Candidates taken from a search under --budget")->capture_default_str();
  ch->add_option("--candidate", candidates, "Candidate config.json (repeatable)");
  ch->add_option("--prompt-tokens", w.prompt_tokens)->capture_default_str();
  ch->add_option("--output-tokens", w.output_tokens)->capture_default_str();
  ch->add_option("--batch", w.batch)->capture_default_str();
  bool sequential = false;
  ch->add_flag("--sequential", sequential, "One model on the card at a time (models too big to hold together)");
  ch->add_option("--out", out);
  CLI11_PARSE(app, argc, argv);

  try {
    at::NoGradGuard no_grad;
    const at::Device dev = mp::parse_device(device);
    if (me->parsed()) return measure(families, root, dev, card, commit, date, reps, out_samples, out_model);
    if (fi->parsed()) return fit_samples(samples_in, card, commit, date, out_model);
    if (rs->parsed()) return rescore(throughput, check_in, out);
    return check(throughput, parent, budget, n_auto, candidates, w, dev, reps, sequential, out);
  } catch (const std::exception& e) {
    std::cerr << "bench_throughput: " << e.what() << "\n";
    return 1;
  }
}
