// Non-negative least squares: min ||A x - b||_2 subject to x >= 0 (Lawson & Hanson's active-set
// method). The throughput model fits latencies as sums of non-negative costs (seconds per layer,
// per FLOP, per byte); plain least squares would happily trade a negative per-layer cost against
// a positive per-FLOP one and predict negative times outside the measured range.
#pragma once

#include <Eigen/Core>

namespace mp {

// Columns of A are rescaled to unit norm internally, so features may have any units.
// Bad input when A and b disagree in rows; the result has A.cols() entries, all >= 0.
Eigen::VectorXd nnls(const Eigen::MatrixXd& A, const Eigen::VectorXd& b, int max_iterations = 500);

}  // namespace mp
