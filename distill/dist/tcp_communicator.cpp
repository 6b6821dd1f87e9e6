#include "distill/dist/tcp_communicator.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace mp::dist {

struct TcpCommunicator::Op {
  uint64_t seq = 0;
  at::Tensor target, host;  // host: the CPU buffer summed in place (target itself on the CPU)
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string error;
};

namespace {

struct Header {
  uint64_t seq;
  int64_t numel;
  int32_t dtype, rank;
};

class TcpWork : public CommWork {
 public:
  explicit TcpWork(std::shared_ptr<TcpCommunicator::Op> op) : op_(std::move(op)) {}
  void wait() override {
    std::unique_lock<std::mutex> lock(op_->mu);
    op_->cv.wait(lock, [&] { return op_->done; });
    if (!op_->error.empty()) fail_runtime("{}", op_->error);
    if (!op_->host.is_same(op_->target)) op_->target.copy_(op_->host);
  }

 private:
  std::shared_ptr<TcpCommunicator::Op> op_;
};

}  // namespace

TcpCommunicator::TcpCommunicator(int64_t rank, int64_t world_size, std::vector<std::pair<int64_t, Socket*>> peers,
                                 double timeout_s, std::function<int64_t(int64_t)> pid_of)
    : rank_(rank), world_(world_size), peers_(std::move(peers)), timeout_s_(timeout_s), pid_of_(std::move(pid_of)) {
  thread_ = std::thread([this] { worker(); });
}

TcpCommunicator::~TcpCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (busy_ || !queue_.empty())  // left unwaited (an error path): do not wait for peers to answer
      for (auto& p : peers_) p.second->shutdown();
  }
  cv_.notify_all();
  thread_.join();
}

std::string TcpCommunicator::who(int64_t r) const {
  return pid_of_ ? fmt::format("rank {} (pid {})", r, pid_of_(r)) : fmt::format("rank {}", r);
}

std::shared_ptr<CommWork> TcpCommunicator::start_all_reduce_sum(const at::Tensor& flat) {
  if (!flat.defined() || flat.dim() != 1 || !flat.is_contiguous())
    fail_runtime("all-reduce: expected a defined 1-D contiguous tensor");
  auto op = std::make_shared<Op>();
  op->target = flat;
  op->host = flat.is_cpu() ? flat : flat.to(at::kCPU);
  {
    std::lock_guard<std::mutex> lock(mu_);
    op->seq = seq_++;
    queue_.push_back(op);
  }
  cv_.notify_all();
  return std::make_shared<TcpWork>(op);
}

void TcpCommunicator::abort() noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = "the all-reduce was aborted";
  }
  for (auto& p : peers_) p.second->shutdown();
}

void TcpCommunicator::worker() {
  for (;;) {
    std::shared_ptr<Op> op;
    std::string err;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      op = queue_.front();
      queue_.pop_front();
      err = error_;
      busy_ = true;
    }
    if (err.empty()) {
      try {
        run(*op);
      } catch (const std::exception& e) {
        err = e.what();
      }
      if (!err.empty()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (error_.empty()) error_ = err;
        err = error_;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    {
      std::lock_guard<std::mutex> lock(op->mu);
      op->error = err;
      op->done = true;
    }
    op->cv.notify_all();
  }
}

void TcpCommunicator::run(Op& op) {
  at::Tensor& x = op.host;
  const Header mine{op.seq, x.numel(), static_cast<int32_t>(x.scalar_type()), static_cast<int32_t>(rank_)};
  const size_t bytes = static_cast<size_t>(x.numel()) * x.element_size();
  int64_t peer = 0;
  auto check = [&](const Header& h) {
    if (h.seq != mine.seq || h.numel != mine.numel || h.dtype != mine.dtype)
      throw std::runtime_error(fmt::format(
          "all-reduce #{} differs between ranks: {} has {} elements of {} (operation #{}), rank {} has {} elements of "
          "{}; every rank must run the same model and settings",
          mine.seq, who(peer), h.numel, c10::toString(static_cast<at::ScalarType>(h.dtype)), h.seq, rank_, mine.numel,
          c10::toString(x.scalar_type())));
  };
  try {
    if (rank_ == 0) {
      at::Tensor in;
      for (auto& [r, s] : peers_) {  // rank order: the sum is ((x0 + x1) + x2) + ...
        peer = r;
        Header h{};
        s->recv_all(&h, sizeof(h), timeout_s_);
        check(h);
        if (!in.defined()) in = at::empty_like(x);
        s->recv_all(in.data_ptr(), bytes, timeout_s_);
        x.add_(in);
      }
      for (auto& [r, s] : peers_) {
        peer = r;
        s->send_all(&mine, sizeof(mine), timeout_s_);
        s->send_all(x.data_ptr(), bytes, timeout_s_);
      }
    } else {
      Socket* s = peers_.at(0).second;
      s->send_all(&mine, sizeof(mine), timeout_s_);
      s->send_all(x.data_ptr(), bytes, timeout_s_);
      Header h{};
      s->recv_all(&h, sizeof(h), timeout_s_);
      check(h);
      s->recv_all(x.data_ptr(), bytes, timeout_s_);
    }
  } catch (const SocketError& e) {
    if (e.timed_out())
      throw std::runtime_error(fmt::format("{} made no progress for {:g} s in an all-reduce (MP_DIST_TIMEOUT)",
                                           who(peer), timeout_s_));
    throw std::runtime_error(fmt::format("{} died or lost connection", who(peer)));
  }
}

}  // namespace mp::dist
