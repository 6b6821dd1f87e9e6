#include "distill/shard/unit_comm.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

namespace mp::shard {

UnitWeights::UnitWeights(const ShardLayout& layout, bool keep_whole, const std::vector<at::Tensor>& shards,
                         at::ScalarType dtype, dist::Communicator& comm, const std::vector<at::Tensor>* alias_shards)
    : layout_(layout), keep_whole_(keep_whole), dtype_(dtype), comm_(comm) {
  at::NoGradGuard no_grad;
  const std::vector<Unit>& units = layout.units();
  aliased_ = !keep_whole && alias_shards != nullptr;
  if (keep_whole) {
    std::vector<at::Tensor> ins;
    std::vector<std::shared_ptr<dist::CommWork>> works;
    for (size_t k = 0; k < units.size(); ++k) {
      whole_.push_back(at::empty({units[k].padded}, shards[k].options().dtype(dtype)));
      ins.push_back(shards[k].to(dtype).contiguous());
      works.push_back(comm.start_all_gather(whole_.back(), ins.back()));
    }
    for (auto& w : works) w->wait();
    return;
  }
  for (size_t k = 0; k < units.size(); ++k)
    shard_.push_back(aliased_ ? (*alias_shards)[k] : shards[k].to(dtype).clone());
}

void UnitWeights::prefetch(int64_t u) {
  if (keep_whole_ || u < 0 || u >= layout_.num_units() || in_flight_.count(u)) return;
  InFlight f;
  f.out = at::empty({layout_.units()[u].padded}, shard_[u].options());
  f.work = comm_.start_all_gather(f.out, shard_[u]);
  in_flight_.emplace(u, std::move(f));
}

at::Tensor UnitWeights::acquire(int64_t u) {
  if (keep_whole_) return whole_[u];
  prefetch(u);
  auto it = in_flight_.find(u);
  it->second.work->wait();
  at::Tensor out = it->second.out;
  in_flight_.erase(it);
  return out;
}

void UnitWeights::update_from_masters(const std::vector<at::Tensor>& masters) {
  at::NoGradGuard no_grad;
  if (!in_flight_.empty())
    fail_runtime("sharded weights: unit {} was prefetched and never used before the update", in_flight_.begin()->first);
  if (!keep_whole_) {
    if (!aliased_)
      for (size_t k = 0; k < shard_.size(); ++k) shard_[k].copy_(masters[k]);
    return;
  }
  std::vector<std::shared_ptr<dist::CommWork>> works;
  std::vector<at::Tensor> ins;
  for (size_t k = 0; k < whole_.size(); ++k) {
    ins.push_back(masters[k].to(dtype_).clone());
    works.push_back(comm_.start_all_gather(whole_[k], ins.back()));
  }
  for (auto& w : works) w->wait();
}

int64_t UnitWeights::held_bytes() const {
  int64_t b = 0;
  for (const at::Tensor& t : whole_) b += t.numel() * static_cast<int64_t>(t.element_size());
  if (!aliased_)
    for (const at::Tensor& t : shard_) b += t.numel() * static_cast<int64_t>(t.element_size());
  return b;
}

GradReduceScatter::GradReduceScatter(const ShardLayout& layout, dist::Communicator& comm,
                                     std::vector<at::Tensor> grad_shards, size_t max_in_flight)
    : layout_(layout), comm_(comm), grads_(std::move(grad_shards)), max_in_flight_(std::max<size_t>(1, max_in_flight)) {}

void GradReduceScatter::start(int64_t u, at::Tensor flat_grad) {
  const Unit& unit = layout_.units()[u];
  if (flat_grad.numel() != unit.padded)
    fail_runtime("gradient reduce-scatter: {} elements for {} ({} padded)", flat_grad.numel(), unit.name, unit.padded);
  Pending p{u, flat_grad.contiguous(), at::empty({unit.shard}, flat_grad.options()), nullptr};
  p.work = comm_.start_reduce_scatter_sum(p.out, p.in);
  pending_.push_back(std::move(p));
  while (pending_.size() > max_in_flight_) complete_oldest();
}

void GradReduceScatter::complete_oldest() {
  at::NoGradGuard no_grad;
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  p.work->wait();
  grads_[p.unit].add_(p.out.to(at::kFloat));
}

void GradReduceScatter::finish() {
  while (!pending_.empty()) complete_oldest();
  at::NoGradGuard no_grad;
  for (at::Tensor& g : grads_) g.div_(static_cast<double>(comm_.world_size()));
}

}  // namespace mp::shard
