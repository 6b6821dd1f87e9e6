#include "distill/dist/solo_communicator.h"

#include "common/error.h"

#include <ATen/ATen.h>

namespace mp::dist {
namespace {

struct Done : CommWork {
  void wait() override {}
};

void check_sizes(const at::Tensor& out, const at::Tensor& in, const char* op) {
  if (out.numel() != in.numel())
    fail_runtime("{} over one rank: {} elements into {}", op, in.numel(), out.numel());
}

}  // namespace

std::shared_ptr<CommWork> SoloCommunicator::start_all_reduce_sum(const at::Tensor&) { return std::make_shared<Done>(); }

std::shared_ptr<CommWork> SoloCommunicator::start_all_gather(const at::Tensor& out, const at::Tensor& in) {
  check_sizes(out, in, "all-gather");
  if (!out.is_same(in)) out.copy_(in);
  return std::make_shared<Done>();
}

std::shared_ptr<CommWork> SoloCommunicator::start_reduce_scatter_sum(const at::Tensor& out, const at::Tensor& in) {
  check_sizes(out, in, "reduce-scatter");
  if (!out.is_same(in)) out.copy_(in);
  return std::make_shared<Done>();
}

std::shared_ptr<CommWork> SoloCommunicator::start_broadcast(const at::Tensor&, int64_t root) {
  if (root != 0) fail_runtime("broadcast over one rank from rank {}", root);
  return std::make_shared<Done>();
}

}  // namespace mp::dist
