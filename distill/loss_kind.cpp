#include "distill/loss_kind.h"

#include "common/error.h"

namespace mp {

LossKind parse_loss_kind(const std::string& name) {
  if (name == "kl") return LossKind::KL;
  if (name == "kl+ce") return LossKind::KLPlusCE;
  if (name == "ce") return LossKind::CE;
  fail_usage("loss: expected kl, kl+ce or ce, got '{}'", name);
}

const char* loss_kind_name(LossKind k) {
  switch (k) {
    case LossKind::KL: return "kl";
    case LossKind::KLPlusCE: return "kl+ce";
    case LossKind::CE: return "ce";
  }
  return "?";
}

}  // namespace mp
