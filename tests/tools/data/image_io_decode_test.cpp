// Image decoding of untrusted files (tools/data/image_io.h, DESIGN.md section 8.1): libpng gives
// the bytes stb_image gave for every PNG FarSee reads, libjpeg-turbo gives Pillow's bytes, and
// the inputs that broke stb_image (issue 25) and the fuzzers' findings (tests/fixtures/untrusted/
// crash) are refused cleanly, the 2 GB IDAT claim without the memory.
#include "tools/data/image_io_decode.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "tools/data/image_io.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(FARSEE_TEST_DATA_DIR);
const fs::path kUntrusted = kFixtures / "untrusted";

std::vector<uint8_t> file_bytes(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// "" when equal, else the first differing byte and the largest difference.
std::string compare_images(const Image& got, const Image& want) {
  if (got.width != want.width || got.height != want.height || got.channels != want.channels ||
      got.data.size() != want.data.size()) {
    return "size " + std::to_string(got.height) + "x" + std::to_string(got.width) + "x" +
           std::to_string(got.channels) + " vs " + std::to_string(want.height) + "x" +
           std::to_string(want.width) + "x" + std::to_string(want.channels);
  }
  size_t first = got.data.size();
  int worst = 0;
  for (size_t i = 0; i < got.data.size(); ++i) {
    const int diff = std::abs(int(got.data[i]) - int(want.data[i]));
    if (diff != 0 && first == got.data.size()) first = i;
    worst = std::max(worst, diff);
  }
  if (worst == 0) return "";
  return "first mismatch at byte " + std::to_string(first) + ", max difference " +
         std::to_string(worst);
}

// The message of decoding `bytes`, or "" when it decoded.
std::string decode_error(const std::vector<uint8_t>& bytes, const std::string& name,
                         int64_t max_pixels = kDefaultMaxPixels) {
  try {
    decode_image(bytes.data(), bytes.size(), 3, max_pixels, name);
  } catch (const farsee::Error& e) {
    return e.what();
  }
  return "";
}

// GTEST_SKIP (a return) when the build found no `lib`: images then decode with stb_image.
#define SKIP_WITHOUT(lib) \
  if (!detail::have_##lib()) GTEST_SKIP() << #lib " not found at build time"

// Every PNG FarSee ships or reads in its tests (stb_image_write's files: grey and RGB), and one
// of each colour type stb_image_write never writes (tools/scripts/make_image_fixtures.py):
// libpng's bytes equal stb_image's, as RGB and as grey.
TEST(ImageDecode, EveryPngAsStbImageDecodedIt) {
  SKIP_WITHOUT(libpng);
  std::vector<fs::path> pngs;
  for (const fs::path& dir : {kFixtures, kFixtures / ".." / ".." / "weights" / "shipped"}) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      const bool crash = e.path().parent_path().filename() == "crash";
      if (e.path().extension() == ".png" && !crash) pngs.push_back(e.path());
    }
  }
  ASSERT_GE(pngs.size(), 70u);  // 64 test fixtures, 2 shipped, 6 colour types
  for (const fs::path& path : pngs) {
    const std::vector<uint8_t> bytes = file_bytes(path);
    for (int channels : {1, 3}) {
      const Image got =
          decode_image(bytes.data(), bytes.size(), channels, kDefaultMaxPixels, path.string());
      const Image want =
          detail::stb_decode(bytes.data(), bytes.size(), channels, kDefaultMaxPixels, "stb");
      EXPECT_EQ(compare_images(got, want), "") << path << " as " << channels << " channel(s)";
    }
    const ImageInfo info = read_image_info(path.string()),
                    stb = detail::stb_info(bytes.data(), bytes.size(), "stb");
    EXPECT_EQ(info.channels, stb.channels) << path;
    EXPECT_EQ(info.bit_depth == 16, stb.bit_depth == 16) << path;
  }
}

