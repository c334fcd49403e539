#include "runtime/common/OutputFiles.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>

namespace moe {

namespace fs = std::filesystem;

namespace {

std::string kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

fs::path dir_of(const std::string& path) {
  const fs::path p(path);
  return p.has_parent_path() ? p.parent_path() : fs::path(".");
}

// The normalised absolute path, symlinks resolved as far as the path exists.
std::string normalised(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) p = fs::absolute(path, ec).lexically_normal();
  return p.string();
}

}  // namespace

std::string output_target(const std::string& path) {
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {
    const fs::path t = fs::weakly_canonical(path, ec);
    if (!ec) return t.string();
  }
  return path;
}

std::string create_temp_beside(const std::string& target, const std::string& flag) {
  const fs::path t(target);
  const fs::path dir = dir_of(target);
  std::string name(".");
  name.append(t.filename().string());
  name.append(".XXXXXX.tmp");
  std::string tmpl = (dir / name).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const int fd = mkstemps(buf.data(), 4);
  if (fd < 0) {
    const int err = errno;
    throw OutputError(flag + ": cannot create a file in '" + dir.string() + "' to write '" + target +
                      "': " + std::strerror(err));
  }
  // mkstemps makes 0600; an output is as readable as any other new file.
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  close(fd);
  return std::string(buf.data());
}

std::string check_output_path(const std::string& path, const std::string& flag) {
  if (path.empty()) return flag + ": empty path";
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      return flag + ": '" + path + "' is " + kind_of(st.st_mode) +
             "; give the path of a regular file (it is replaced only when the run has written it)";
  } else if (errno != ENOENT) {
    return flag + ": cannot use '" + path + "': " + std::strerror(errno);
  } else {
    struct stat lst {};
    if (lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
      return flag + ": '" + path + "' is a dangling symlink; give the path of a regular file";
  }
  const fs::path dir = dir_of(output_target(path));
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return flag + ": cannot write '" + path + "': the directory '" + dir.string() + "' does not exist";
  if (!fs::is_directory(dir, ec))
    return flag + ": cannot write '" + path + "': '" + dir.string() + "' is not a directory";
  try {
    const std::string tmp = create_temp_beside(output_target(path), flag);
    std::remove(tmp.c_str());
  } catch (const OutputError& e) {
    return e.what();
  }
  return {};
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  const bool ea = stat(a.c_str(), &sa) == 0, eb = stat(b.c_str(), &sb) == 0;
  if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return normalised(a) == normalised(b);
}

std::string check_distinct(const std::vector<std::pair<std::string, std::string>>& named) {
  for (size_t i = 0; i < named.size(); ++i)
    for (size_t j = i + 1; j < named.size(); ++j) {
      const auto& [fa, pa] = named[i];
      const auto& [fb, pb] = named[j];
      if (pa.empty() || pb.empty()) continue;
      if (same_file(pa, pb))
        return fb + " and " + fa + " name the same file ('" + pb + "' and '" + pa + "'); give different files";
    }
  return {};
}

void write_file_atomically(const std::string& path, const std::string& content, const std::string& flag) {
  const std::string target = output_target(path);
  const std::string tmp = create_temp_beside(target, flag);
  auto fail = [&](const std::string& why) {
    std::remove(tmp.c_str());
    throw OutputError(flag + ": cannot write '" + path + "': " + why + " ('" + path + "' is unchanged)");
  };
  const int fd = open(tmp.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) fail(std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      close(fd);
      fail(std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    const int err = errno;
    close(fd);
    fail(std::strerror(err));
  }
  if (close(fd) != 0) fail(std::strerror(errno));
  if (std::rename(tmp.c_str(), target.c_str()) != 0) fail(std::strerror(errno));
}

}  // namespace moe
