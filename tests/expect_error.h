// The bad-input expectation shared by the tests: the project's one-line refusal.
#pragma once

#include "common/error.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace mp::test {

// Runs f and expects the project's bad-input error (mp::Error, ErrorKind::BadInput): one line
// holding every needle. Returns the message (empty when nothing was thrown).
inline std::string expect_bad_input(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const mp::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), mp::ErrorKind::BadInput) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "more than one line: " << msg;
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected a bad-input error, nothing was thrown";
  return "";
}

}  // namespace mp::test
