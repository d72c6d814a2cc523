#include "tools/emu_profile/emu_profile.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "kernels/core/check.h"
#include "kernels/core/runtime.h"
#include "net/config.h"
#include "net/farsee_net.h"
#include "net/parameters.h"
#include "tools/emu_profile/roofline.h"

namespace farsee::tools {

double ProfileRow::bytes_per_mac() const {
  const double bytes = double(counters.global_load.bytes() + counters.global_store.bytes());
  return macs > 0 ? bytes / macs : 0.0;
}

namespace {

// The launches of one eager forward, counted; the profiled entries in order (the output resize
// last).
std::pair<std::vector<emu::LaunchCounters>, std::vector<net::FarSeeNet::StepTime>> counted_forward(
    net::FarSeeNet& model) {
  rt::synchronize(model.context());
  emu::reset_counters();
  emu::set_counting(true);
  std::vector<net::FarSeeNet::StepTime> steps;
  try {
    steps = model.profile_forward();
    rt::synchronize(model.context());
  } catch (...) {
    emu::set_counting(false);
    throw;
  }
  emu::set_counting(false);
  return {emu::take_launch_counters(), steps};
}

// One floor per profiled entry: a merged launch (the F-ASPP depthwise branches) has the sum of
// its graph steps' floors. `floors`: one per graph step, the output, then the total.
std::vector<RooflineRow> floors_per_entry(const std::vector<net::FarSeeNet::StepTime>& entries,
                                          const std::vector<RooflineRow>& floors) {
  std::vector<RooflineRow> out;
  size_t next = 0;
  for (const auto& e : entries) {
    RooflineRow r;
    r.step = e.name;
    for (int k = 0; k < e.graph_steps; ++k, ++next) {
      FARSEE_REQUIRE(next + 1 < floors.size(),
                     "farsee-emu-profile: profile_forward covered more "
                     "steps than the graph's "
                         << floors.size() - 2);
      r.macs += floors[next].macs;
      r.bytes += floors[next].bytes;
      r.h100_us += floors[next].h100_us;
      r.h200_us += floors[next].h200_us;
    }
    out.push_back(r);
  }
  FARSEE_REQUIRE(next + 1 == floors.size(), "farsee-emu-profile: profile_forward covered "
                                                << next << " steps of " << floors.size() - 1);
  return out;
}

// Launches -> rows per (step, kernel): profile_forward() brackets entry i with two timer stamps,
// so a launch that saw 2i + 1 stamps (emu::counters_marker) ran inside step i.
std::vector<ProfileRow> rows_of(const std::vector<emu::LaunchCounters>& launches,
                                const std::vector<std::string>& step_names,
                                const std::vector<RooflineRow>& floors) {
  std::vector<ProfileRow> rows;
  std::map<std::pair<int64_t, std::string>, size_t> index;
  for (const emu::LaunchCounters& l : launches) {
    const int64_t step = l.marker % 2 == 1 ? (l.marker - 1) / 2 : -1;
    const bool named = step >= 0 && step < int64_t(step_names.size());
    const auto key = std::make_pair(named ? step : -1, l.kernel);
    auto it = index.find(key);
    if (it == index.end()) {
      ProfileRow row;
      row.step = named ? step_names[size_t(step)] : "(between steps)";
      row.kernel = l.kernel;
      row.counters.kernel = l.kernel;
      const bool first_of_step = named && std::none_of(rows.begin(), rows.end(),
                                                       [&](auto& r) { return r.step == row.step; });
      if (first_of_step && size_t(step) < floors.size()) {
        row.macs = floors[size_t(step)].macs;
        row.min_bytes = floors[size_t(step)].bytes;
      }
      it = index.emplace(key, rows.size()).first;
      rows.push_back(row);
    }
    rows[it->second].counters.add(l);
  }
  ProfileRow total;
  total.step = "total";
  for (const ProfileRow& r : rows) {
    total.counters.add(r.counters);
    total.macs += r.macs;
    total.min_bytes += r.min_bytes;
  }
  rows.push_back(total);
  return rows;
}

}  // namespace

std::vector<ProfileRow> profile_forward_on_emu(const ProfileOptions& o) {
  const net::FarSeeConfig config = net::preset_config(o.preset);
  const net::HostTensors params = net::random_parameters(config, 1);
  Context ctx;
  ctx.executor = Executor::Emu;
  net::FarSeeNet model(config, params, ctx, o.precision);
  model.prepare(o.n, o.h, o.w);
  const std::vector<float> input(size_t(o.n) * o.h * o.w * 3, 0.25f);
  model.set_input(input.data());
  auto [launches, entries] = counted_forward(model);
  const std::vector<RooflineRow> floors =
      floors_per_entry(entries, roofline(model.graph(), storage_dtype(o.precision)));
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  return rows_of(launches, names, floors);
}

namespace {

double mib(int64_t bytes) {
  return double(bytes) / (1024.0 * 1024.0);
}

nlohmann::ordered_json by_width(const emu::GlobalAccessStats& g) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (int b = 0; b < emu::kWidthBins; ++b) j[std::to_string(1 << b)] = g.bytes_by_width[b];
  return j;
}

nlohmann::ordered_json row_json(const ProfileRow& r) {
  const emu::LaunchCounters& c = r.counters;
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["kernel"] = r.kernel;
  j["launches"] = c.launches;
  j["read_bytes"] = c.global_load.bytes();
  j["write_bytes"] = c.global_store.bytes();
  j["read_bytes_by_width"] = by_width(c.global_load);
  j["write_bytes_by_width"] = by_width(c.global_store);
  j["load_sectors"] = c.global_load.sectors;
  j["store_sectors"] = c.global_store.sectors;
  j["load_efficiency"] = c.global_load.efficiency();
  j["store_efficiency"] = c.global_store.efficiency();
  j["shared_bytes"] = c.shared_bytes;
  j["bank_conflict_ways"] = c.bank_conflict_ways();
  j["max_bank_conflict_ways"] = c.shared_max_ways;
  j["barriers"] = c.barriers;
  j["mma"] = c.mma;
  j["macs"] = r.macs;
  j["bytes_per_mac"] = r.bytes_per_mac();
  j["min_bytes"] = r.min_bytes;
  return j;
}

}  // namespace

