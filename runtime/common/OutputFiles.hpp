#pragma once
// Output files that never destroy what exists (docs/reliability.md):
//  - an output path must be a regular file or not exist (a directory, device,
//    FIFO or socket is refused before the run, naming the flag);
//  - two outputs and an input must be different files (device and inode where
//    they exist, the normalised absolute path otherwise);
//  - files are written to a fresh temporary file beside the target (unique
//    name, O_EXCL) and renamed over it, so a reader never sees a half file and
//    a failed write leaves the earlier file as it was, and no temporary behind.

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moe {

/// A write error on an output (disk full, I/O error): one line naming the flag
/// and the path. Rank-local unless `collective` (see apps/StopOnError.hpp).
class OutputError : public std::runtime_error {
 public:
  explicit OutputError(const std::string& what, bool collective = false)
      : std::runtime_error(what), collective_(collective) {}
  /// Every rank throws it at the same point (rank 0 holds the message).
  bool collective() const { return collective_; }

 private:
  bool collective_;
};

/// "" when `path` may be written as the output of `flag`: it is a regular file
/// (after following symlinks) or does not exist, and its directory exists and
/// a new file can be created there (tried with a unique name, then removed).
/// Else a one-line reason starting with `flag`.
std::string check_output_path(const std::string& path, const std::string& flag);

/// True when `a` and `b` name the same file: same device and inode when both
/// exist, else the same normalised absolute path (symlinks resolved as far as
/// they exist).
bool same_file(const std::string& a, const std::string& b);

/// "" when the named paths (flag, path) are pairwise different files, else a
/// one-line reason naming both flags. Empty paths are skipped.
std::string check_distinct(const std::vector<std::pair<std::string, std::string>>& named);

/// The file a write to `path` replaces: the target of `path` when it is a
/// symlink (so the link stays a link), else `path`.
std::string output_target(const std::string& path);

/// Creates a new, empty file beside `target` named ".NAME.XXXXXX.tmp" (O_EXCL,
/// mode 0644 less the umask) and returns its path; throws OutputError naming
/// `flag` when it cannot.
std::string create_temp_beside(const std::string& target, const std::string& flag);

/// Writes `content` to a fresh temporary file beside `path`, flushes it to the
/// disk and renames it over `path`. On any failure the temporary file is
/// removed, `path` is untouched, and OutputError says "FLAG: cannot write
/// 'PATH': reason".
void write_file_atomically(const std::string& path, const std::string& content, const std::string& flag);

}  // namespace moe
