#include "distill/shard/sharded_model.h"

#include "common/error.h"
#include "distill/sharded_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace mp::shard {
ShardedStudent::ShardedStudent(const ShardSource& src, ShardMode mode, at::ScalarType dtype,
                               const AdamWOptions& options, dist::Communicator& comm, at::Device device)
    : config_(src.config()),
      comm_(comm),
      mode_(mode),
      dtype_(dtype),
      layout_(src.config(), src.tensors(), comm.world_size(), comm.rank()) {
  at::NoGradGuard no_grad;
  tensors_ = src.tensors();
  device_ = device;
  if (mode == ShardMode::None) fail_runtime("ShardedStudent: shard mode none");
  for (const TensorSpec& t : src.tensors()) names_.push_back(t.name);
  config_.dtype = dtype_config_name(dtype);
  opt_ = std::make_unique<ShardedAdamW>(layout_, read_shards(src, layout_, kShardKindWeight, at::kFloat, device),
                                        options);
  if (src.has_moments()) {  // a resumed run
    opt_->mutable_exp_avg() = read_shards(src, layout_, kShardKindExpAvg, at::kFloat, device);
    opt_->mutable_exp_avg_sq() = read_shards(src, layout_, kShardKindExpAvgSq, at::kFloat, device);
    opt_->set_steps_taken(src.optimizer_steps());
  }
  rs_ = std::make_unique<GradReduceScatter>(layout_, comm, opt_->grads());
  const bool whole = mode == ShardMode::Optimizer;
  weights_ = std::make_unique<UnitWeights>(layout_, whole, opt_->masters(), dtype, comm,
                                           !whole && dtype == at::kFloat ? &opt_->masters() : nullptr);
  runner_ = std::make_unique<UnitRunner>(layout_, *weights_, rs_.get(),
                                         whole ? RunKind::Optimizer : RunKind::Full, config_, device);
  frozen_ = std::make_unique<UnitRunner>(layout_, *weights_, nullptr, RunKind::Frozen, config_, device);
}

double ShardedStudent::clip(double max_norm) {
  std::vector<double> sq = {opt_->local_grad_sq()};
  comm_.all_reduce_sum(sq);
  const double norm = std::sqrt(sq[0]);
  if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm) opt_->scale_grads(max_norm / (norm + 1e-6));
  return norm;
}

void ShardedStudent::step(double lr) {
  opt_->step(lr);
  weights_->update_from_masters(opt_->masters());
  opt_->zero_grads();
}

Model ShardedStudent::gather_model(bool keep) {
  at::NoGradGuard no_grad;
  Model m;
  m.config = config_;
  for (int64_t u = 0; u < layout_.num_units(); ++u) {
    at::Tensor flat = weights_->acquire(u);
    if (!keep) continue;
    for (auto& [n, t] : unit_views(flat, layout_.units()[u])) m.weights[n] = t;
  }
  return m;
}

std::unique_ptr<AdamW> ShardedStudent::gather_optimizer(bool keep) {
  at::NoGradGuard no_grad;
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::map<std::string, at::Tensor> state;
  const std::vector<at::Tensor>* parts[3] = {&opt_->masters(), &opt_->exp_avg(), &opt_->exp_avg_sq()};
  const char* prefix[3] = {"master.", "exp_avg.", "exp_avg_sq."};
  for (int64_t u = 0; u < layout_.num_units(); ++u) {
    const Unit& unit = layout_.units()[u];
    for (int k = 0; k < 3; ++k) {
      at::Tensor out = at::empty({unit.padded}, (*parts[k])[u].options());
      comm_.start_all_gather(out, (*parts[k])[u])->wait();
      if (!keep) continue;
      for (auto& [n, t] : unit_views(out, unit)) {
        state[prefix[k] + n] = t.cpu();
        if (k == 0) params.emplace_back(n, t);
      }
    }
  }
  if (!keep) return nullptr;
  std::map<std::string, at::Tensor> by_name(params.begin(), params.end());
  std::vector<std::pair<std::string, at::Tensor>> ordered;
  for (const std::string& n : names_) ordered.emplace_back(n, by_name.at(n));
  auto opt = std::make_unique<AdamW>(ordered, opt_->options());
  opt->load_state(state, opt_->steps_taken(), "the gathered optimizer shards");
  return opt;
}

