// The all-reduce over the rendezvous' TCP data connections: data parallelism without a GPU (CI),
// or as a slow fallback when a build has no NCCL.
//
// Star, in a worker thread: every rank r > 0 sends its tensor to rank 0; rank 0 adds them to its
// own in rank order (((x0 + x1) + x2) + ...) and sends the sum back, so every rank holds the same
// bits and the result does not depend on timing. Each operation carries a header (sequence
// number, element count, dtype) that rank 0 checks, so ranks that disagree on the sequence stop
// with a clear error. Operations run one at a time in the order they were started; start returns
// at once (CPU tensors are summed in place; others go through a host copy, made at start and
// copied back in wait()). Any socket operation that makes no progress for the timeout fails.
// After the first failure every operation fails with the same message.
#pragma once

#include "distill/dist/communicator.h"
#include "distill/dist/socket.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace mp::dist {

class TcpCommunicator : public Communicator {
 public:
  // peers: (rank, data socket) as ControlChannel::data_peers() gives them; the sockets must
  // outlive this object. pid_of names ranks in messages.
  TcpCommunicator(int64_t rank, int64_t world_size, std::vector<std::pair<int64_t, Socket*>> peers, double timeout_s,
                  std::function<int64_t(int64_t)> pid_of = {});
  ~TcpCommunicator() override;

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  std::string name() const override { return "tcp"; }
  at::Device device() const override { return at::kCPU; }
  std::shared_ptr<CommWork> start_all_reduce_sum(const at::Tensor& flat) override;
  void abort() noexcept override;

  struct Op;  // one queued operation (internal)

 private:
  void worker();
  void run(Op& op);
  std::string who(int64_t r) const;

  int64_t rank_, world_;
  std::vector<std::pair<int64_t, Socket*>> peers_;
  double timeout_s_;
  std::function<int64_t(int64_t)> pid_of_;
  uint64_t seq_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Op>> queue_;
  std::string error_;  // sticky: the first failure
  bool stop_ = false, busy_ = false;
  std::thread thread_;
};

}  // namespace mp::dist
