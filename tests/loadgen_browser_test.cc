// The HTML report in a real browser (browser): a short run against the
// echo floor writes --json and --html; headless Chromium (Debian
// `chromium`, deploy/install-deps.sh) screenshots the page, which must not
// be blank (the PNG decoded with zlib: many distinct pixel colours), and
// dumps the rendered DOM, which must show the JSON's figures (the call
// count and p99 as the report formats them). Without chromium the test
// fails and says what to install.
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tools/loadgen/echo_server.h"
#include "tools/loadgen/loadgen_tool.h"
#include "tools/loadgen/report.h"

namespace medsettle::loadgen {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs a shell command; its exit status and standard output.
int Shell(const std::string& command, std::string* out) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out->append(buffer, n);
  return pclose(pipe);
}

uint32_t BigEndian32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

// The distinct RGB(A) colours of an 8-bit RGB or RGBA PNG (-1 when it is
// not one).
int DistinctColours(const std::string& png, int* width, int* height) {
  if (png.size() < 33 || png.compare(1, 3, "PNG") != 0) return -1;
  std::string idat;
  int bit_depth = 0, colour_type = 0;
  for (size_t at = 8; at + 8 <= png.size();) {
    const uint32_t length = BigEndian32(png, at);
    const std::string type = png.substr(at + 4, 4);
    if (type == "IHDR") {
      *width = static_cast<int>(BigEndian32(png, at + 8));
      *height = static_cast<int>(BigEndian32(png, at + 12));
      bit_depth = static_cast<unsigned char>(png[at + 16]);
      colour_type = static_cast<unsigned char>(png[at + 17]);
    } else if (type == "IDAT") {
      idat += png.substr(at + 8, length);
    }
    at += 12 + length;
  }
  if (bit_depth != 8 || (colour_type != 2 && colour_type != 6)) return -1;
  const size_t bpp = colour_type == 6 ? 4 : 3;
  const size_t stride = static_cast<size_t>(*width) * bpp;
  std::vector<unsigned char> raw((stride + 1) * static_cast<size_t>(*height));
  uLongf raw_size = static_cast<uLongf>(raw.size());
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()),
                 static_cast<uLong>(idat.size())) != Z_OK) {
    return -1;
  }
  // Undo the per-row filters (PNG spec §9).
  std::vector<unsigned char> previous(stride, 0), row(stride);
  std::set<uint32_t> colours;
  for (int y = 0; y < *height; ++y) {
    const unsigned char* in = raw.data() + static_cast<size_t>(y) * (stride + 1);
    const int filter = in[0];
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= bpp ? row[x - bpp] : 0;
      const int b = previous[x];
      const int c = x >= bpp ? previous[x - bpp] : 0;
      int predictor = 0;
      switch (filter) {
        case 1: predictor = a; break;
        case 2: predictor = b; break;
        case 3: predictor = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predictor = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: break;
      }
      row[x] = static_cast<unsigned char>(in[1 + x] + predictor);
    }
    for (size_t x = 0; x + bpp <= stride; x += bpp) {
      colours.insert((static_cast<uint32_t>(row[x]) << 16) | (static_cast<uint32_t>(row[x + 1]) << 8) |
                     row[x + 2]);
    }
    previous = row;
  }
  return static_cast<int>(colours.size());
}

TEST(LoadgenBrowser, TheHtmlReportRendersTheJsonFigures) {
  std::string which;
  if (Shell("command -v chromium 2>/dev/null", &which) != 0 || which.empty()) {
    FAIL() << "chromium is not installed: run deploy/install-deps.sh (it installs Debian's "
              "chromium for this test)";
  }
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("loadgen-browser-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "profile");
  EchoServerOptions options;
  options.insecure_dev = true;
  absl::StatusOr<std::unique_ptr<EchoServer>> echo = EchoServer::Start(options);
  ASSERT_TRUE(echo.ok()) << echo.status();
  const std::string json = (dir / "report.json").string();
  const std::string html = (dir / "report.html").string();
  std::ostringstream out, err;
  ASSERT_EQ(loadgen::Run({"--target", "127.0.0.1:" + std::to_string((*echo)->port()), "--insecure-dev",
                 "--method", "echo", "--rate", "400", "--duration", "2", "--quiet", "--json", json,
                 "--html", html},
                out, err, ToolEnv{}),
            kExitOk)
      << err.str();
  absl::StatusOr<v1::LoadReport> report = ReadJson(json);
  ASSERT_TRUE(report.ok()) << report.status();
  int64_t p99 = 0;
  for (const v1::Percentile& p : report->percentiles()) {
    if (p.percentile() == 99) p99 = p.latency_us();
  }
  const std::string count_text = FormatCount(report->summary().count());
  const std::string p99_text = FormatLatency(p99);

  const std::string flags =
      "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--user-data-dir=" + (dir / "profile").string();
  const std::string png = (dir / "shot.png").string();
  std::string ignored;
  Shell("timeout 50 chromium " + flags + " --window-size=1200,1600 --screenshot=" + png +
            " file://" + html + " 2>/dev/null",
        &ignored);
  ASSERT_TRUE(std::filesystem::exists(png)) << "chromium wrote no screenshot";
  int width = 0, height = 0;
  const int colours = DistinctColours(ReadFile(png), &width, &height);
  EXPECT_EQ(width, 1200);
  EXPECT_GT(height, 100);
  // A blank page has one colour; the report has text, bars and lines.
  EXPECT_GT(colours, 50) << "the screenshot looks blank";

  std::string dom;
  Shell("timeout 50 chromium " + flags + " --dump-dom file://" + html + " 2>/dev/null", &dom);
  ASSERT_FALSE(dom.empty()) << "chromium dumped no DOM";
  EXPECT_NE(dom.find("id=\"count\">" + count_text + "<"), std::string::npos)
      << "the call count " << count_text << " is not in the rendered page";
  EXPECT_NE(dom.find("id=\"p99\">" + p99_text + "<"), std::string::npos)
      << "p99 " << p99_text << " is not in the rendered page";
  EXPECT_NE(dom.find("<svg"), std::string::npos);
  EXPECT_NE(dom.find("id=\"histogram\""), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace medsettle::loadgen