namespace {

void barrier(dist::Communicator& comm) {
  std::vector<double> v = {0.0};
  comm.all_reduce_sum(v);
}

// Every rank runs the same windows through the frozen runner: the gathers are collectives.
LmStats evaluate_unit_by_unit(UnitRunner& r, const at::Tensor& windows, int64_t micro_batch, at::Device device) {
  at::NoGradGuard no_grad;
  LmStats out;
  const int64_t N = windows.size(0), L = windows.size(1) - 1;
  for (int64_t i = 0; i < N; i += micro_batch) {
    at::Tensor w = windows.slice(0, i, std::min(N, i + micro_batch)).to(device);
    const int64_t B = w.size(0);
    at::Tensor ids = w.narrow(1, 0, L), targets = w.narrow(1, 1, L).reshape({B * L});
    r.begin_micro();
    at::Tensor h = r.forward_hidden(ids, nullptr, false, false);
    r.with_head([&](const Model& v) {
      at::Tensor hs = apply_final_norm(v, h);
      out.add(lm_stats_from_hidden(v, hs.reshape({B * L, hs.size(-1)}), targets));
      return at::Tensor();
    });
  }
  return out;
}

}  // namespace

std::string ShardedStudent::save_checkpoint(const std::string& output, const TrainerState& state,
                                            const std::string& companions_from, bool optimizer_state) {
  at::NoGradGuard no_grad;
  std::vector<ShardPiece> pieces;
  for (const OwnedState& s : opt_->owned_state()) {
    if (s.range.end == s.range.begin) continue;
    if (!optimizer_state) {
      pieces.push_back({s.range.name, kShardKindWeight, s.range.begin, s.range.end, s.master.to(dtype_)});
      continue;
    }
    pieces.push_back({s.range.name, kShardKindWeight, s.range.begin, s.range.end, s.master});
    pieces.push_back({s.range.name, kShardKindExpAvg, s.range.begin, s.range.end, s.exp_avg});
    pieces.push_back({s.range.name, kShardKindExpAvgSq, s.range.begin, s.range.end, s.exp_avg_sq});
  }
  std::error_code ec;
  std::filesystem::create_directories(output, ec);
  const int rank = static_cast<int>(comm_.rank()), world = static_cast<int>(comm_.world_size());
  write_rank_shard(output, state.step, rank, world, pieces);
  barrier(comm_);  // every rank's file is in the staging folder
  std::string dir = output + "/" + checkpoint_dir_name(state.step);
  if (rank == 0) {
    ShardedCommit c;
    c.world_size = world, c.shard_mode = shard_mode_name(mode_), c.tensors = tensors_, c.config = config_;
    c.state = state, c.companions_from = companions_from;
    dir = commit_sharded_checkpoint(output, c);
  }
  barrier(comm_);  // committed before any rank goes on
  return dir;
}

LmStats ShardedStudent::evaluate(const at::Tensor& windows, int64_t micro_batch) {
  return evaluate_unit_by_unit(*frozen_, windows, micro_batch, device_);
}

int64_t ShardedStudent::parameters() const {
  int64_t n = 0;
  for (const Unit& u : layout_.units()) n += u.numel;
  return n;
}

int64_t ShardedStudent::held_bytes() const { return opt_->held_bytes() + weights_->held_bytes(); }

ShardedTeacher::ShardedTeacher(const ShardSource& src, at::ScalarType dtype, dist::Communicator& comm,
                               at::Device device)
    : layout_(src.config(), src.tensors(), comm.world_size(), comm.rank()) {
  at::NoGradGuard no_grad;
  ModelConfig config = src.config();
  config.dtype = dtype_config_name(dtype);
  weights_ = std::make_unique<UnitWeights>(layout_, false, read_shards(src, layout_, kShardKindWeight, dtype, device),
                                           dtype, comm);
  runner_ = std::make_unique<UnitRunner>(layout_, *weights_, nullptr, RunKind::Frozen, config, device);
  device_ = device;
}

LmStats ShardedTeacher::evaluate(const at::Tensor& windows, int64_t micro_batch) {
  return evaluate_unit_by_unit(*runner_, windows, micro_batch, device_);
}

}  // namespace mp::shard
