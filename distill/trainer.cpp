#include "distill/trainer.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/output_guard.h"
#include "common/progress.h"
#include "data/sampler.h"
#include "distill/checkpoint.h"
#include "distill/curves.h"
#include "distill/dist/solo_communicator.h"
#include "distill/hidden_loss.h"
#include "distill/metrics.h"
#include "distill/schedule.h"
#include "distill/shard/shard_source.h"
#include "distill/shard/sharded_model.h"
#include "distill/sharded_checkpoint.h"
#include "distill/sharded_consolidate.h"
#include "distill/whole_student.h"
#include "model/device_memory.h"
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

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

nlohmann::json stats_json(const LmStats& s) {
  return {{"loss", s.loss()}, {"accuracy", s.accuracy()}, {"bits_per_token", s.bits_per_token()},
          {"perplexity", s.perplexity()}, {"tokens", s.tokens}};
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

struct MicroLosses {
  double loss = 0.0, kl = 0.0, ce = 0.0, hidden = 0.0;
};

std::string non_finite_word(double x) { return std::isnan(x) ? "nan" : x > 0 ? "inf" : "-inf"; }

// The first line of a LibTorch message (its allocator adds advice and a backtrace).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

TrainSettings parse_train_settings(const TrainConfig& c) {
  TrainSettings s;
  s.mode = c.mode == "distill" ? RunMode::Distill : RunMode::Train;
  s.loss = parse_loss_kind(c.loss);
  s.hidden = c.hidden_loss == "cosine" ? HiddenLoss::Cosine : HiddenLoss::None;
  s.shard = shard::parse_shard_mode(c.shard);
  s.device = parse_device(c.device);
  s.dtype = c.dtype == "auto" ? (s.device.is_cuda() ? at::kBFloat16 : at::kFloat) : parse_dtype(c.dtype);
  return s;
}

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

struct Trainer::State {
  TrainConfig cfg;
  TrainHooks hooks;
  TrainSettings set;
  bool main_rank = true;
  int64_t total = 0, accum = 1;

  // Collectives: the launcher's, or a one-rank communicator for a sharded run on its own.
  dist::Communicator* comm = nullptr;
  std::unique_ptr<dist::SoloCommunicator> solo;

  // Where the run started, and its models: whole (shard none) or sharded; the teacher whole or
  // sharded (full).
  std::optional<std::string> resume_dir;
  TrainerState start;
  ModelConfig student_config;
  std::optional<ModelConfig> teacher_config;
  std::string companions;  // the folder whose tokenizer files follow the student
  WholeStudent whole;
  std::unique_ptr<shard::ShardedStudent> sharded;
  std::optional<Model> teacher;
  std::unique_ptr<shard::ShardedTeacher> sharded_teacher;

  // Data and losses.
  std::unique_ptr<WindowSampler> sampler;
  at::Tensor eval_windows;  // on every rank of a sharded run (its evaluation is a collective)
  LayerPairs pairs;
  KdLossOptions kd;
  LrSchedule sched;
  std::unique_ptr<ResidualRecorder> rec_s, rec_t;

  // Records and progress.
  std::unique_ptr<MetricsLog> log;
  std::unique_ptr<Progress> progress;
  TrainSummary sum;
  Clock::time_point t_start;
  int64_t step = 0;
  std::string last_good;

  void open();
  void load_models();
  void open_output();
  at::Tensor micro_loss(const at::Tensor& batch, KdLossResult& r);
  std::optional<LmStats> evaluate_student(int64_t at_step);
  void record(const nlohmann::json& j) {
    if (log) log->append(j);
  }
  LmStats record_eval(int64_t at_step, const LmStats& s, const char* who) {
    nlohmann::json j = stats_json(s);
    j["type"] = "eval", j["step"] = at_step, j["model"] = who;
    record(j);
    return s;
  }
  TrainerState trainer_state() const {
    return {step, sum.tokens, sampler->position(),
            sharded ? sharded->optimizer().steps_taken() : whole.opt->steps_taken(), train_config_to_json(cfg)};
  }
  void write_final();
  std::string last_good_text() const {
    return last_good.empty() ? std::string("no checkpoint was written yet")
                             : "last good checkpoint " + last_good + " (continue from it with --resume)";
  }
  void check_finite_before_save(const std::string& what);
  [[noreturn]] void fail_out_of_memory(const c10::OutOfMemoryError& e);
};

// Where to start (reads only), then the models and data (all checked before anything is written),
// then the output folder.
void Trainer::State::open() {
  validate_train_config(cfg, hooks.world_size);
  set = parse_train_settings(cfg);
  main_rank = hooks.rank == 0;
  total = cfg.total_steps();
  accum = cfg.global_batch / (cfg.micro_batch * hooks.world_size);
  // At world size 1 a sharded mode runs over the one-rank communicator: nothing is split, but the
  // unit gathers, recomputation and sharded checkpoints run as they do at any size.
  comm = hooks.comm;
  if (set.shard != shard::ShardMode::None && !comm && hooks.world_size == 1) {
    solo = std::make_unique<dist::SoloCommunicator>(set.device);
    comm = solo.get();
  }
  if (set.shard != shard::ShardMode::None && !comm)
    fail_runtime("--shard {}: rank {} of {} has no communicator", cfg.shard, hooks.rank, hooks.world_size);

  std::vector<std::string> inputs = {cfg.config, cfg.model, cfg.teacher, cfg.student};
  for (const std::string& prefix : {cfg.data, cfg.eval_data})
    for (const std::string& f : token_data_files(prefix)) inputs.push_back(f);
  resume_dir = run_folder_start(cfg.output, cfg.resume, cfg.overwrite, inputs, main_rank);
  if (resume_dir) {
    start = read_trainer_state(*resume_dir);
    check_resume_config(start.config, cfg, *resume_dir + "/trainer_state.json");
  }
  load_models();

  const int64_t vocab = student_config.vocab_size;
  sampler = std::make_unique<WindowSampler>(IndexedDataset::open(cfg.data), cfg.seq_len, cfg.seed, vocab);
  if (resume_dir) sampler->set_position(start.sampler_position);
  if (!cfg.eval_data.empty() && (main_rank || sharded)) {
    WindowSampler ev(IndexedDataset::open(cfg.eval_data), cfg.seq_len, cfg.seed, vocab);
    eval_windows = ev.fixed_windows(std::min(cfg.eval_samples, ev.num_windows()));
  }
  if (set.hidden == HiddenLoss::Cosine) {
    pairs = match_layers(student_config.num_layers(), teacher_config->num_layers(), cfg.hidden_map);
    if (student_config.hidden_size != teacher_config->hidden_size)
      fail_input("--hidden-loss cosine: student hidden size {} differs from the teacher's {}",
                 student_config.hidden_size, teacher_config->hidden_size);
  }
  kd.kind = set.loss, kd.temperature = cfg.temperature, kd.slice_tokens = cfg.logit_slice;
  sched = LrSchedule{cfg.lr, cfg.min_lr, cfg.warmup, total};
  rec_s = std::make_unique<ResidualRecorder>(student_config.num_layers());
  rec_t = std::make_unique<ResidualRecorder>(teacher_config ? teacher_config->num_layers() : 1);

  open_output();
  step = start.step;
  last_good = resume_dir ? *resume_dir : "";
  progress = std::make_unique<Progress>(cfg.mode, (total - step) * cfg.tokens_per_step(), "tok",
                                        cfg.quiet || !main_rank);
  t_start = Clock::now();
  if (hooks.on_weights && !sharded) hooks.on_weights(whole.weights());
}

// A sharded run reads only the ranges of the weights (and optimizer state) that this rank owns;
// an unsharded one holds everything.
void Trainer::State::load_models() {
  const bool distill = set.mode == RunMode::Distill;
  AdamWOptions ao;
  ao.beta1 = cfg.beta1, ao.beta2 = cfg.beta2, ao.eps = cfg.adam_eps, ao.weight_decay = cfg.weight_decay;
  // Tokenizer and other non-weight files of the model trained follow it into every checkpoint.
  companions = distill ? cfg.student : cfg.model;
  std::unique_ptr<shard::ShardSource> source;
  Model base;
  if (set.shard != shard::ShardMode::None) {
    source = resume_dir          ? shard::checkpoint_source(*resume_dir, start.optimizer_steps)
             : distill           ? shard::model_folder_source(cfg.student)
             : cfg.model.empty() ? shard::model_source(make_random_model(load_config(cfg.config), cfg.seed, at::kFloat))
                                 : shard::model_folder_source(cfg.model);
    student_config = source->config();
  } else {
    base = resume_dir ? (is_sharded_checkpoint(*resume_dir) ? load_sharded_model(ShardedCheckpointReader(*resume_dir))
                                                             : load_model(*resume_dir))
           : distill  ? load_model(cfg.student)
           : cfg.model.empty() ? make_random_model(load_config(cfg.config), cfg.seed, at::kFloat)
                               : load_model(cfg.model);
    student_config = base.config;
  }
  std::unique_ptr<shard::ShardSource> teacher_source;
  if (distill) {
    if (set.shard == shard::ShardMode::Full) {
      teacher_source = shard::model_folder_source(cfg.teacher);
      teacher_config = teacher_source->config();
    } else {
      LoadOptions lo;
      lo.device = set.device;
      lo.dtype = set.dtype;
      teacher = load_model(cfg.teacher, lo);
      teacher_config = teacher->config;
    }
    if (teacher_config->vocab_size != student_config.vocab_size)
      fail_input("{}: teacher vocabulary {} differs from the student's {} ({}); distillation needs one vocabulary",
                 cfg.teacher, teacher_config->vocab_size, student_config.vocab_size, cfg.student);
  }
  if (source) {
    sharded = std::make_unique<shard::ShardedStudent>(*source, set.shard, set.dtype, ao, *comm, set.device);
    if (teacher_source)
      sharded_teacher = std::make_unique<shard::ShardedTeacher>(*teacher_source, set.dtype, *comm, set.device);
  } else {
    whole.bind(base, set.device, set.dtype, ao);
    if (resume_dir) {
      load_optimizer_state(*resume_dir, *whole.opt, start.optimizer_steps);
      whole.rebind(set.dtype);
    }
  }
}

void Trainer::State::open_output() {
  sum.mode = cfg.mode;
  sum.start_step = start.step;
  sum.total_steps = total;
  sum.tokens = start.tokens;
  if (sharded) {
    sum.parameters = sharded->parameters();
  } else {
    for (const at::Tensor& t : whole.opt->masters()) sum.parameters += t.numel();
  }
  if (main_rank) {
    if (cfg.overwrite) clear_run_folder(cfg.output);
    fs::create_directories(cfg.output);
    remove_partial_checkpoints(cfg.output);
    write_file_atomic(cfg.output + "/train_config.json", train_config_to_json(cfg).dump(2) + "\n");
    log = std::make_unique<MetricsLog>(cfg.output + "/metrics.jsonl", resume_dir ? start.step : -1);
  }
  if (sharded) {  // no rank writes into the folder before rank 0 has cleaned it
    std::vector<double> sync = {0.0};
    comm->all_reduce_sum(sync);
  }
  if (eval_windows.defined() && !resume_dir) {
    if (sharded_teacher)
      sum.teacher_eval = record_eval(0, sharded_teacher->evaluate(eval_windows, cfg.micro_batch), "teacher");
    else if (teacher && main_rank)
      sum.teacher_eval = record_eval(0, lm_stats(*teacher, eval_windows, cfg.micro_batch), "teacher");
    sum.eval_start = evaluate_student(0);
  }
  sum.shard = shard::shard_mode_name(set.shard);
  sum.state_bytes_per_rank = sharded ? sharded->held_bytes() : whole.held_bytes();
}

// Sharded evaluation is a collective on every rank; a whole model is evaluated on rank 0 only.
std::optional<LmStats> Trainer::State::evaluate_student(int64_t at_step) {
  if (!eval_windows.defined()) return std::nullopt;
  return record_eval(at_step, sharded ? sharded->evaluate(eval_windows, cfg.micro_batch)
                                      : lm_stats(whole.model, eval_windows, cfg.micro_batch), "student");
}

// One micro-batch's loss (KD and CE parts in `r`), its graph ready for the backward.
at::Tensor Trainer::State::micro_loss(const at::Tensor& batch, KdLossResult& r) {
  const int64_t B = batch.size(0), L = cfg.seq_len;
  at::Tensor ids = batch.narrow(1, 0, L), targets = batch.narrow(1, 1, L).reshape({B * L});
  ForwardOptions fs_opt, ft_opt;
  if (!pairs.empty()) fs_opt.observer = &rec_s->observer(), ft_opt.observer = &rec_t->observer();
  fs_opt.recompute = cfg.recompute;
  fs_opt.keep_ssd_states = cfg.keep_ssd_states;
  const bool distill = set.mode == RunMode::Distill;
  if (!sharded) {
    at::Tensor hs = apply_final_norm(whole.model, forward_hidden(whole.model, ids, fs_opt));
    at::Tensor ht;
    if (teacher) {
      at::NoGradGuard no_grad;
      ht = apply_final_norm(*teacher, forward_hidden(*teacher, ids, ft_opt));
      ht = ht.reshape({B * L, ht.size(-1)});
    }
    r = kd_loss(hs.reshape({B * L, hs.size(-1)}), whole.model.w(kLmHeadName), ht,
                teacher ? teacher->w(kLmHeadName) : at::Tensor(), targets, kd);
    return r.loss;
  }
  sharded->begin_micro();
  at::Tensor h = sharded->runner().forward_hidden(ids, fs_opt.observer, cfg.recompute, cfg.keep_ssd_states);
  at::Tensor t_hidden;
  if (distill) {
    at::NoGradGuard no_grad;
    t_hidden = sharded_teacher ? sharded_teacher->runner().forward_hidden(ids, ft_opt.observer, false, false)
                               : forward_hidden(*teacher, ids, ft_opt);
  }
  // The student's head unit: final norm, LM head and the fused loss (with the teacher's head,
  // gathered for the while when the teacher is sharded).
  return sharded->runner().head(h, [&](const Model& v, const at::Tensor& x) {
    at::Tensor hs = apply_final_norm(v, x);
    hs = hs.reshape({B * L, hs.size(-1)});
    auto with_teacher = [&](const Model& tm) {
      at::Tensor ht;
      {
        at::NoGradGuard no_grad;
        ht = apply_final_norm(tm, t_hidden);
        ht = ht.reshape({B * L, ht.size(-1)});
      }
      r = kd_loss(hs, v.w(kLmHeadName), ht, tm.w(kLmHeadName), targets, kd);
      return r.loss;
    };
    if (!distill) {
      r = kd_loss(hs, v.w(kLmHeadName), at::Tensor(), at::Tensor(), targets, kd);
      return r.loss;
    }
    return sharded_teacher ? sharded_teacher->runner().with_head(with_teacher) : with_teacher(*teacher);
  });
}

// The final student: a whole one is saved by rank 0; a sharded one is written by every rank into
// a hidden sharded checkpoint, which rank 0 consolidates into a Hugging Face folder one tensor at
// a time and then removes (a run killed meanwhile leaves a ".final.partial-" folder that --resume
// cleans).
void Trainer::State::write_final() {
  const std::string final_shards = cfg.output + "/.final.partial-shards";
  std::string final_step;
  if (sharded) final_step = sharded->save_checkpoint(final_shards, trainer_state(), "", false);
  if (!main_rank) return;
  if (sharded) {
    ConsolidateOptions co;
    co.dtype = set.dtype;
    co.companions_from = companions;
    consolidate_sharded_checkpoint(final_step, cfg.output + "/final", co);
    fs::remove_all(final_shards);
  } else {
    SaveOptions so;
    so.companions_from = companions;
    save_model(whole.detached(), cfg.output + "/final", so);
  }
}

Trainer::Trainer(const TrainConfig& config, const TrainHooks& hooks) : s_(std::make_unique<State>()) {
  s_->cfg = config;
  s_->hooks = hooks;
  s_->open();
}

Trainer::~Trainer() = default;

bool Trainer::done() const {
  return s_->step >= s_->total || (s_->hooks.stop_at > 0 && s_->step >= s_->hooks.stop_at);
}

// Out of memory anywhere in a step or an evaluation ends the run with one line (see fail_out_of_memory).
void Trainer::step() {
  try {
    step_unguarded();
  } catch (const c10::OutOfMemoryError& e) {
    s_->fail_out_of_memory(e);
  }
}

void Trainer::step_unguarded() {
  State& s = *s_;
  const TrainHooks& hooks = s.hooks;
  const TrainConfig& cfg = s.cfg;
  const auto t_step = Clock::now();
  const double lr = s.sched.at(s.step);
  MicroLosses sl;
  for (int64_t a = 0; a < s.accum; ++a) {
    at::Tensor batch = s.sampler->next_batch(cfg.micro_batch * hooks.world_size);
    if (hooks.world_size > 1) batch = batch.slice(0, hooks.rank, batch.size(0), hooks.world_size);
    KdLossResult r;
    at::Tensor loss = s.micro_loss(batch.to(s.set.device), r);
    if (!s.pairs.empty()) {
      at::Tensor h = cosine_hidden_loss(*s.rec_s, *s.rec_t, s.pairs);
      sl.hidden += h.item<double>() / s.accum;
      loss = loss + h * cfg.hidden_weight;
      s.rec_s->clear(), s.rec_t->clear();
    }
    sl.loss += loss.item<double>() / s.accum, sl.kl += r.kl / s.accum, sl.ce += r.ce / s.accum;
    if (hooks.before_backward) hooks.before_backward(s.step, a, a + 1 == s.accum);
    (loss * (1.0 / static_cast<double>(s.accum))).backward();
  }
  if (hooks.average) {
    std::vector<double> v = {sl.loss, sl.kl, sl.ce, sl.hidden};
    hooks.average(v);
    sl.loss = v[0], sl.kl = v[1], sl.ce = v[2], sl.hidden = v[3];
  }
  if (s.sharded) s.sharded->finish_grads();
  std::vector<at::Tensor> grads = s.sharded ? s.sharded->grads() : s.whole.grads();
  if (hooks.after_backward) hooks.after_backward(s.step, grads);
  // The loss is the ranks' mean, so every rank takes the same branch (the sharded norm is a collective).
  const double gnorm = !std::isfinite(sl.loss) ? sl.loss
                       : s.sharded             ? s.sharded->clip(cfg.clip)
                                               : clip_grad_norm(grads, cfg.clip);
  if (!std::isfinite(sl.loss) || !std::isfinite(gnorm)) {
    const std::string what = std::isfinite(sl.loss) ? "the gradient norm is " + non_finite_word(gnorm)
                                                    : "the loss is " + non_finite_word(sl.loss);
    const std::string msg =
        fmt::format("step {}: {}; stopped before updating the weights; {}", s.step + 1, what, s.last_good_text());
    s.record({{"type", "error"}, {"step", s.step + 1}, {"message", msg}});
    fail_input("{}", msg);
  }
  if (s.sharded) {
    s.sharded->step(lr);
  } else {
    s.whole.opt->step(grads, lr);
    s.whole.after_step();
  }
  ++s.step;
  s.sum.tokens += cfg.tokens_per_step();
  const double dt_step = seconds_since(t_step);
  s.sum.last_loss = sl.loss, s.sum.last_kl = sl.kl, s.sum.last_ce = sl.ce;
  nlohmann::json rec = {{"type", "train"}, {"step", s.step}, {"tokens", s.sum.tokens}, {"loss", sl.loss},
                        {"kl", sl.kl}, {"ce", sl.ce}, {"lr", lr}, {"grad_norm", gnorm},
                        {"tokens_per_s", cfg.tokens_per_step() / std::max(dt_step, 1e-9)},
                        {"step_seconds", dt_step}, {"time", seconds_since(s.t_start)}};
  if (!s.pairs.empty()) rec["hidden"] = sl.hidden;
  s.record(rec);
  s.progress->advance(cfg.tokens_per_step(),
                      s.set.mode == RunMode::Distill
                          ? fmt::format("step {}/{} | loss {:.4f} | kl {:.4f} | ce {:.4f} | lr {:.2e}", s.step,
                                        s.total, sl.loss, sl.kl, sl.ce, lr)
                          : fmt::format("step {}/{} | loss {:.4f} | lr {:.2e}", s.step, s.total, sl.loss, lr));
}

void Trainer::evaluate_if_due() {
  State& s = *s_;
  if (s.cfg.eval_data.empty() || s.cfg.eval_every <= 0 || s.step % s.cfg.eval_every != 0 || s.step >= s.total) return;
  try {
    if (auto e = s.evaluate_student(s.step)) s.sum.eval_end = e;
  } catch (const c10::OutOfMemoryError& e) {
    s.fail_out_of_memory(e);
  }
}

void Trainer::checkpoint_if_due() {
  State& s = *s_;
  const bool stopping = s.hooks.stop_at > 0 && s.step >= s.hooks.stop_at && s.step < s.total;
  if (!((s.cfg.save_every > 0 && s.step % s.cfg.save_every == 0 && s.step < s.total) || stopping)) return;
  s.check_finite_before_save(checkpoint_dir_name(s.step));
  // Sharded runs write one file per rank (sharded_checkpoint.h); nothing is gathered.
  if (s.sharded) {
    s.sharded->save_checkpoint(s.cfg.output, s.trainer_state(), s.companions);
  } else if (s.main_rank) {
    save_training_checkpoint(s.cfg.output, s.whole.detached(), *s.whole.opt, s.trainer_state(), s.companions);
  }
  s.last_good = s.cfg.output + "/" + checkpoint_dir_name(s.step);
}

TrainSummary Trainer::finish() {
  State& s = *s_;
  TrainSummary& sum = s.sum;
  sum.steps_done = s.step - s.start.step;
  sum.seconds = seconds_since(s.t_start);
  sum.seconds_per_step = sum.steps_done ? sum.seconds / sum.steps_done : 0.0;
  sum.tokens_per_s = sum.steps_done * s.cfg.tokens_per_step() / std::max(sum.seconds, 1e-9);
  sum.finished = s.step >= s.total;
  if (sum.finished)
    if (auto e = s.evaluate_student(s.step)) sum.eval_end = e;
  s.progress->finish(fmt::format("loss {:.4f}", sum.last_loss));
  sum.output_dir = sum.finished ? s.cfg.output + "/final" : s.last_good;
  sum.peak_gpu_bytes = peak_memory_bytes(s.set.device), sum.peak_gpu_reserved_bytes = peak_reserved_bytes(s.set.device);
  if (sum.finished) {
    s.check_finite_before_save("final/");
    s.write_final();
  }
  if (s.main_rank) {
    // summary.json last: a run folder holding it is complete (run_folder_start relies on that).
    write_file_atomic(s.cfg.output + "/loss.svg",
                      render_svg(run_loss_chart(read_run_records(s.cfg.output, s.cfg.mode),
                                                fmt::format("{}: loss by training tokens", s.cfg.mode))));
    write_file_atomic(s.cfg.output + "/summary.json", sum.to_json().dump(2) + "\n");
  }
  return sum;
}

// Weights about to be saved must be finite: a NaN that crept in without a non-finite loss or
// gradient norm (an update overflowing, say) stops the run here instead of being written, so that
// every checkpoint a run leaves is one a resume can continue from. Sharded: each rank counts its
// own masters and the counts are summed, so every rank takes the same branch.
void Trainer::State::check_finite_before_save(const std::string& what) {
  std::string bad;
  if (sharded) {
    double non_finite = 0.0;
    for (const at::Tensor& m : sharded->optimizer().masters())
      non_finite += static_cast<double>(m.numel() - at::isfinite(m).sum().item<int64_t>());
    std::vector<double> v = {non_finite};
    comm->all_reduce_sum(v);
    if (v[0] > 0) bad = fmt::format("{} weight values hold", static_cast<int64_t>(v[0]));
  } else {
    for (const auto& [name, t] : whole.model.weights)
      if (t.is_floating_point() && !at::isfinite(t.detach()).all().item<bool>()) {
        bad = fmt::format("tensor '{}' holds", name);
        break;
      }
  }
  if (bad.empty()) return;
  const std::string msg = fmt::format("step {}: {} NaN or infinity after the update; stopped without writing {}; {}",
                                      step, bad, what, last_good_text());
  record({{"type", "error"}, {"step", step}, {"message", msg}});
  fail_input("{}", msg);
}

// Memory is a setting of the run, not a bug: one line with the step and what lowers it.
void Trainer::State::fail_out_of_memory(const c10::OutOfMemoryError& e) {
  const std::string msg = fmt::format(
      "step {}: out of GPU memory ({}); stopped; {}; a step needs less memory with --shard full, --recompute or a "
      "smaller --micro-batch (--plan prints what each needs)",
      step + 1, first_line(e.what_without_backtrace()), last_good_text());
  record({{"type", "error"}, {"step", step + 1}, {"message", msg}});
  fail_input("{}", msg);
}

TrainSummary run_training(const TrainConfig& config, const TrainHooks& hooks) {
  Trainer t(config, hooks);
  while (!t.done()) {
    t.step();
    t.evaluate_if_due();
    t.checkpoint_if_due();
  }
  return t.finish();
}

}  // namespace mp
