#include "eval/prepare_task.h"

namespace mp::eval {

PreparedTask prepare_task(const TaskSpec& spec, const BuildOptions& build, const TextEncoder& enc, int64_t max_length) {
  return tokenize_requests(build_task_requests(spec, build), enc, max_length);
}

PreparedTask tokenize_requests(TaskRequests requests, const TextEncoder& enc, int64_t max_length) {
  PreparedTask p;
  p.requests = std::move(requests);
  const bool rolling = p.requests.spec.kind == RequestKind::LoglikelihoodRolling;
  for (const DocRequests& d : p.requests.docs) {
    std::vector<std::pair<int64_t, int64_t>> spans;
    for (const Request& r : d.requests) {
      const int64_t begin = static_cast<int64_t>(p.tokens.size());
      if (rolling) {
        for (TokenRequest& w : encode_rolling(enc, r.continuation, max_length, d.where)) p.tokens.push_back(std::move(w));
      } else {
        p.tokens.push_back(encode_request(enc, r.context, r.continuation, max_length, d.where));
      }
      spans.emplace_back(begin, static_cast<int64_t>(p.tokens.size()));
    }
    p.span.push_back(std::move(spans));
  }
  return p;
}

}  // namespace mp::eval
