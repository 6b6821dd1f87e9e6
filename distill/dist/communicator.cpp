#include "distill/dist/communicator.h"

#include <ATen/ATen.h>

#include <cstring>
#include <functional>
#include <utility>

namespace mp::dist {

namespace {

// Waits for an all-reduce, then runs a copy that finishes the derived collective.
class ThenWork : public CommWork {
 public:
  ThenWork(std::shared_ptr<CommWork> inner, std::function<void()> then)
      : inner_(std::move(inner)), then_(std::move(then)) {}
  void wait() override {
    inner_->wait();
    if (then_) {
      then_();
      then_ = nullptr;
    }
  }

 private:
  std::shared_ptr<CommWork> inner_;
  std::function<void()> then_;
};

}  // namespace

std::shared_ptr<CommWork> Communicator::start_all_gather(const at::Tensor& out, const at::Tensor& in) {
  const int64_t n = in.numel();
  TORCH_CHECK(out.numel() == n * world_size(), "all_gather: out must hold world_size x in");
  at::Tensor buffer = at::zeros({n * world_size()}, in.options());
  buffer.narrow(0, rank() * n, n).copy_(in);
  auto work = start_all_reduce_sum(buffer);
  at::Tensor target = out;
  return std::make_shared<ThenWork>(std::move(work), [buffer, target]() mutable { target.copy_(buffer); });
}

std::shared_ptr<CommWork> Communicator::start_reduce_scatter_sum(const at::Tensor& out,
                                                                 const at::Tensor& in) {
  const int64_t n = out.numel();
  TORCH_CHECK(in.numel() == n * world_size(), "reduce_scatter: in must hold world_size x out");
  at::Tensor buffer = in.clone();
  auto work = start_all_reduce_sum(buffer);
  at::Tensor target = out;
  const int64_t offset = rank() * n;
  return std::make_shared<ThenWork>(std::move(work), [buffer, target, offset, n]() mutable {
    target.copy_(buffer.narrow(0, offset, n));
  });
}

std::shared_ptr<CommWork> Communicator::start_broadcast(const at::Tensor& flat, int64_t root) {
  if (rank() != root) flat.zero_();
  return start_all_reduce_sum(flat);
}

void Communicator::all_reduce_sum(std::vector<double>& values) {
  if (values.empty()) return;
  at::Tensor host = at::empty({static_cast<int64_t>(values.size())}, at::kDouble);
  std::memcpy(host.data_ptr<double>(), values.data(), values.size() * sizeof(double));
  at::Tensor t = host.to(device());
  start_all_reduce_sum(t)->wait();
  host = t.to(at::kCPU).contiguous();
  std::memcpy(values.data(), host.data_ptr<double>(), values.size() * sizeof(double));
}

}  // namespace mp::dist
