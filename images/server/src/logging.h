// Structured logs: one JSON object per line on stderr ({"ts", "level", "msg", ...}),
// which log shippers parse without a regex. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace trtaoti {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void SetLogLevel(LogLevel level);
bool ParseLogLevel(const std::string& text, LogLevel& level);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, const std::string& message, const nlohmann::json& fields = nlohmann::json::object());

}  // namespace trtaoti
