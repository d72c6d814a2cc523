// farsee-emu-profile: where a FarSee-Net forward spends memory traffic and instructions, measured
// without a GPU (DESIGN.md section 9): one eager forward on the emu executor (the CUDA kernels
// emulated on the CPU) with the emulator's performance counters on, one row per (graph step,
// kernel) and a total: launches, global bytes read and written, load and store sector efficiency
// (coalescing), shared-memory bank-conflict ways, barriers, MMA instructions, bytes per MAC.
// A developer tool built beside the tests (it links the emulated kernels, which the products do
// not): tools/emu_profile/.
#include <cstdio>
#include <string>
#include <tuple>

#include "kernels/core/atomic_file.h"
#include "net/config.h"
#include "net/graph.h"
#include "tools/cli/flags.h"
#include "tools/data/image_io.h"
#include "tools/emu_profile/emu_profile.h"
#include "tools/emu_profile/roofline.h"

using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-emu-profile [options]

One FarSee-Net forward under the emulator with its performance counters on; prints one row per
(graph step, kernel) and a total.

  --preset NAME      paper (default) | rtseg | tiny-paper | tiny-rtseg
  --sizes HxW        input size, multiples of 32 (default 256x512)
  --batch N          batch (default 1)
  --precision P      fp16 (default) | tf32 | fp32
  --json FILE        also write the rows as JSON {"rows": [...], "total": {...},
                     "total_launches": N}
  --roofline         instead, print the per-step roofline of the graph as a markdown table
                     (MACs, minimal bytes, time floors on H100 and H200; no emulation)
  --help
)";

struct Options {
  tools::ProfileOptions profile;
  std::string json_file;
  bool help = false, roofline = false;
};

Options parse(int argc, char** argv) {
  Options o;
  tools::Flags flags("farsee-emu-profile", kUsage);
  flags.text("--preset", o.profile.preset);
  flags.value("--sizes", [&](const std::string& v) {
    std::tie(o.profile.h, o.profile.w) = tools::parse_size(v, "--sizes");
  });
  flags.integer("--batch", o.profile.n, 1);
  flags.value("--precision",
              [&](const std::string& v) { o.profile.precision = tools::parse_precision(v); });
  flags.text("--json", o.json_file);
  flags.set_true("--roofline", o.roofline);
  o.help = !flags.parse(argc, argv);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-emu-profile", [&] {
    const Options o = parse(argc, argv);
    if (o.help) return 0;  // the usage is printed
    if (o.roofline) {
      const tools::ProfileOptions& p = o.profile;
      const net::Graph g = net::build_graph(net::preset_config(p.preset), p.n, p.h, p.w);
      std::fputs(tools::roofline_markdown(tools::roofline(g, storage_dtype(p.precision))).c_str(),
                 stdout);
      return 0;
    }
    const auto rows = tools::profile_forward_on_emu(o.profile);
    std::fputs(tools::format_profile_table(rows).c_str(), stdout);
    if (!o.json_file.empty()) {
      const std::string json = tools::profile_json(o.profile, rows);
      write_file_atomic(o.json_file, json.data(), json.size(), "--json file");
    }
    return 0;
  });
}
