#pragma once

// Small file helpers returning Status instead of throwing.

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace medic {

Result<std::string> ReadFile(const std::string& path);
// Reads at most the last max_bytes of a file.
Result<std::string> ReadFileTail(const std::string& path, size_t max_bytes);
// Writes atomically: a temporary file in the same directory, fsync, rename. mode applies to
// the new file (e.g. 0600 for secrets).
Status WriteFileAtomic(const std::string& path, std::string_view content, int mode = 0644);
// Creates a directory and its parents; OK if it exists.
Status MakeDirs(const std::string& path, int mode = 0755);
bool PathExists(const std::string& path);

// Trims ASCII white space at both ends.
std::string_view Trim(std::string_view s);
std::vector<std::string> SplitLines(std::string_view s);

// Random bytes as lowercase hex from the kernel's CSPRNG.
std::string RandomHex(size_t bytes);

}  // namespace medic
