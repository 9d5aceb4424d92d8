#pragma once
// Bad input from a user (a flag, a config file, a schedule file, a dataset
// path). The message is one line naming the offending value or JSON path and
// what is accepted; programs print it and exit with code 2. Bugs are
// assertions, never UserError.
#include <stdexcept>
#include <string>

namespace resist {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kUserErrorExit = 2;

}  // namespace resist
