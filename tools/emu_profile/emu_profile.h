// farsee-emu-profile's work (DESIGN.md section 9): one eager forward of FarSee-Net on the emu
// executor with the emulator's performance counters on (kernels/emu/emu_counters.h), summed per
// (graph step, kernel): launches, global bytes read/written (by access width), load and store
// sector efficiency, shared bank-conflict ways, barriers, MMAs, MACs and bytes per MAC.
// Weights are random (the counters depend on shapes and addresses, not on values).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/emu/emu_counters.h"

namespace farsee::tools {

struct ProfileRow {
  std::string step;    // graph step name (head.up1, ...), "output.resize_argmax", or "total"
  std::string kernel;  // kernel name as launched ("" in the total)
  emu::LaunchCounters counters;
  double macs = 0;       // of the step (once per step, on its first kernel's row)
  double min_bytes = 0;  // the step's minimal global traffic (tools/emu_profile/roofline.h), ditto
  double bytes_per_mac() const;
};

struct ProfileOptions {
  std::string preset = "paper";
  int n = 1, h = 256, w = 512;
  Precision precision = Precision::F16;
};

// Rows in launch order of their first launch, then the total (last).
std::vector<ProfileRow> profile_forward_on_emu(const ProfileOptions& o);

// The table, one line per row.
std::string format_profile_table(const std::vector<ProfileRow>& rows);
// {"preset": ..., "size": "HxW", "precision": ..., "rows": [{"step", "kernel", "launches",
//   "read_bytes", "write_bytes", "read_bytes_by_width": {"1": ..}, "write_bytes_by_width",
//   "load_efficiency", "store_efficiency", "bank_conflict_ways", "max_bank_conflict_ways",
//   "barriers", "mma", "macs", "bytes_per_mac", "min_bytes"}], "total": {...},
//   "total_launches": N}
std::string profile_json(const ProfileOptions& o, const std::vector<ProfileRow>& rows);

}  // namespace farsee::tools
