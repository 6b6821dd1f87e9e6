#include "distill/dist/communicator.h"

#include <ATen/ATen.h>

#include <cstring>

namespace mp::dist {

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
