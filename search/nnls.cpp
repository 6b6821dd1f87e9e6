#include "search/nnls.h"

#include "common/error.h"

#include <Eigen/QR>

#include <algorithm>
#include <vector>

namespace mp {
namespace {

// Least squares over the columns in `passive` only (the others held at 0).
Eigen::VectorXd solve_passive(const Eigen::MatrixXd& A, const Eigen::VectorXd& b, const std::vector<bool>& passive) {
  std::vector<Eigen::Index> cols;
  for (Eigen::Index j = 0; j < A.cols(); ++j)
    if (passive[j]) cols.push_back(j);
  Eigen::MatrixXd sub(A.rows(), static_cast<Eigen::Index>(cols.size()));
  for (size_t k = 0; k < cols.size(); ++k) sub.col(static_cast<Eigen::Index>(k)) = A.col(cols[k]);
  Eigen::VectorXd s = sub.colPivHouseholderQr().solve(b);
  Eigen::VectorXd z = Eigen::VectorXd::Zero(A.cols());
  for (size_t k = 0; k < cols.size(); ++k) z(cols[k]) = s(static_cast<Eigen::Index>(k));
  return z;
}

}  // namespace

Eigen::VectorXd nnls(const Eigen::MatrixXd& A_in, const Eigen::VectorXd& b, int max_iterations) {
  if (A_in.rows() != b.size())
    fail_input("nnls: the matrix has {} rows but the right-hand side {} entries", A_in.rows(), b.size());
  const Eigen::Index n = A_in.cols();
  // Unit-norm columns: FLOPs (1e12) and per-layer counts (1) side by side would make the
  // tolerance below meaningless otherwise.
  Eigen::VectorXd scale = Eigen::VectorXd::Ones(n);
  Eigen::MatrixXd A = A_in;
  for (Eigen::Index j = 0; j < n; ++j) {
    const double norm = A.col(j).norm();
    if (norm > 0) scale(j) = 1.0 / norm, A.col(j) *= scale(j);
  }
  const double tol = 1e-12 * std::max(1.0, b.norm());
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
  std::vector<bool> passive(n, false);
  Eigen::VectorXd w = A.transpose() * (b - A * x);
  for (int outer = 0; outer < max_iterations; ++outer) {
    // The most promising column still held at zero.
    Eigen::Index best = -1;
    for (Eigen::Index j = 0; j < n; ++j)
      if (!passive[j] && w(j) > tol && (best < 0 || w(j) > w(best))) best = j;
    if (best < 0) break;
    passive[best] = true;
    for (int inner = 0; inner < max_iterations; ++inner) {
      Eigen::VectorXd z = solve_passive(A, b, passive);
      bool feasible = true;
      for (Eigen::Index j = 0; j < n; ++j)
        if (passive[j] && z(j) <= 0) feasible = false;
      if (feasible) {
        x = z;
        break;
      }
      // Step from x towards z as far as feasibility allows, then release the columns that hit 0.
      double alpha = 1.0;
      for (Eigen::Index j = 0; j < n; ++j)
        if (passive[j] && z(j) <= 0) alpha = std::min(alpha, x(j) / (x(j) - z(j)));
      x += alpha * (z - x);
      for (Eigen::Index j = 0; j < n; ++j)
        if (passive[j] && x(j) <= tol) passive[j] = false, x(j) = 0;
    }
    w = A.transpose() * (b - A * x);
  }
  return x.cwiseProduct(scale);
}

}  // namespace mp
