#include "store/paths.hpp"

#include <algorithm>
#include <random>
#include <system_error>

#include <fmt/format.h>

#include "messages/errors.hpp"
#include "store/json_writer.hpp"

namespace crew {

namespace fs = std::filesystem;

fs::path run_paths::manifest() const {
  return state_dir / "manifest.json";
}

fs::path run_paths::tasks() const {
  return state_dir / "tasks.json";
}

fs::path run_paths::events() const {
  return state_dir / "events.jsonl";
}

fs::path run_paths::plan() const {
  return state_dir / "plan.json";
}

fs::path run_paths::plan_bin() const {
  return state_dir / "plan.bin";
}

fs::path run_paths::checkpoint() const {
  return state_dir / "checkpoint.bin";
}

fs::path run_paths::deadletter() const {
  return state_dir / "deadletter.jsonl";
}

fs::path run_paths::lock() const {
  return state_dir / "run.lock";
}

fs::path run_paths::deadletter_request() const {
  return state_dir / "deadletter-request.jsonl";
}

fs::path run_paths::cancel_request() const {
  return state_dir / "cancel-request.json";
}

fs::path run_paths::agents_dir() const {
  return state_dir / "agents";
}

run_paths make_run_paths(const fs::path& crew_root, std::string_view run_id) {
  require_valid_run_id(run_id);
  run_paths result;
  result.crew_root = crew_root;
  result.state_dir = crew_root / "state" / "runs" / fs::path{run_id};
  result.artifacts_dir = crew_root / "artifacts" / fs::path{run_id};
  return result;
}

std::string new_run_id(std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  auto secs = floor<seconds>(now);
  auto day = floor<days>(secs);
  year_month_day ymd{day};
  hh_mm_ss hms{secs - day};
  std::random_device rd;
  auto rnd = static_cast<uint32_t>(rd());
  return fmt::format("team_{:04}{:02}{:02}{:02}{:02}{:02}_{:08x}",
                     static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count(), rnd);
}

bool is_valid_run_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128 || id.front() == '-')
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

void require_valid_run_id(std::string_view id) {
  if (!is_valid_run_id(id))
    throw input_error(errc::invalid_input,
                      fmt::format("invalid run id {}: expected 1..128 "
                                  "characters from [A-Za-z0-9_-], not "
                                  "starting with '-'",
                                  json_string(id)));
}

std::vector<std::string> list_run_ids(const fs::path& crew_root) {
  std::vector<std::string> result;
  std::error_code ec;
  fs::directory_iterator it{crew_root / "state" / "runs", ec};
  if (ec)
    return result;
  for (const auto& entry : it) {
    std::error_code ec2;
    if (!entry.is_directory(ec2))
      continue;
    auto name = entry.path().filename().string();
    if (is_valid_run_id(name))
      result.push_back(std::move(name));
  }
  std::sort(result.begin(), result.end());
  return result;
}

} // namespace crew