// JPEGs decoded by Pillow (python3-pil, the same libjpeg-turbo, its default settings) in
// tools/scripts/make_image_fixtures.py: equal bytes (stb_image's own IDCT and upsampling differ
// from both by a few levels, which is why the comparison is with Pillow).
TEST(ImageDecode, JpegEqualsPillow) {
  SKIP_WITHOUT(libjpeg);
  for (const char* name : {"photo420.jpg", "photo444.jpg", "progressive.jpg", "grey.jpg"}) {
    const fs::path path = kUntrusted / "valid" / name;
    const ImageInfo info = read_image_info(path.string());
    const int channels = std::string(name) == "grey.jpg" ? 1 : 3;
    EXPECT_EQ(info.channels, channels) << name;
    const Image got = channels == 3 ? read_rgb(path.string()) : read_grey(path.string());
    Image want{got.width, got.height, channels, file_bytes(path.string() + ".pil")};
    EXPECT_EQ(compare_images(got, want), "") << name;
  }
}

TEST(ImageDecode, BmpAndUnknownFormatsAreRefusedByName) {
  const std::vector<uint8_t> bmp = {'B', 'M', 0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0};
  EXPECT_NE(decode_error(bmp, "x.bmp").find("'x.bmp': BMP not supported, convert to PNG"),
            std::string::npos);
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
  EXPECT_NE(decode_error(gif, "x.gif").find("'x.gif': not a PNG or JPEG file"), std::string::npos);
}

// A 200x300 PNG read with a cap of 50,000 pixels: refused from the header, naming the size.
TEST(ImageDecode, PixelCapRefusesFromTheHeader) {
  const std::vector<uint8_t> png =
      file_bytes(kFixtures / ".." / ".." / "weights" / "shipped" / "example_color.png");
  const ImageInfo info = image_info(png.data(), png.size(), "example");
  const int64_t cap = int64_t(info.width) * info.height - 1;
  const std::string err = decode_error(png, "example", cap);
  EXPECT_NE(err.find("image 'example' is " + format_pixels(info.height, info.width) +
                     ", above the limit"),
            std::string::npos)
      << err;
  EXPECT_EQ(decode_error(png, "example", cap + 1), "");
}

// The 1.6 KB JPEG that made stb_image write past its 257-entry Huffman size table (issue 25,
// stb_image.h:1990), and every later fuzzer finding: a clean farsee::Error naming the file, or a
// decoded image, never a sanitizer report or a crash.
TEST(ImageDecode, FuzzerFindingsAreCleanErrors) {
  int files = 0;
  for (const auto& e : fs::directory_iterator(kUntrusted / "crash")) {
    const std::string name = e.path().filename().string();
    if (!detail::have_libjpeg() && e.path().extension() == ".jpg") continue;
    if (!detail::have_libpng() && e.path().extension() == ".png") continue;
    ++files;
    const std::string err = decode_error(file_bytes(e.path()), name);
    if (!err.empty()) {
      EXPECT_NE(err.find("'" + name + "'"), std::string::npos) << err;
    }
  }
  if (files == 0) GTEST_SKIP() << "built without libpng and libjpeg-turbo";
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

// A 53-byte PNG whose IDAT claims 2 GB (stb_image reallocated to the claim before reading it):
// refused as truncated, in a child process whose address space may grow by 256 MB only (not under
// AddressSanitizer, which reserves terabytes of address space; there the error alone is checked).
TEST(ImageDecode, IdatClaimingGigabytesIsRefusedWithoutTheMemory) {
  SKIP_WITHOUT(libpng);
  const std::string name = "png_idat_claims_2gb.png";
  const std::vector<uint8_t> png = file_bytes(kUntrusted / "crash" / name);
  const std::string err = decode_error(png, name);
  EXPECT_NE(err.find("'" + name + "' (PNG"), std::string::npos) << err;
  if (sanitized()) return;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    long pages = 0;
    std::ifstream statm("/proc/self/statm");
    statm >> pages;
    const rlim_t limit = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t(256) << 20);
    const rlimit r{limit, limit};
    if (setrlimit(RLIMIT_AS, &r) != 0) _exit(3);
    try {
      decode_image(png.data(), png.size(), 3, kDefaultMaxPixels, name);
    } catch (const farsee::Error&) {
      _exit(0);
    } catch (...) {
      _exit(2);  // bad_alloc: it tried to allocate the claim
    }
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: decoded, 2: another exception, 3: no setrlimit";
}

}  // namespace
}  // namespace farsee::tools
