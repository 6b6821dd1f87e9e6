#include "distill/trainer.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "data/sampler.h"
#include "distill/checkpoint.h"
#include "distill/curves.h"
#include "distill/hidden_loss.h"
#include "distill/kd_loss.h"
#include "distill/metrics.h"
#include "distill/optim.h"
#include "distill/schedule.h"
#include "model/device_memory.h"
#include "distill/shard/sharded_model.h"
#include "model/forward.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

namespace fs = std::filesystem;

namespace mp {
namespace {

nlohmann::json stats_json(const LmStats& s) {
  return {{"loss", s.loss()}, {"accuracy", s.accuracy()}, {"bits_per_token", s.bits_per_token()},
          {"perplexity", s.perplexity()}, {"tokens", s.tokens}};
}

at::ScalarType compute_dtype(const TrainConfig& c, at::Device dev) {
  if (c.dtype == "auto") return dev.is_cuda() ? at::kBFloat16 : at::kFloat;
  return parse_dtype(c.dtype);
}

// A resumed run must keep every setting that shapes the result (see resume_may_change).
void check_resume_config(const nlohmann::json& saved, const TrainConfig& now, const std::string& source) {
  const nlohmann::json cur = train_config_to_json(now);
  for (auto it = cur.begin(); it != cur.end(); ++it) {
    if (resume_may_change(it.key())) continue;
    const nlohmann::json was = saved.contains(it.key()) ? saved[it.key()] : nlohmann::json();
    if (was != it.value())
      fail_input("{}: this run's '{}' is {} but the checkpoint's is {}; a resumed run must keep it (or use a new "
                 "--output)", source, it.key(), it.value().dump(), was.dump());
  }
}

// The student as the optimizer sees it: fp32 masters inside AdamW, and the model the forward
// pass reads. In fp32 the model's tensors are the masters themselves.
struct Student {
  Model model;
  std::unique_ptr<AdamW> opt;
  bool shares_masters = false;

  void bind(const Model& base, at::Device dev, at::ScalarType dt, const AdamWOptions& ao) {
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (const auto& [n, t] : base.ordered()) params.emplace_back(n, t.to(dev, at::kFloat));
    opt = std::make_unique<AdamW>(params, ao);
    model.config = base.config;
    model.config.dtype = dtype_config_name(dt);
    shares_masters = dt == at::kFloat;
    rebind(dt);
  }
  // (Re)creates the model tensors from the masters (after a resume restored them).
  void rebind(at::ScalarType dt) {
    model.weights.clear();
    for (size_t i = 0; i < opt->names().size(); ++i) {
      at::Tensor w = shares_masters ? opt->masters()[i] : opt->masters()[i].to(dt);
      w.set_requires_grad(true);
      model.weights[opt->names()[i]] = w;
    }
  }
  std::vector<at::Tensor> weights() const {
    std::vector<at::Tensor> w;
    for (const std::string& n : opt->names()) w.push_back(model.weights.at(n));
    return w;
  }
  std::vector<at::Tensor> grads() const {
    std::vector<at::Tensor> g;
    for (const std::string& n : opt->names()) {
      const at::Tensor& w = model.weights.at(n);
      g.push_back(w.grad().defined() ? w.grad() : at::zeros_like(w));
    }
    return g;
  }
  void after_step() {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < opt->names().size(); ++i) {
      at::Tensor& w = model.weights.at(opt->names()[i]);
      w.mutable_grad() = at::Tensor();
      if (!shares_masters) w.copy_(opt->masters()[i]);
    }
  }
  // Weights (when not the masters), masters, moments and a whole gradient in the compute dtype.
  int64_t held_bytes() const {
    int64_t b = 0;
    for (size_t i = 0; i < opt->names().size(); ++i) {
      const at::Tensor& w = model.weights.at(opt->names()[i]);
      const int64_t wb = w.numel() * static_cast<int64_t>(w.element_size());
      b += 3 * opt->masters()[i].numel() * 4 + wb + (shares_masters ? 0 : wb);
    }
    return b;
  }
  Model detached() const {
    Model m;
    m.config = model.config;
    for (const auto& [n, t] : model.weights) m.weights[n] = t.detach();
    return m;
  }
};

// The first weight holding NaN or infinity, if any: checked before a checkpoint is written, so
// that every checkpoint a run leaves is one a resume can continue from.
std::optional<std::string> non_finite_weight(const Model& m) {
  for (const auto& [name, t] : m.weights)
    if (t.is_floating_point() && !at::isfinite(t).all().item<bool>()) return name;
  return std::nullopt;
}

// The first line of a LibTorch message (its allocator adds advice and a backtrace).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct MicroLosses {
  double loss = 0.0, kl = 0.0, ce = 0.0, hidden = 0.0;
};

}  // namespace

