// farsee-emu-profile: where a FarSee-Net forward spends memory traffic and instructions, measured
// without a GPU (DESIGN.md section 9): one eager forward on the emu executor (the CUDA kernels
// emulated on the CPU) with the emulator's performance counters on, one row per (graph step,
// kernel) and a total: launches, global bytes read and written, load and store sector efficiency
// (coalescing), shared-memory bank-conflict ways, barriers, MMA instructions, bytes per MAC.
// A developer tool built beside the tests (it links the emulated kernels, which the products do
// not): tools/emu_profile/.
#include <cstdio>
#include <string>

#include "kernels/core/atomic_file.h"
#include "net/config.h"
#include "net/graph.h"
#include "tools/cli/cli.h"
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
  tools::ArgParser args(argc, argv);
  while (args.next()) {
    if (args.is("--preset")) {
      o.profile.preset = args.value();
    } else if (args.is("--sizes")) {
      const auto size = tools::parse_size(args.value(), "--sizes");
      o.profile.h = size.first;
      o.profile.w = size.second;
    } else if (args.is("--batch")) {
      o.profile.n = tools::parse_int(args.value(), "--batch", 1);
    } else if (args.is("--precision")) {
      o.profile.precision = tools::parse_precision(args.value());
    } else if (args.is("--json")) {
      o.json_file = args.value();
    } else if (args.is("--roofline")) {
      args.no_value();
      o.roofline = true;
    } else if (args.is("--help")) {
      args.no_value();
      o.help = true;
    } else {
      FARSEE_REQUIRE(false, "unknown argument '" << args.current() << "' (see --help)");
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-emu-profile", [&] {
    const Options o = parse(argc, argv);
    if (o.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
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
