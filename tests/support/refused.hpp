#pragma once
// Bad input, as the project promises it ends: exit code 2, one line on
// stderr naming the problem, and no output left behind.
#include <algorithm>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/process.hpp"

namespace resist::test {

inline long count_newlines(const std::string& s) { return long(std::count(s.begin(), s.end(), '\n')); }

// `command` must exit 2 with one stderr line containing `needle` and leave `out` absent.
inline void expect_refused(const std::string& command, const std::string& needle,
                           const std::filesystem::path& out = {}) {
  const auto r = run(command);
  EXPECT_EQ(r.code, 2) << command << "\n" << r.err;
  EXPECT_EQ(count_newlines(r.err), 1) << command << ": " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << command << ": " << r.err;
  if (!out.empty()) {
    EXPECT_FALSE(std::filesystem::exists(out)) << command;
  }
}

}  // namespace resist::test
