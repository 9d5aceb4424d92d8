#pragma once
// Number formatting every table shares.
#include <cstdint>
#include <string>

namespace resist {

// Thousands separators for counts a reader must not miscount: 41396900 -> "41,396,900".
inline std::string thousands(std::uint64_t v) {
  const std::string d = std::to_string(v);
  std::string out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

}  // namespace resist
