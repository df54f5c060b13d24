#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace crew {

/// Replaces the content of `path` atomically: writes `content` to
/// `<path>.<pid>.<n>.tmp` in the same directory (creating the directory if
/// needed), fsyncs it when `durable`, renames it over `path` and then fsyncs
/// the directory when `durable`. Readers see either the old or the new file,
/// never a mix. On failure removes the temporary file and throws `io_error`
/// naming the path and the errno text.
void write_file_atomic(const std::filesystem::path& path,
                       std::string_view content, bool durable = true);

/// Receives consecutive pieces of a file's content.
using content_sink = std::function<void(std::string_view)>;

/// Produces a file's content piece by piece into a sink.
using content_producer = std::function<void(const content_sink&)>;

/// Like `write_file_atomic`, but streams the content from `produce`, so a
/// large snapshot never needs to exist as one string.
void write_file_atomic_with(const std::filesystem::path& path,
                            const content_producer& produce,
                            bool durable = true);

/// Returns the whole content of `path`. Throws `input_error(errc::not_found)`
/// naming the path if it does not exist, `io_error` on other failures.
std::string read_file(const std::filesystem::path& path);

/// Writes all of `bytes` to `fd`, retrying on EINTR and partial writes.
/// Returns 0, or the errno of the failed write.
int write_all(int fd, std::string_view bytes) noexcept;

/// Appends `bytes` to `path` (created if missing, with its directories) and
/// fsyncs it when `durable`. Throws `io_error` naming the path on failure.
void append_file(const std::filesystem::path& path, std::string_view bytes,
                 bool durable = true);

/// Fsyncs the directory `dir` (makes a create/rename/unlink in it durable).
/// Throws `io_error` on failure.
void fsync_directory(const std::filesystem::path& dir);

} // namespace crew
