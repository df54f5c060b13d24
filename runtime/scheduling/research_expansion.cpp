#include "runtime/scheduling/research_expansion.hpp"

#include <algorithm>
#include <system_error>

#include <fmt/format.h>

namespace crew {

std::vector<std::string> source_pi_projects(const std::filesystem::path& cwd) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it{cwd / "Source", ec};
  for (; !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    std::error_code type_ec;
    if (name.rfind("pi-", 0) == 0
        && fs::is_directory(it->symlink_status(type_ec)) && !type_ec)
      out.push_back("Source/" + name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t research_shard_count(size_t projects) {
  auto wanted = std::min<size_t>(8, std::max<size_t>(4, (projects + 2) / 3));
  return std::min(wanted, projects);
}

std::vector<workflow_step>
parallel_research_steps(const std::vector<std::string>& projects) {
  std::vector<workflow_step> steps;
  auto shards = research_shard_count(projects.size());
  if (shards == 0)
    return steps;
  auto bullets = [](const std::vector<std::string>& xs) {
    std::string out;
    for (const auto& x : xs)
      out += fmt::format("- {}\n", x);
    return out;
  };
  workflow_step discover;
  discover.id = "discover";
  discover.role = "explorer";
  discover.parallel_group = "inventory";
  discover.task = fmt::format(
      "Quickly inventory the {} pi-* projects for: {{goal}}\n\nProjects:\n{}\n"
      "Summarize routing notes only; the shards explore in parallel without "
      "waiting for you.",
      projects.size(), bullets(projects));
  steps.push_back(std::move(discover));
  std::vector<std::vector<std::string>> reads(shards);
  for (size_t i = 0; i < projects.size(); ++i)
    reads[i % shards].push_back(projects[i]);
  std::vector<std::string> shard_ids;
  for (size_t i = 0; i < shards; ++i) {
    workflow_step s;
    s.id = fmt::format("explore-shard-{}", i + 1);
    s.role = "explorer";
    s.parallel_group = "explore";
    s.task = fmt::format(
        "Explore this shard of projects for: {{goal}}\n\nPaths:\n{}\n"
        "Report purpose, architecture, runtime and UI patterns, package "
        "configuration, documentation and lessons worth reusing, with paths as "
        "evidence.",
        bullets(reads[i]));
    s.reads = std::move(reads[i]);
    shard_ids.push_back(s.id);
    steps.push_back(std::move(s));
  }
  workflow_step synthesize;
  synthesize.id = "synthesize";
  synthesize.role = "analyst";
  synthesize.depends_on = std::move(shard_ids);
  synthesize.task
      = "Synthesize the findings of all shards for: {goal}\n\nIdentify common "
        "patterns, gaps and concrete recommendations. Use the discover output "
        "if available, but rely on the completed shard reports first.";
  steps.push_back(std::move(synthesize));
  workflow_step write;
  write.id = "write";
  write.role = "writer";
  write.depends_on = {"synthesize"};
  write.output = "research-summary.md";
  write.task = "Write a concise final research summary for: {goal}\n\nInclude "
               "evidence, risks and actionable next steps.";
  steps.push_back(std::move(write));
  return steps;
}

std::optional<std::vector<workflow_step>>
expand_parallel_research(const std::filesystem::path& cwd) {
  auto steps = parallel_research_steps(source_pi_projects(cwd));
  if (steps.empty())
    return std::nullopt;
  return steps;
}

} // namespace crew
