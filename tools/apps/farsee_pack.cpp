// farsee-pack: one split of a Cityscapes-layout folder decoded into a pack (tools/data/pack.h)
// that farsee-train and farsee-eval read with --data FILE. The same flags give the same bytes.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <tuple>

#include "tools/cli/flags.h"
#include "tools/data/image_io.h"
#include "tools/data/pack.h"

using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-pack --data DIR --split S -o FILE [options]

Decodes DIR/leftImg8bit/S/<city>/*_leftImg8bit.png and their *_gtFine_labelIds.png (as trainIds)
into one file: farsee-train --data FILE and farsee-eval --data FILE read it by memory mapping,
copying bytes instead of decoding PNGs; each sample's checksum is verified as it is read.

  --data DIR        Cityscapes root (required)
  --split S         the split to pack (required): train, val, ...
  -o, --out FILE    the pack (required; written atomically)
  --size HxW        store every sample at this size: images bilinear (as the loader resizes),
                    labels by nearest neighbour (default: as decoded)
  --codec C         lz4 (default: decodes about as fast as a copy, labels ~30x smaller) | zstd
                    (smaller, ~4x slower to decode) | raw
  --jobs N          samples encoded in parallel (default: the CPUs); the file does not depend on it
  --help            this text
)";

// nullopt after --help.
std::optional<tools::PackOptions> parse_options(int argc, char** argv, std::string& out) {
  tools::PackOptions o;
  o.jobs = std::max(1, int(std::thread::hardware_concurrency()));
  o.codec = tools::pack_codec_available(tools::PackCodec::kLz4) ? tools::PackCodec::kLz4
                                                                : tools::PackCodec::kRaw;
  tools::Flags flags("farsee-pack", kUsage);
  flags.text("-o,--out", out);
  flags.text("--data", o.root);
  flags.text("--split", o.split);
  flags.value("--size", [&](const std::string& v) {
    std::tie(o.height, o.width) = tools::parse_size(v, "--size");
  });
  flags.value("--codec",
              [&](const std::string& v) { o.codec = tools::parse_pack_codec(v, "--codec"); });
  flags.integer("--jobs", o.jobs, 1);
  if (!flags.parse(argc, argv)) return std::nullopt;
  FARSEE_REQUIRE(!o.root.empty(), "missing --data DIR (see --help)");
  FARSEE_REQUIRE(!o.split.empty(), "missing --split S (see --help)");
  FARSEE_REQUIRE(!out.empty(), "missing -o FILE (see --help)");
  return o;
}

void progress(int64_t done, int64_t total) {
  if (done % 100 == 0 || done == total) {
    std::printf("farsee-pack: %lld/%lld\n", static_cast<long long>(done),
                static_cast<long long>(total));
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return tools::run_program("farsee-pack", [&] {
    std::string out;
    const std::optional<tools::PackOptions> parsed = parse_options(argc, argv, out);
    if (!parsed) return 0;
    const tools::PackOptions& o = *parsed;
    const int64_t n = tools::write_pack(out, o, progress);
    const tools::PackReader check(out);  // the header and index as a reader sees them
    std::printf("farsee-pack: %lld samples of %s/%s (%s, %s) in %s\n", static_cast<long long>(n),
                o.root.c_str(), o.split.c_str(),
                o.height > 0 ? (std::to_string(o.height) + "x" + std::to_string(o.width)).c_str()
                             : "source size",
                tools::pack_codec_name(o.codec), out.c_str());
    return 0;
  });
}
