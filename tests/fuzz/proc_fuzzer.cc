// The /proc parsers (src/host/proc_parsers.*): every parser on the whole input, and the ones that
// take several files (cgroup memory, cgroup directory) on the input split at NUL bytes. They are
// pure functions of text: no I/O here.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "host/proc_parsers.h"
#include "tests/fuzz/fuzz_check.h"

namespace host = medic::host;

namespace {

// Up to `n` parts of `text` split at '\0'; the missing ones empty.
std::vector<std::string_view> Split(std::string_view text, size_t n) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < n) {
    const size_t z = text.find('\0');
    if (z == std::string_view::npos) {
      break;
    }
    parts.push_back(text.substr(0, z));
    text.remove_prefix(z + 1);
  }
  parts.push_back(text);
  parts.resize(n);
  return parts;
}

void CheckPercent(std::optional<double> p) {
  if (p.has_value()) {
    FUZZ_CHECK(*p == *p);  // not NaN
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto m = host::ParseMeminfo(text); m.has_value()) {
    const double used = host::MemUsedPercent(*m);
    FUZZ_CHECK(used == used);
    CheckPercent(host::SwapUsedPercent(*m));
  }
  for (auto mount : host::ParseMounts(text)) {
    (void)host::MountMetricKey("disk_used_percent", mount.mount_point);
  }
  (void)host::RealMountPoints(text);
  if (auto cpu = host::ParseProcStatCpu(text); cpu.has_value()) {
    CheckPercent(host::CpuPercent(host::CpuTimes{}, *cpu));
    CheckPercent(host::CpuPercent(*cpu, host::CpuTimes{cpu->busy / 2, cpu->total / 2}));
  }
  (void)host::ParseLoadavg1(text);
  (void)host::ParseLoadavg(text);
  if (auto st = host::ParsePidStat(text); st.has_value()) {
    (void)host::IsLive(*st);
  }
  (void)host::ParsePidFile(text);
  (void)host::ParseComm(text);
  for (std::string_view controller : {"memory", ""}) {
    (void)host::ParseProcCgroup(text, controller);
    (void)host::CgroupDir(text, controller, "/sys/fs/cgroup/memory");
  }
  const std::vector<std::string_view> p = Split(text, 3);
  for (uint64_t host_total : {uint64_t{0}, uint64_t{8} << 30, ~uint64_t{0}}) {
    if (auto m = host::CgroupMemoryV1(p[0], p[1], p[2], host_total); m.has_value()) {
      FUZZ_CHECK(host::CgroupMemUsedPercent(*m) == host::CgroupMemUsedPercent(*m));
    }
    if (auto m = host::CgroupMemoryV2(p[0], p[1], p[2], host_total); m.has_value()) {
      FUZZ_CHECK(host::CgroupMemUsedPercent(*m) == host::CgroupMemUsedPercent(*m));
    }
  }
  (void)host::CgroupDir(p[0], p[1], p[2]);
  if (size >= 40) {
    // statvfs numbers from the first 40 bytes.
    uint64_t v[5];
    __builtin_memcpy(v, data, sizeof(v));
    const host::FsStats s{v[0], v[1], v[2], v[3], v[4]};
    CheckPercent(host::DiskUsedPercent(s));
    CheckPercent(host::InodeUsedPercent(s));
  }
  return 0;
}