std::string format_profile_table(const std::vector<ProfileRow>& rows) {
  std::string out;
  char line[320];
  std::snprintf(line, sizeof line, "%-28s %-30s %4s %9s %9s %6s %6s %6s %9s %10s %8s\n", "step",
                "kernel", "lnch", "read_MiB", "write_MiB", "ld_eff", "st_eff", "ways", "barriers",
                "mma", "B/MAC");
  out += line;
  for (const ProfileRow& r : rows) {
    const emu::LaunchCounters& c = r.counters;
    std::string kernel = r.kernel.size() > 30 ? r.kernel.substr(0, 29) + "~" : r.kernel;
    std::snprintf(line, sizeof line,
                  "%-28s %-30s %4lld %9.3f %9.3f %5.1f%% %5.1f%% %6.2f %9lld %10lld %8.4f\n",
                  r.step.c_str(), kernel.c_str(), (long long)c.launches, mib(c.global_load.bytes()),
                  mib(c.global_store.bytes()), 100.0 * c.global_load.efficiency(),
                  100.0 * c.global_store.efficiency(), c.bank_conflict_ways(),
                  (long long)c.barriers, (long long)c.mma, r.bytes_per_mac());
    out += line;
  }
  return out;
}

std::string profile_json(const ProfileOptions& o, const std::vector<ProfileRow>& rows) {
  nlohmann::ordered_json j;
  j["tool"] = "farsee-emu-profile";
  j["preset"] = o.preset;
  j["size"] = std::to_string(o.h) + "x" + std::to_string(o.w);
  j["batch"] = o.n;
  j["precision"] = precision_name(o.precision);
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (size_t i = 0; i + 1 < rows.size(); ++i) list.push_back(row_json(rows[i]));
  j["rows"] = list;
  j["total"] = row_json(rows.back());
  j["total_launches"] = rows.back().counters.launches;
  return j.dump(2) + "\n";
}

}  // namespace farsee::tools
