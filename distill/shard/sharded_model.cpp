#include "distill/shard/sharded_model.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <map>

namespace mp::shard {
namespace {

Model model_of(const ModelConfig& config, const std::vector<std::string>& names, const std::vector<at::Tensor>& ts) {
  Model m;
  m.config = config;
  for (size_t i = 0; i < names.size(); ++i) m.weights[names[i]] = ts[i];
  return m;
}

std::vector<at::Tensor> flats_of(const Model& m, const ShardLayout& layout, at::ScalarType dtype) {
  std::vector<at::Tensor> out;
  for (const Unit& u : layout.units()) out.push_back(flatten_unit(m, u, dtype));
  return out;
}

}  // namespace

ShardedStudent::ShardedStudent(const AdamW& full, const ModelConfig& config, ShardMode mode, at::ScalarType dtype,
                               dist::Communicator& comm)
    : config_(config),
      comm_(comm),
      mode_(mode),
      dtype_(dtype),
      names_(full.names()),
      layout_(model_of(config, full.names(), full.masters()), comm.world_size(), comm.rank()) {
  at::NoGradGuard no_grad;
  if (mode == ShardMode::None) fail_runtime("ShardedStudent: shard mode none");
  config_.dtype = dtype_config_name(dtype);
  const at::Device dev = full.masters().front().device();
  std::vector<at::Tensor> flats = flats_of(model_of(config, names_, full.masters()), layout_, at::kFloat);
  opt_ = std::make_unique<ShardedAdamW>(layout_, flats, full.options());
  opt_->set_steps_taken(full.steps_taken());
  if (full.steps_taken() > 0) {  // the moments of a resumed run
    std::map<std::string, at::Tensor> state;
    for (auto& [n, t] : full.state_tensors()) state[n] = t;
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      std::vector<at::Tensor> ts;
      for (const std::string& n : names_) ts.push_back(state.at(kind + n).to(dev));
      std::vector<at::Tensor> fl = flats_of(model_of(config, names_, ts), layout_, at::kFloat);
      std::vector<at::Tensor>& into = std::string(kind) == "exp_avg." ? opt_->mutable_exp_avg() : opt_->mutable_exp_avg_sq();
      for (size_t k = 0; k < fl.size(); ++k)
        into[k].copy_(fl[k].narrow(0, layout_.rank() * layout_.units()[k].shard, layout_.units()[k].shard));
    }
  }
  rs_ = std::make_unique<GradReduceScatter>(layout_, comm, opt_->grads());
  const bool whole = mode == ShardMode::Optimizer;
  weights_ = std::make_unique<UnitWeights>(layout_, whole, flats, dtype, comm,
                                           !whole && dtype == at::kFloat ? &opt_->masters() : nullptr);
  runner_ = std::make_unique<UnitRunner>(layout_, *weights_, rs_.get(),
                                         whole ? RunKind::Optimizer : RunKind::Full, config_, dev);
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

int64_t ShardedStudent::parameters() const {
  int64_t n = 0;
  for (const Unit& u : layout_.units()) n += u.numel;
  return n;
}

int64_t ShardedStudent::held_bytes() const { return opt_->held_bytes() + weights_->held_bytes(); }

ShardedTeacher::ShardedTeacher(const Model& teacher, dist::Communicator& comm)
    : layout_(teacher, comm.world_size(), comm.rank()) {
  at::NoGradGuard no_grad;
  weights_ = std::make_unique<UnitWeights>(layout_, false, flats_of(teacher, layout_, teacher.dtype()), teacher.dtype(),
                                           comm);
  runner_ = std::make_unique<UnitRunner>(layout_, *weights_, nullptr, RunKind::Frozen, teacher.config,
                                         teacher.device());
}

}  // namespace mp::shard
