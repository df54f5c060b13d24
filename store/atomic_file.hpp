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

/// Like `write_file_atomic_with` for a file rewritten again and again (the
/// run snapshots): the content goes into the spare file `.<name>.spare` next
/// to `path` (created once, then overwritten in place), which is then
/// exchanged with `path` (`renameat2` `RENAME_EXCHANGE`), so the spare holds
/// the previous content. No inode is created or freed per write (on ext4 a
/// create after many frees is slow). Readers see the old or the new file,
/// never a mix, as long as they do not keep the file open across two writes
/// (the old inode is the next write's spare). Falls back to a rename where
/// the exchange is unsupported. Throws `io_error` naming the file.
void write_file_swap_with(const std::filesystem::path& path,
                          const content_producer& produce, bool durable = true);

/// `write_file_swap_with` for one string.
void write_file_swap(const std::filesystem::path& path, std::string_view content,
                     bool durable = true);

/// The spare file of `path` that `write_file_swap` uses (remove it when the
/// file is not rewritten any more).
std::filesystem::path spare_path(const std::filesystem::path& path);

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
