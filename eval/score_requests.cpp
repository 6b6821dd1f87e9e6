#include "eval/score_requests.h"

#include "common/error.h"
#include "model/decode.h"
#include "model/forward.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <map>
#include <numeric>

namespace mp::eval {
namespace {

// Per scored position: its row-major index into a [rows x len] hidden-state tensor, the target
// token and the request it belongs to.
struct Positions {
  std::vector<int64_t> flat, target, owner;
  void add(int64_t f, int64_t t, int64_t o) {
    flat.push_back(f);
    target.push_back(t);
    owner.push_back(o);
  }
};

// log p(target) and argmax == target at the given positions of normed hidden states [rows, len, d]
// (or [rows, d] with len 1), added into scores. The LM head runs on a slice of positions at a time
// so that positions x vocabulary stays near 2^26 floats.
void accumulate(const Model& m, const at::Tensor& normed, const Positions& p, std::vector<TokenScore>& scores,
                std::vector<char>& all_greedy) {
  if (p.flat.empty()) return;
  const at::Tensor h = normed.reshape({-1, normed.size(-1)});
  const int64_t T = static_cast<int64_t>(p.flat.size());
  const int64_t slice = std::max<int64_t>(1, (int64_t{1} << 26) / m.config.vocab_size);
  for (int64_t t0 = 0; t0 < T; t0 += slice) {
    const int64_t n = std::min(slice, T - t0);
    const at::Tensor idx = at::tensor(std::vector<int64_t>(p.flat.begin() + t0, p.flat.begin() + t0 + n), at::kLong).to(m.device());
    const at::Tensor tgt = at::tensor(std::vector<int64_t>(p.target.begin() + t0, p.target.begin() + t0 + n), at::kLong).to(m.device());
    const at::Tensor logits = lm_head_logits(m, h.index_select(0, idx));  // fp32 [n, V]
    const at::Tensor lp = (logits.gather(1, tgt.unsqueeze(1)).squeeze(1) - at::logsumexp(logits, -1)).to(at::kDouble).cpu();
    const at::Tensor hit = (logits.argmax(-1) == tgt).cpu();
    const double* lpp = lp.data_ptr<double>();
    const bool* hp = hit.data_ptr<bool>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = p.owner[t0 + i];
      scores[o].logprob += lpp[i];
      if (!hp[i]) all_greedy[o] = 0;
    }
  }
}

at::Tensor padded_ids(const std::vector<std::vector<int64_t>>& rows, int64_t len) {
  at::Tensor ids = at::zeros({static_cast<int64_t>(rows.size()), len}, at::kLong);
  int64_t* p = ids.data_ptr<int64_t>();
  for (size_t r = 0; r < rows.size(); ++r) std::copy(rows[r].begin(), rows[r].end(), p + r * len);
  return ids;
}

// The harness's way: each request is the sequence context + continuation[:-1], longest first, in
// right-padded batches.
void score_separately(const Model& m, const std::vector<TokenRequest>& reqs, std::vector<int64_t> order,
                      const ScoreOptions& o, std::vector<TokenScore>& scores, std::vector<char>& greedy,
                      const std::function<void(int64_t)>& on_done, ScoreStats& st) {
  auto total = [&](int64_t i) { return reqs[i].context.size() + reqs[i].continuation.size(); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return total(a) > total(b); });
  for (size_t b0 = 0; b0 < order.size();) {
    const int64_t len = static_cast<int64_t>(total(order[b0])) - 1;
    const size_t rows = std::max<int64_t>(1, o.batch_tokens / len);
    const size_t b1 = std::min(order.size(), b0 + rows);
    std::vector<std::vector<int64_t>> seqs;
    Positions pos;
    for (size_t k = b0; k < b1; ++k) {
      const TokenRequest& r = reqs[order[k]];
      std::vector<int64_t> s = r.context;
      s.insert(s.end(), r.continuation.begin(), r.continuation.end() - 1);
      const int64_t row = static_cast<int64_t>(seqs.size()), c0 = static_cast<int64_t>(r.context.size()) - 1;
      for (size_t j = 0; j < r.continuation.size(); ++j) pos.add(row * len + c0 + j, r.continuation[j], order[k]);
      seqs.push_back(std::move(s));
    }
    const at::Tensor ids = padded_ids(seqs, len).to(m.device());
    accumulate(m, apply_final_norm(m, forward_hidden(m, ids)), pos, scores, greedy);
    st.model_tokens += static_cast<int64_t>(seqs.size()) * len;
    if (on_done) on_done(static_cast<int64_t>(b1 - b0));
    b0 = b1;
  }
}