nlohmann::json TrainSummary::to_json() const {
  nlohmann::json j = {{"mode", mode}, {"start_step", start_step}, {"steps_done", steps_done},
                      {"total_steps", total_steps}, {"tokens", tokens}, {"parameters", parameters},
                      {"seconds", seconds}, {"tokens_per_s", tokens_per_s}, {"seconds_per_step", seconds_per_step},
                      {"shard", shard}, {"state_bytes_per_rank", state_bytes_per_rank},
                      {"last_train", {{"loss", last_loss}, {"kl", last_kl}, {"ce", last_ce}}},
                      {"finished", finished}, {"output", output_dir}};
  if (eval_start) j["eval_start"] = stats_json(*eval_start);
  if (eval_end) j["eval_end"] = stats_json(*eval_end);
  if (teacher_eval) j["eval_teacher"] = stats_json(*teacher_eval);
  if (peak_gpu_bytes) j["peak_gpu_bytes"] = *peak_gpu_bytes;
  if (peak_gpu_reserved_bytes) j["peak_gpu_reserved_bytes"] = *peak_gpu_reserved_bytes;
  return j;
}

TrainSummary run_training(const TrainConfig& cfg, const TrainHooks& hooks) {
  validate_train_config(cfg, hooks.world_size);
  const bool distill = cfg.mode == "distill";
  const bool main_rank = hooks.rank == 0;
  const LossKind kind = parse_loss_kind(cfg.loss);
  const int64_t total = cfg.total_steps();
  const at::Device dev = parse_device(cfg.device);
  const at::ScalarType dt = compute_dtype(cfg, dev);
  const int64_t L = cfg.seq_len, accum = cfg.global_batch / (cfg.micro_batch * hooks.world_size);
  // At world size 1 there is nothing to split: every mode runs as none.
  const shard::ShardMode smode = hooks.world_size > 1 ? shard::parse_shard_mode(cfg.shard) : shard::ShardMode::None;
  if (smode != shard::ShardMode::None && !hooks.comm)
    fail_runtime("--shard {}: rank {} of {} has no communicator", cfg.shard, hooks.rank, hooks.world_size);

  // 1. Where to start (reads only).
  std::optional<std::string> resume_dir;
  TrainerState state;
  {
    std::vector<std::string> inputs = {cfg.config, cfg.model, cfg.teacher, cfg.student};
    for (const std::string& prefix : {cfg.data, cfg.eval_data})
      for (const std::string& f : token_data_files(prefix)) inputs.push_back(f);
    resume_dir = run_folder_start(cfg.output, cfg.resume, cfg.overwrite, inputs, main_rank);
    if (resume_dir) {
      state = read_trainer_state(*resume_dir);
      check_resume_config(state.config, cfg, *resume_dir + "/trainer_state.json");
    }
  }

  // 2. Models and data, all checked before anything is written.
  Model base = resume_dir ? load_model(*resume_dir)
               : distill  ? load_model(cfg.student)
               : cfg.model.empty() ? make_random_model(load_config(cfg.config), cfg.seed, at::kFloat)
                                   : load_model(cfg.model);
  // Tokenizer and other non-weight files of the model trained follow it into every checkpoint.
  const std::string companions = distill ? cfg.student : cfg.model;
  std::optional<Model> teacher;
  if (distill) {
    LoadOptions lo;
    lo.device = dev;
    lo.dtype = dt;
    teacher = load_model(cfg.teacher, lo);
    if (teacher->config.vocab_size != base.config.vocab_size)
      fail_input("{}: teacher vocabulary {} differs from the student's {} ({}); distillation needs one vocabulary",
                 cfg.teacher, teacher->config.vocab_size, base.config.vocab_size, cfg.student);
  }
  const int64_t vocab = base.config.vocab_size;
  WindowSampler sampler(IndexedDataset::open(cfg.data), L, cfg.seed, vocab);
  at::Tensor eval_windows;
  if (!cfg.eval_data.empty() && main_rank) {
    WindowSampler ev(IndexedDataset::open(cfg.eval_data), L, cfg.seed, vocab);
    eval_windows = ev.fixed_windows(std::min(cfg.eval_samples, ev.num_windows()));
  }
  LayerPairs pairs;
  if (cfg.hidden_loss == "cosine") {
    pairs = match_layers(base.config.num_layers(), teacher->config.num_layers(), cfg.hidden_map);
    if (base.config.hidden_size != teacher->config.hidden_size)
      fail_input("--hidden-loss cosine: student hidden size {} differs from the teacher's {}", base.config.hidden_size,
                 teacher->config.hidden_size);
  }

  AdamWOptions ao;
  ao.beta1 = cfg.beta1, ao.beta2 = cfg.beta2, ao.eps = cfg.adam_eps, ao.weight_decay = cfg.weight_decay;
  Student student;
  student.bind(base, dev, dt, ao);
  if (resume_dir) {
    load_optimizer_state(*resume_dir, *student.opt, state.optimizer_steps);
    student.rebind(dt);
    sampler.set_position(state.sampler_position);
  }
  const int64_t base_layers = base.config.num_layers();
  base = Model();  // the masters hold the weights now

  // 3. Output folder and records.
  TrainSummary sum;
  sum.mode = cfg.mode;
  sum.start_step = state.step;
  sum.total_steps = total;
  sum.tokens = state.tokens;
  for (const at::Tensor& t : student.opt->masters()) sum.parameters += t.numel();
  std::unique_ptr<MetricsLog> log;
  if (main_rank) {
    if (cfg.overwrite) clear_run_folder(cfg.output);
    fs::create_directories(cfg.output);
    remove_partial_checkpoints(cfg.output);
    write_file_atomic(cfg.output + "/train_config.json", train_config_to_json(cfg).dump(2) + "\n");
    log = std::make_unique<MetricsLog>(cfg.output + "/metrics.jsonl", resume_dir ? state.step : -1);
  }
  auto record = [&](const nlohmann::json& j) {
    if (log) log->append(j);
  };
  auto evaluate = [&](int64_t step, const Model& m, const char* who) {
    LmStats s = lm_stats(m, eval_windows, cfg.micro_batch);
    nlohmann::json j = stats_json(s);
    j["type"] = "eval", j["step"] = step, j["model"] = who;
    record(j);
    return s;
  };
  if (eval_windows.defined() && !resume_dir) {
    if (teacher) sum.teacher_eval = evaluate(0, *teacher, "teacher");
    sum.eval_start = evaluate(0, student.model, "student");
  }

  // The sharded student (and teacher) replace the whole replicas from here on.
  std::unique_ptr<shard::ShardedStudent> sharded;
  std::unique_ptr<shard::ShardedTeacher> sharded_teacher;
  const int64_t teacher_layers = teacher ? teacher->config.num_layers() : 1;
  if (smode != shard::ShardMode::None) {
    sharded = std::make_unique<shard::ShardedStudent>(*student.opt, student.model.config, smode, dt, *hooks.comm);
    student = Student();
    if (teacher && smode == shard::ShardMode::Full) {
      sharded_teacher = std::make_unique<shard::ShardedTeacher>(*teacher, *hooks.comm);
      teacher.reset();
    }
  }
  sum.shard = shard::shard_mode_name(smode);
  sum.state_bytes_per_rank = sharded ? sharded->held_bytes() : student.held_bytes();
  // Collective when sharded: every rank calls it; the whole model lands on rank 0 only.
  auto whole_student = [&]() { return sharded ? sharded->gather_model(main_rank) : student.detached(); };
  const bool evaluating = !cfg.eval_data.empty();

  // 4. The loop.
  KdLossOptions ko;
  ko.kind = kind, ko.temperature = cfg.temperature, ko.slice_tokens = cfg.logit_slice;
  LrSchedule sched{cfg.lr, cfg.min_lr, cfg.warmup, total};
  Progress progress(cfg.mode, (total - state.step) * cfg.tokens_per_step(), "tok", cfg.quiet || !main_rank);
  const auto t_start = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  std::string last_good = resume_dir ? *resume_dir : "";
  int64_t step = state.step;
  int64_t last_saved = resume_dir ? step : -1;
  ResidualRecorder rec_s(base_layers), rec_t(teacher_layers);
  if (hooks.on_weights && !sharded) hooks.on_weights(student.weights());
  auto last_good_text = [&]() {
    return last_good.empty() ? std::string("no checkpoint was written yet")
                             : "last good checkpoint " + last_good + " (continue from it with --resume)";
  };
  // Weights about to be saved must be finite: a NaN that crept in without a non-finite loss or
  // gradient norm (e.g. an update overflowing) stops the run here instead of being written.
  auto check_finite_before_save = [&](const Model& m, const std::string& what) {
    if (const std::optional<std::string> bad = non_finite_weight(m)) {
      const std::string msg = fmt::format("step {}: tensor '{}' holds NaN or infinity after the update; stopped "
                                          "without writing {}; {}", step, *bad, what, last_good_text());
      record({{"type", "error"}, {"step", step}, {"message", msg}});
      fail_input("{}", msg);
    }
  };

  try {
    while (step < total && !(hooks.stop_at > 0 && step >= hooks.stop_at)) {
      const auto t_step = std::chrono::steady_clock::now();
      const double lr = sched.at(step);
      MicroLosses sl;
      for (int64_t a = 0; a < accum; ++a) {
        at::Tensor batch = sampler.next_batch(cfg.micro_batch * hooks.world_size);
        if (hooks.world_size > 1) batch = batch.slice(0, hooks.rank, batch.size(0), hooks.world_size);
        batch = batch.to(dev);
        const int64_t B = batch.size(0);
        at::Tensor ids = batch.narrow(1, 0, L), targets = batch.narrow(1, 1, L).reshape({B * L});
        ForwardOptions fs_opt, ft_opt;
        if (!pairs.empty()) fs_opt.observer = &rec_s.observer(), ft_opt.observer = &rec_t.observer();
        fs_opt.recompute = cfg.recompute;
        fs_opt.keep_ssd_states = cfg.keep_ssd_states;
        KdLossResult r;
        at::Tensor loss;
        if (!sharded) {
          at::Tensor hs = apply_final_norm(student.model, forward_hidden(student.model, ids, fs_opt));
          at::Tensor ht;
          if (teacher) {
            at::NoGradGuard no_grad;
            ht = apply_final_norm(*teacher, forward_hidden(*teacher, ids, ft_opt));
            ht = ht.reshape({B * L, ht.size(-1)});
          }
          r = kd_loss(hs.reshape({B * L, hs.size(-1)}), student.model.w(kLmHeadName), ht,
                      teacher ? teacher->w(kLmHeadName) : at::Tensor(), targets, ko);
          loss = r.loss;
        } else {
          sharded->begin_micro();
          at::Tensor h = sharded->runner().forward_hidden(ids, fs_opt.observer, cfg.recompute, cfg.keep_ssd_states);
          at::Tensor t_hidden;
          if (distill) {
            at::NoGradGuard no_grad;
            t_hidden = sharded_teacher ? sharded_teacher->runner().forward_hidden(ids, ft_opt.observer, false, false)
                                       : forward_hidden(*teacher, ids, ft_opt);
          }
          // The student's head unit: final norm, LM head and the fused loss (with the teacher's
          // head, gathered for the while when the teacher is sharded).
          loss = sharded->runner().head(h, [&](const Model& v, const at::Tensor& x) {
            at::Tensor hs = apply_final_norm(v, x);
            hs = hs.reshape({B * L, hs.size(-1)});
            auto with_teacher = [&](const Model& tm) {
              at::Tensor ht;
              {
                at::NoGradGuard no_grad;
                ht = apply_final_norm(tm, t_hidden);
                ht = ht.reshape({B * L, ht.size(-1)});
              }
              r = kd_loss(hs, v.w(kLmHeadName), ht, tm.w(kLmHeadName), targets, ko);
              return r.loss;
            };
            if (!distill) {
              r = kd_loss(hs, v.w(kLmHeadName), at::Tensor(), at::Tensor(), targets, ko);
              return r.loss;
            }
            return sharded_teacher ? sharded_teacher->runner().with_head(with_teacher) : with_teacher(*teacher);
          });
        }
        if (!pairs.empty()) {
          at::Tensor h = cosine_hidden_loss(rec_s, rec_t, pairs);
          sl.hidden += h.item<double>() / accum;
          loss = loss + h * cfg.hidden_weight;
          rec_s.clear(), rec_t.clear();
        }
        sl.loss += loss.item<double>() / accum, sl.kl += r.kl / accum, sl.ce += r.ce / accum;
        if (hooks.before_backward) hooks.before_backward(step, a, a + 1 == accum);
        (loss * (1.0 / static_cast<double>(accum))).backward();
      }
      if (hooks.average) {
        std::vector<double> v = {sl.loss, sl.kl, sl.ce, sl.hidden};
        hooks.average(v);
        sl.loss = v[0], sl.kl = v[1], sl.ce = v[2], sl.hidden = v[3];
      }
      if (sharded) sharded->finish_grads();
      std::vector<at::Tensor> grads = sharded ? sharded->grads() : student.grads();
      if (hooks.after_backward) hooks.after_backward(step, grads);
      // The loss is the ranks' mean, so every rank takes the same branch (the sharded norm is a collective).
      const double gnorm = !std::isfinite(sl.loss) ? sl.loss
                           : sharded             ? sharded->clip(cfg.clip)
                                                 : clip_grad_norm(grads, cfg.clip);
      if (!std::isfinite(sl.loss) || !std::isfinite(gnorm)) {
        auto word = [](double x) { return std::isnan(x) ? std::string("nan") : x > 0 ? "inf" : "-inf"; };
        const std::string what = std::isfinite(sl.loss) ? "the gradient norm is " + word(gnorm)
                                                        : "the loss is " + word(sl.loss);
        const std::string msg =
            fmt::format("step {}: {}; stopped before updating the weights; {}", step + 1, what, last_good_text());
        record({{"type", "error"}, {"step", step + 1}, {"message", msg}});
        fail_input("{}", msg);
      }
      if (sharded) {
        sharded->step(lr);
      } else {
        student.opt->step(grads, lr);
        student.after_step();
      }
      ++step;
      sum.tokens += cfg.tokens_per_step();
      const double dt_step = seconds_since(t_step);
      sum.last_loss = sl.loss, sum.last_kl = sl.kl, sum.last_ce = sl.ce;
      nlohmann::json rec = {{"type", "train"}, {"step", step}, {"tokens", sum.tokens}, {"loss", sl.loss},
                            {"kl", sl.kl}, {"ce", sl.ce}, {"lr", lr}, {"grad_norm", gnorm},
                            {"tokens_per_s", cfg.tokens_per_step() / std::max(dt_step, 1e-9)},
                            {"step_seconds", dt_step}, {"time", seconds_since(t_start)}};
      if (!pairs.empty()) rec["hidden"] = sl.hidden;
      record(rec);
      progress.advance(cfg.tokens_per_step(),
                       distill ? fmt::format("step {}/{} | loss {:.4f} | kl {:.4f} | ce {:.4f} | lr {:.2e}", step,
                                             total, sl.loss, sl.kl, sl.ce, lr)
                               : fmt::format("step {}/{} | loss {:.4f} | lr {:.2e}", step, total, sl.loss, lr));
      if (evaluating && cfg.eval_every > 0 && step % cfg.eval_every == 0 && step < total) {
        if (!sharded) {
          if (eval_windows.defined()) sum.eval_end = evaluate(step, student.model, "student");
        } else {
          Model whole = whole_student();
          if (eval_windows.defined()) sum.eval_end = evaluate(step, whole, "student");
        }
      }
      const bool stopping = hooks.stop_at > 0 && step >= hooks.stop_at && step < total;
      if ((cfg.save_every > 0 && step % cfg.save_every == 0 && step < total) || stopping) {
        // Sharded runs gather the whole student and optimizer onto rank 0 and write the usual checkpoint.
        if (sharded) {
          Model whole = whole_student();
          std::unique_ptr<AdamW> opt = sharded->gather_optimizer(main_rank);
          TrainerState st{step, sum.tokens, sampler.position(), sharded->optimizer().steps_taken(),
                          train_config_to_json(cfg)};
          if (main_rank) {
            check_finite_before_save(whole, checkpoint_dir_name(step));
            save_training_checkpoint(cfg.output, whole, *opt, st, companions);
          }
        } else if (main_rank) {
          TrainerState st{step, sum.tokens, sampler.position(), student.opt->steps_taken(), train_config_to_json(cfg)};
          const Model m = student.detached();
          check_finite_before_save(m, checkpoint_dir_name(step));
          save_training_checkpoint(cfg.output, m, *student.opt, st, companions);
        }
        last_good = cfg.output + "/" + checkpoint_dir_name(step);
        last_saved = step;
      }
    }
  } catch (const c10::OutOfMemoryError& e) {
    // Memory is a setting of the run, not a bug: one line with the step and what lowers it.
    const std::string msg = fmt::format(
        "step {}: out of GPU memory ({}); stopped; {}; a step needs less memory with --shard full, --recompute or a "
        "smaller --micro-batch (--plan prints what each needs)",
        step + 1, first_line(e.what_without_backtrace()), last_good_text());
    record({{"type", "error"}, {"step", step + 1}, {"message", msg}});
    fail_input("{}", msg);
  }
  (void)last_saved;

  // 5. The end: final student, last evaluation, summary.
  sum.steps_done = step - state.step;
  sum.seconds = seconds_since(t_start);
  sum.seconds_per_step = sum.steps_done ? sum.seconds / sum.steps_done : 0.0;
  sum.tokens_per_s = sum.steps_done * cfg.tokens_per_step() / std::max(sum.seconds, 1e-9);
  sum.finished = step >= total;
  Model final_student;
  if (sum.finished) final_student = whole_student();
  if (sum.finished && eval_windows.defined()) sum.eval_end = evaluate(step, final_student, "student");
  progress.finish(fmt::format("loss {:.4f}", sum.last_loss));
  sum.output_dir = sum.finished ? cfg.output + "/final" : last_good;
  sum.peak_gpu_bytes = peak_memory_bytes(dev), sum.peak_gpu_reserved_bytes = peak_reserved_bytes(dev);
  if (main_rank) {
    if (sum.finished) {
      check_finite_before_save(final_student, "final/");
      SaveOptions so;
      so.companions_from = companions;
      save_model(final_student, cfg.output + "/final", so);
    }
    // summary.json last: a run folder holding it is complete (run_folder_start relies on that).
    write_file_atomic(cfg.output + "/loss.svg",
                      render_svg(run_loss_chart(read_run_records(cfg.output, cfg.mode),
                                                fmt::format("{}: loss by training tokens", cfg.mode))));
    write_file_atomic(cfg.output + "/summary.json", sum.to_json().dump(2) + "\n");
  }
  return sum;
}

}  // namespace mp
