#include "store/model.hpp"

#include <array>
#include <utility>

namespace crew {

namespace {

constexpr std::array<std::pair<run_status, std::string_view>, 7> run_names{{
  {run_status::queued, "queued"},
  {run_status::planning, "planning"},
  {run_status::running, "running"},
  {run_status::blocked, "blocked"},
  {run_status::completed, "completed"},
  {run_status::failed, "failed"},
  {run_status::cancelled, "cancelled"},
}};

constexpr std::array<std::pair<task_status, std::string_view>, 6> task_names{{
  {task_status::queued, "queued"},
  {task_status::running, "running"},
  {task_status::completed, "completed"},
  {task_status::failed, "failed"},
  {task_status::cancelled, "cancelled"},
  {task_status::skipped, "skipped"},
}};

template <class Table, class Enum>
const char* lookup(const Table& table, Enum x) noexcept {
  for (auto& [key, name] : table)
    if (key == x)
      return name.data();
  return "unknown";
}

template <class Table, class Enum>
bool parse(const Table& table, std::string_view str, Enum& x) noexcept {
  for (auto& [key, name] : table)
    if (name == str) {
      x = key;
      return true;
    }
  return false;
}

} // namespace

const char* to_string(run_status x) noexcept {
  return lookup(run_names, x);
}

const char* to_string(task_status x) noexcept {
  return lookup(task_names, x);
}

bool from_string(std::string_view str, run_status& x) noexcept {
  return parse(run_names, str, x);
}

bool from_string(std::string_view str, task_status& x) noexcept {
  return parse(task_names, str, x);
}

} // namespace crew
