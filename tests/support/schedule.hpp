#pragma once
// Reading a schedule that should be refused: the one-line message, or
// "no error" when it was accepted.
#include <string>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/schedule.hpp"

namespace resist::test {

inline std::string schedule_read_error(const nlohmann::json& j) {
  try {
    schedule_from_json(j);
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace resist::test
