#pragma once
// A JSON file a program under test wrote (report.json, results.json, ...).
#include <filesystem>

#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"

namespace resist::test {

inline nlohmann::json read_json(const std::filesystem::path& p) { return nlohmann::json::parse(read_text(p)); }

}  // namespace resist::test
