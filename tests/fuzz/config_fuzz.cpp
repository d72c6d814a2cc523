// Fuzz harness: the network's --config JSON (net/config.h: config_from_json_text), and the
// configuration it yields written back (config_to_json_text) and read again.
#include <string>

#include "net/config.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

int fuzz_config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  farsee::fuzz::run_parser([&] {
    const farsee::net::FarSeeConfig c = farsee::net::config_from_json_text(text);
    farsee::net::config_from_json_text(farsee::net::config_to_json_text(c));
  });
  return 0;
}

}  // namespace

FARSEE_FUZZ_TARGET(fuzz_config);
