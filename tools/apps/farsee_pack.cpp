// farsee-pack: one split of a Cityscapes-layout folder decoded into a pack (tools/data/pack.h)
// that farsee-train and farsee-eval read with --data FILE. The same flags give the same bytes.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <tuple>

#include "tools/cli/cli.h"
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

tools::PackOptions parse_options(int argc, char** argv, std::string& out) {
  tools::PackOptions o;
  o.jobs = std::max(1, int(std::thread::hardware_concurrency()));
  o.codec = tools::pack_codec_available(tools::PackCodec::kLz4) ? tools::PackCodec::kLz4
                                                                : tools::PackCodec::kRaw;
  tools::ArgParser args(argc, argv);
  while (args.next()) {
    if (args.current() == "-o" || args.is("--out")) {  // ArgParser reads "-o" as positional
      out = args.value();
      continue;
    }
    FARSEE_REQUIRE(!args.positional(),
                   "unexpected argument '" << args.current() << "' (see --help)");
    if (args.is("--help")) {
      std::cout << kUsage;
      std::exit(0);
    } else if (args.is("--data")) {
      o.root = args.value();
    } else if (args.is("--split")) {
      o.split = args.value();
    } else if (args.is("--size")) {
      std::tie(o.height, o.width) = tools::parse_size(args.value(), "--size");
    } else if (args.is("--codec")) {
      o.codec = tools::parse_pack_codec(args.value(), "--codec");
    } else if (args.is("--jobs")) {
      o.jobs = tools::parse_int(args.value(), "--jobs", 1);
    } else {
      FARSEE_REQUIRE(false, "unknown option '" << args.current() << "' (see --help)");
    }
  }
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
    const tools::PackOptions o = parse_options(argc, argv, out);
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
