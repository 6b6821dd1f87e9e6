// The one file that knows which LibTorch it is built against: it makes c10d process groups (Gloo,
// NCCL) and starts their collectives, hiding what differs between LibTorch 1.13 (Debian, CPU) and
// 2.x (the GPU machine's 2.11): the ProcessGroup / Backend class split, the option structs, which
// collectives a backend implements, NCCL's error-handling mode, teardown.
//
// Which backends exist is fixed when c10d_compat.cpp is compiled: Gloo with MP_C10D_GLOO (LibTorch's
// ProcessGroupGloo.hpp and Gloo's own headers were found), NCCL with MP_C10D_NCCL (a CUDA LibTorch
// >= 2.3 with ProcessGroupNCCL.hpp, and nccl.h). have_gloo() / have_nccl() report it at run time.
// Collectives take 1-D contiguous tensors on the group's device and return c10d work; the caller
// keeps the tensors alive and untouched until the work is complete. Every failure of c10d comes
// out as std::exception; error_text() turns one into a single line.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>

namespace mp::dist::compat {

struct Group;  // one c10d process group (opaque)
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

bool have_gloo();
bool have_nccl();
std::string torch_version();  // "1.13.0"

// Gloo over TCP: the interface is GLOO_SOCKET_IFNAME when set, loopback when MASTER_ADDR is a
// loopback address (one host), else the one this host's name resolves to.
std::shared_ptr<Group> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                       std::chrono::milliseconds timeout, const std::string& master_addr);
// NCCL on CUDA device `device`, connected before returning (blocks until every rank has joined).
std::shared_ptr<Group> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                       std::chrono::milliseconds timeout, int device);

std::string backend_name(const Group& g);  // "gloo", "nccl"
// Whether the group runs these natively (else the caller builds them from an all-reduce), and
// whether it sums this dtype natively (Gloo has no bfloat16).
bool has_all_gather(const Group& g);
bool has_reduce_scatter(const Group& g);
bool sums_dtype(const Group& g, at::ScalarType t);

WorkPtr all_reduce_sum(Group& g, at::Tensor& t);
WorkPtr broadcast(Group& g, at::Tensor& t, int root);
// out: size x in.numel() elements, rank r's `in` at [r * n, (r + 1) * n). Only if has_all_gather.
WorkPtr all_gather(Group& g, at::Tensor& out, at::Tensor& in);
// in: size x out.numel() elements; out gets rank r's part of the sum. Only if has_reduce_scatter.
WorkPtr reduce_scatter_sum(Group& g, at::Tensor& out, at::Tensor& in);

// Runs fn (on some c10d thread) once `w` has finished on the host side, with or without error.
void when_complete(const WorkPtr& w, std::function<void()> fn);

// Orderly teardown after the last collective (every rank calls it); then abort() is a no-op.
void shutdown(Group& g);
// Makes pending and later collectives fail instead of waiting (NCCL: aborts its communicators;
// Gloo has no abort: its collectives fail by themselves when a peer's connection closes, or at
// the timeout). Any thread.
void abort(Group& g) noexcept;

// One line for a c10d failure: c10::Error's message without its backtrace, first line only.
std::string error_text(const std::exception& e);

}  // namespace mp::dist::compat
