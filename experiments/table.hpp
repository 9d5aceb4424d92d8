#pragma once
// A markdown table as the study reports print them: the first column
// left-aligned, the others right-aligned.
#include <string>
#include <vector>

namespace resist::study {

struct Table {
  std::vector<std::string> head;
  std::vector<std::vector<std::string>> rows;
  std::string md() const {
    std::string s = "|";
    for (const auto& h : head) s += " " + h + " |";
    s += "\n|";
    for (std::size_t i = 0; i < head.size(); ++i) s += i == 0 ? "---|" : "---:|";
    s += "\n";
    for (const auto& r : rows) {
      s += "|";
      for (const auto& c : r) s += " " + c + " |";
      s += "\n";
    }
    return s;
  }
};

}  // namespace resist::study
