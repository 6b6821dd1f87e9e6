// The NCCL Communicator (communicator.h), compiled only when LibTorch has CUDA and nccl.h was
// found (MP_WITH_NCCL).
//
// Streams: every all-reduce runs on one dedicated high-priority communication stream. At start
// an event recorded on the caller's current (compute) stream orders the collective after the
// work that wrote the buffer; wait() makes the caller's current stream wait for an event
// recorded after the collective, so whatever reads the sum is ordered after it. The host never
// blocks in start or wait. The buffer is marked as used on the communication stream, so the
// caching allocator does not hand it out again before the collective is done.
// Teardown: finish() finalizes and destroys the communicator (orderly); abort() (any thread:
// the liveness monitor) calls ncclCommAbort so a collective waiting for a dead rank returns;
// the destructor aborts a communicator that was never finished (an error path).
#include "distill/dist/cuda_support.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace mp::dist {
namespace {

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail_runtime("NCCL {} failed: {}", what, ncclGetErrorString(r));
}

ncclDataType_t nccl_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
#if NCCL_VERSION_CODE >= 21000
    case at::kBFloat16: return ncclBfloat16;
#endif
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    default: fail_runtime("NCCL all-reduce: unsupported dtype {}", c10::toString(t));
  }
}

void check_cuda(cudaError_t r, const char* what) {
  if (r != cudaSuccess) fail_runtime("CUDA {} failed: {}", what, cudaGetErrorString(r));
}

// A CUDA event (plain runtime API: the same in every LibTorch version): record() on one stream,
// then block() makes another stream wait for everything queued before the record.
class Event {
 public:
  explicit Event(c10::DeviceIndex device) : device_(device) {
    c10::cuda::CUDAGuard guard(device_);
    check_cuda(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~Event() {
    c10::cuda::CUDAGuard guard(device_);
    cudaEventDestroy(event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(const c10::cuda::CUDAStream& s) { check_cuda(cudaEventRecord(event_, s.stream()), "cudaEventRecord"); }
  void block(const c10::cuda::CUDAStream& s) {
    check_cuda(cudaStreamWaitEvent(s.stream(), event_, 0), "cudaStreamWaitEvent");
  }

 private:
  c10::DeviceIndex device_;
  cudaEvent_t event_ = nullptr;
};

class NcclWork : public CommWork {
 public:
  NcclWork(std::shared_ptr<Event> done, c10::DeviceIndex device) : done_(std::move(done)), device_(device) {}
  void wait() override {
    c10::cuda::CUDAGuard guard(device_);
    done_->block(c10::cuda::getCurrentCUDAStream(device_));
  }

 private:
  std::shared_ptr<Event> done_;
  c10::DeviceIndex device_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(int64_t rank, int64_t world, int device, const std::string& id_blob)
      : rank_(rank), world_(world), device_(static_cast<c10::DeviceIndex>(device)),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_)) {
    ncclUniqueId id;
    if (id_blob.size() != sizeof(id.internal))
      fail_runtime("rank {}: malformed NCCL id from rank 0 ({} bytes, expected {})", rank, id_blob.size(),
                   sizeof(id.internal));
    std::memcpy(id.internal, id_blob.data(), sizeof(id.internal));
    c10::cuda::CUDAGuard guard(device_);
    check(ncclCommInitRank(&comm_, static_cast<int>(world), id, static_cast<int>(rank)), "ncclCommInitRank");
    state_ = kActive;
  }
  ~NcclCommunicator() override { abort(); }

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  std::string name() const override { return "nccl"; }
  at::Device device() const override { return at::Device(at::kCUDA, device_); }

  std::shared_ptr<CommWork> start_all_reduce_sum(const at::Tensor& flat) override {
    if (!flat.defined() || flat.dim() != 1 || !flat.is_contiguous() || !flat.is_cuda() ||
        flat.get_device() != device_)
      fail_runtime("NCCL all-reduce: expected a 1-D contiguous tensor on cuda:{}", static_cast<int>(device_));
    if (state_ != kActive) fail_runtime("NCCL all-reduce after the communicator was closed");
    c10::cuda::CUDAGuard guard(device_);
    Event ready(device_);
    ready.record(c10::cuda::getCurrentCUDAStream(device_));
    ready.block(stream_);
    check(ncclAllReduce(flat.data_ptr(), flat.data_ptr(), static_cast<size_t>(flat.numel()),
                        nccl_type(flat.scalar_type()), ncclSum, comm_, stream_.stream()),
          "ncclAllReduce");
    flat.record_stream(stream_);
    auto done = std::make_shared<Event>(device_);
    done->record(stream_);
    return std::make_shared<NcclWork>(std::move(done), device_);
  }

  void finish() override {
    if (state_.exchange(kFinishing) != kActive) return;
    c10::cuda::CUDAGuard guard(device_);
#if NCCL_VERSION_CODE >= 21400
    check(ncclCommFinalize(comm_), "ncclCommFinalize");
#endif
    std::lock_guard<std::mutex> lock(mu_);
    int expected = kFinishing;  // not aborted meanwhile
    if (state_.compare_exchange_strong(expected, kClosed)) ncclCommDestroy(comm_);
  }

  void abort() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    const int s = state_.exchange(kClosed);
    if (s == kActive || s == kFinishing) ncclCommAbort(comm_);
  }

  std::string poll_error() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != kActive) return "";
    ncclResult_t r = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &r) != ncclSuccess) return "";
#if NCCL_VERSION_CODE >= 21400
    if (r == ncclInProgress) return "";
#endif
    if (r == ncclSuccess) return "";
    return fmt::format("rank {}: NCCL reported an error: {}; stopping", rank_, ncclGetErrorString(r));
  }

 private:
  enum { kStarting, kActive, kFinishing, kClosed };
  int64_t rank_, world_;
  c10::DeviceIndex device_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
  std::atomic<int> state_{kStarting};
  std::mutex mu_;
};

}  // namespace

std::string nccl_unique_id() {
  ncclUniqueId id;
  check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  return std::string(id.internal, sizeof(id.internal));
}

std::unique_ptr<Communicator> make_nccl_communicator(int64_t rank, int64_t world_size, int device,
                                                     const std::string& unique_id) {
  return std::make_unique<NcclCommunicator>(rank, world_size, device, unique_id);
}

std::string nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  return fmt::format("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100);
}

}  // namespace mp::dist
