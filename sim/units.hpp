#pragma once
// Quantities with units, as users write them in platform files and flags:
// "10Gbps" (bits/s), "1.25GBps" (bytes/s), "50us", "15.7Tf", "4MiB". A plain
// number is taken in base units (bytes/s, seconds, flop/s, bytes).
#include <cstdint>
#include <string>

namespace resist::sim {

enum class Unit { bandwidth, time, flops, bytes };

// Throws UserError "<what>: unknown unit in '<text>' (accepted: ...)".
double parse_quantity(const std::string& text, Unit unit, const std::string& what);
std::uint64_t parse_bytes(const std::string& text, const std::string& what);

}  // namespace resist::sim
