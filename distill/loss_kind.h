// The distillation loss kinds by name, apart from the loss itself (kd_loss.h) so that settings
// (train_config.h) are read without LibTorch.
#pragma once

#include <string>

namespace mp {

enum class LossKind { KL, KLPlusCE, CE };
LossKind parse_loss_kind(const std::string& name);  // "kl", "kl+ce", "ce"; usage error otherwise
const char* loss_kind_name(LossKind k);

}  // namespace mp