// Requests sharing a context: prefill it once, then all continuations from its state.
void score_shared(const Model& m, const std::vector<TokenRequest>& reqs,
                  std::vector<std::pair<const std::vector<int64_t>*, std::vector<int64_t>>> groups, const ScoreOptions& o,
                  std::vector<TokenScore>& scores, std::vector<char>& greedy,
                  const std::function<void(int64_t)>& on_done, ScoreStats& st) {
  std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.first->size() > b.first->size(); });
  for (size_t g0 = 0; g0 < groups.size();) {
    const int64_t Lc = static_cast<int64_t>(groups[g0].first->size());
    const size_t max_rows = std::max<int64_t>(1, o.batch_tokens / Lc);
    size_t g1 = g0 + 1;
    while (g1 < groups.size() && g1 - g0 < max_rows && static_cast<int64_t>(groups[g1].first->size()) == Lc) ++g1;
    std::vector<std::vector<int64_t>> ctx;
    for (size_t g = g0; g < g1; ++g) ctx.push_back(*groups[g].first);
    InferenceCache cache(m, static_cast<int64_t>(ctx.size()), Lc);
    at::NoGradGuard no_grad;
    // prefill's last logits are the first continuation token's distribution; the final-normed
    // hidden state is not exposed, so score from the logits directly.
    const at::Tensor last = prefill(m, padded_ids(ctx, Lc).to(m.device()), cache);  // fp32 [G, V]
    st.model_tokens += static_cast<int64_t>(ctx.size()) * Lc;
    st.shared_contexts += static_cast<int64_t>(ctx.size());
    {
      std::vector<int64_t> row, tgt, owner;
      for (size_t g = g0; g < g1; ++g)
        for (int64_t i : groups[g].second) {
          row.push_back(static_cast<int64_t>(g - g0));
          tgt.push_back(reqs[i].continuation[0]);
          owner.push_back(i);
        }
      const at::Tensor r = at::tensor(row, at::kLong).to(m.device()), t = at::tensor(tgt, at::kLong).to(m.device());
      const at::Tensor logits = last.index_select(0, r);
      const at::Tensor lp = (logits.gather(1, t.unsqueeze(1)).squeeze(1) - at::logsumexp(logits, -1)).to(at::kDouble).cpu();
      const at::Tensor hit = (logits.argmax(-1) == t).cpu();
      for (size_t k = 0; k < owner.size(); ++k) {
        scores[owner[k]].logprob += lp.data_ptr<double>()[k];
        if (!hit.data_ptr<bool>()[k]) greedy[owner[k]] = 0;
      }
    }
    // The rest of each continuation: its tokens but the last, from the context's state.
    std::vector<std::pair<int64_t, int64_t>> rest;  // (cache row, request)
    for (size_t g = g0; g < g1; ++g)
      for (int64_t i : groups[g].second)
        if (reqs[i].continuation.size() > 1) rest.emplace_back(static_cast<int64_t>(g - g0), i);
    std::stable_sort(rest.begin(), rest.end(), [&](const auto& a, const auto& b) {
      return reqs[a.second].continuation.size() > reqs[b.second].continuation.size();
    });
    for (size_t r0 = 0; r0 < rest.size();) {
      const int64_t len = static_cast<int64_t>(reqs[rest[r0].second].continuation.size()) - 1;
      const size_t r1 = std::min(rest.size(), r0 + static_cast<size_t>(std::max<int64_t>(1, o.batch_tokens / len)));
      std::vector<int64_t> rows;
      std::vector<std::vector<int64_t>> seqs;
      Positions pos;
      for (size_t k = r0; k < r1; ++k) {
        const TokenRequest& q = reqs[rest[k].second];
        rows.push_back(rest[k].first);
        const int64_t row = static_cast<int64_t>(seqs.size());
        for (size_t j = 1; j < q.continuation.size(); ++j) pos.add(row * len + (j - 1), q.continuation[j], rest[k].second);
        seqs.emplace_back(q.continuation.begin(), q.continuation.end() - 1);
      }
      InferenceCache branch = gather_cache_rows(m, cache, rows, Lc + len);
      accumulate(m, extend_normed(m, branch, padded_ids(seqs, len).to(m.device())), pos, scores, greedy);
      st.model_tokens += static_cast<int64_t>(seqs.size()) * len;
      r0 = r1;
    }
    int64_t done = 0;
    for (size_t g = g0; g < g1; ++g) done += static_cast<int64_t>(groups[g].second.size());
    if (on_done) on_done(done);
    g0 = g1;
  }
}

}  // namespace

std::vector<TokenScore> score_requests(const Model& m, const std::vector<TokenRequest>& reqs, const ScoreOptions& o,
                                       const std::function<void(int64_t)>& on_done, ScoreStats* stats) {
  at::NoGradGuard no_grad;
  if (o.batch_tokens < 1) fail_usage("--batch-tokens {}: expected at least 1", o.batch_tokens);
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].context.empty() || reqs[i].continuation.empty())
      fail_input("request {}: empty {}; expected tokens on both sides", i, reqs[i].context.empty() ? "context" : "continuation");
    for (const auto* part : {&reqs[i].context, &reqs[i].continuation})
      for (int64_t id : *part)
        if (id < 0 || id >= m.config.vocab_size)
          fail_input("request {}: token id {} is outside the model's vocabulary [0, {})", i, id, m.config.vocab_size);
  }
  std::vector<TokenScore> scores(reqs.size());
  std::vector<char> greedy(reqs.size(), 1);
  ScoreStats local;
  ScoreStats& st = stats ? *stats : local;
  std::vector<int64_t> separate;
  if (o.reuse_context) {
    std::map<std::vector<int64_t>, std::vector<int64_t>> by_context;
    for (size_t i = 0; i < reqs.size(); ++i) by_context[reqs[i].context].push_back(static_cast<int64_t>(i));
    std::vector<std::pair<const std::vector<int64_t>*, std::vector<int64_t>>> groups;
    for (auto& [ctx, members] : by_context) {
      if (members.size() > 1) groups.emplace_back(&ctx, members);
      else separate.push_back(members[0]);
    }
    std::sort(separate.begin(), separate.end());
    score_shared(m, reqs, std::move(groups), o, scores, greedy, on_done, st);
  } else {
    separate.resize(reqs.size());
    std::iota(separate.begin(), separate.end(), 0);
  }
  score_separately(m, reqs, separate, o, scores, greedy, on_done, st);
  for (size_t i = 0; i < reqs.size(); ++i) scores[i].greedy = greedy[i] != 0;
  return scores;
}

}  // namespace mp::eval
