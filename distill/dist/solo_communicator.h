// The communicator of a one-process run: every collective over a single rank is the identity
// (a sum over one rank is the value, a gather or scatter a copy). It lets `--shard optimizer|full`
// run at world size 1 exactly as at larger sizes, the unit gathers, recomputation and sharded
// checkpoints included, so that their cost can be measured on one device.
#pragma once

#include "distill/dist/communicator.h"

namespace mp::dist {

class SoloCommunicator : public Communicator {
 public:
  explicit SoloCommunicator(at::Device device) : device_(device) {}
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  std::string name() const override { return "solo"; }
  at::Device device() const override { return device_; }
  std::shared_ptr<CommWork> start_all_reduce_sum(const at::Tensor& flat) override;
  std::shared_ptr<CommWork> start_all_gather(const at::Tensor& out, const at::Tensor& in) override;
  std::shared_ptr<CommWork> start_reduce_scatter_sum(const at::Tensor& out, const at::Tensor& in) override;
  std::shared_ptr<CommWork> start_broadcast(const at::Tensor& flat, int64_t root) override;
  void abort() noexcept override {}

 private:
  at::Device device_;
};

}  // namespace mp::dist
