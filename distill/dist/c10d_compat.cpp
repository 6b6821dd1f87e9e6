// c10d_compat.h. Every difference between LibTorch versions lives in this file.
//
// LibTorch 1.13 (Debian): ProcessGroupGloo derives from c10d::ProcessGroup; Gloo implements
// all-reduce, broadcast and the list form of all-gather, but neither _allgather_base nor
// reduce_scatter (both throw), and no bfloat16 ("Invalid scalar type").
// LibTorch 2.x: process groups are c10d::Backend objects (ProcessGroupNCCL among them), used here
// directly, without the ProcessGroup wrapper; ProcessGroupNCCL has _allgather_base,
// _reduce_scatter_base, a bound device with eager connection, abort() and shutdown(). NCCL is
// used only from 2.3 on (those calls); CMake enables it only then, and this file checks again.
#include "distill/dist/c10d_compat.h"

#include "common/error.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/version.h>

#if defined(MP_C10D_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(MP_C10D_NCCL)
#if TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 3)
#error "MP_C10D_NCCL needs LibTorch >= 2.3 (bound devices, eager connection, shutdown)"
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <utility>
#include <vector>

namespace mp::dist::compat {

struct Group {
  std::string name;
#if defined(MP_C10D_GLOO)
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#if defined(MP_C10D_NCCL)
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
};

namespace {

// The process groups' own keys live under "pg/" in the job's store.
c10::intrusive_ptr<c10d::Store> scoped(const c10::intrusive_ptr<c10d::Store>& store) {
  return c10::make_intrusive<c10d::PrefixStore>("pg", store);
}

[[noreturn]] void no_group(const char* what) { fail_runtime("c10d {}: the process group is not available", what); }

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

bool have_gloo() {
#if defined(MP_C10D_GLOO)
  return true;
#else
  return false;
#endif
}

bool have_nccl() {
#if defined(MP_C10D_NCCL)
  return true;
#else
  return false;
#endif
}

std::string torch_version() { return TORCH_VERSION; }

std::shared_ptr<Group> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                       std::chrono::milliseconds timeout, const std::string& master_addr) {
#if defined(MP_C10D_GLOO)
  using PG = c10d::ProcessGroupGloo;
  auto opts = PG::Options::create(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    opts->devices.push_back(PG::createDeviceForInterface(ifname));
  else if (is_loopback(master_addr))
    opts->devices.push_back(PG::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(PG::createDefaultDevice());
  auto g = std::make_shared<Group>();
  g->name = "gloo";
  g->gloo = c10::make_intrusive<PG>(scoped(store), rank, size, opts);
  return g;
#else
  fail_usage("this build has no Gloo (LibTorch's ProcessGroupGloo.hpp or Gloo's headers were missing when it was "
             "configured); data parallel on the CPU needs it");
#endif
}

std::shared_ptr<Group> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                       std::chrono::milliseconds timeout, int device) {
#if defined(MP_C10D_NCCL)
  // CleanUpOnly: on an NCCL error or a timeout the watchdog aborts the communicators and marks
  // the work failed instead of killing the process, so the liveness monitor reports it in one
  // line (a user's own setting wins).
  ::setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", 0);
  auto opts = c10d::ProcessGroupNCCL::Options::create(/*is_high_priority_stream=*/true);
  opts->timeout = timeout;
  auto g = std::make_shared<Group>();
  g->name = "nccl";
  g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(scoped(store), rank, size, opts);
  const at::Device dev(at::kCUDA, static_cast<c10::DeviceIndex>(device));
  g->nccl->setBoundDeviceId(dev);
  g->nccl->eagerConnectSingleDevice(dev);
  return g;
#else
  fail_usage("this build has no ProcessGroupNCCL (it needs a CUDA LibTorch >= 2.3 and nccl.h when configured)");
#endif
}

std::string backend_name(const Group& g) { return g.name; }

bool has_all_gather(const Group& g) { return !g.name.empty(); }
bool has_reduce_scatter(const Group& g) { return g.name == "nccl"; }
bool sums_dtype(const Group& g, at::ScalarType t) { return !(g.name == "gloo" && t == at::kBFloat16); }

WorkPtr all_reduce_sum(Group& g, at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
#if defined(MP_C10D_GLOO)
  if (g.gloo) return g.gloo->allreduce(v, o);
#endif
#if defined(MP_C10D_NCCL)
  if (g.nccl) return g.nccl->allreduce(v, o);
#endif
  no_group("all-reduce");
}

WorkPtr broadcast(Group& g, at::Tensor& t, int root) {
  std::vector<at::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.rootTensor = 0;
#if defined(MP_C10D_GLOO)
  if (g.gloo) return g.gloo->broadcast(v, o);
#endif
#if defined(MP_C10D_NCCL)
  if (g.nccl) return g.nccl->broadcast(v, o);
#endif
  no_group("broadcast");
}

WorkPtr all_gather(Group& g, at::Tensor& out, at::Tensor& in) {
#if defined(MP_C10D_GLOO)
  if (g.gloo) {  // the list form: one output view per rank (Gloo copies into them)
    const int64_t n = in.numel(), size = out.numel() / std::max<int64_t>(n, 1);
    std::vector<std::vector<at::Tensor>> outs(1);
    for (int64_t r = 0; r < size; ++r) outs[0].push_back(out.narrow(0, r * n, n));
    std::vector<at::Tensor> ins{in};
    return g.gloo->allgather(outs, ins);
  }
#endif
#if defined(MP_C10D_NCCL)
  if (g.nccl) return g.nccl->_allgather_base(out, in);
#endif
  no_group("all-gather");
}

WorkPtr reduce_scatter_sum(Group& g, at::Tensor& out, at::Tensor& in) {
#if defined(MP_C10D_NCCL)
  if (g.nccl) {
    c10d::ReduceScatterOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return g.nccl->_reduce_scatter_base(out, in, o);
  }
#endif
  no_group("reduce-scatter");
}

void when_complete(const WorkPtr& w, std::function<void()> fn) {
  w->getFuture()->addCallback([fn = std::move(fn)](c10::ivalue::Future&) { fn(); });
}

void shutdown(Group& g) {
#if defined(MP_C10D_NCCL)
  if (g.nccl) g.nccl->shutdown();
#endif
  (void)g;  // Gloo: its destructor joins its threads once the work queue is empty
}

void abort(Group& g) noexcept {
#if defined(MP_C10D_NCCL)
  try {
    if (g.nccl) g.nccl->abort();
  } catch (...) {
  }
#endif
  (void)g;
}

std::string error_text(const std::exception& e) {
  std::string s;
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) s = c->what_without_backtrace();
  else s = e.what();
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace mp::dist::compat
