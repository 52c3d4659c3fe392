// medsettle-voucher: the voucher platform's side of the e-insurance code
// (医保电子凭证), for demos and tests: make an issuer key pair, issue a
// signed token (optionally as a QR code), inspect and verify one
// (tools/voucher/README.md). The logic lives here so tests can run every
// command in-process; main.cc only forwards argv.
//
// The private key stays with the tool; only KID.pub.pem goes to the
// gateway (ec_token.issuer_keys_dir). ID numbers given on the command line
// are turned into person keys (cache::PersonKeyer) and never printed.
#ifndef MEDSETTLE_TOOLS_VOUCHER_VOUCHER_TOOL_H_
#define MEDSETTLE_TOOLS_VOUCHER_VOUCHER_TOOL_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace medsettle::voucher_tool {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;  // refused or failed (message on stderr)
inline constexpr int kExitUsage = 2;    // bad command line

// Default validity of an issued token, in minutes, and the largest allowed.
inline constexpr int64_t kDefaultMinutes = 5;
inline constexpr int64_t kMaxMinutes = 366 * 24 * 60;

// The QR code of `text` (byte mode, error correction M, smallest version
// that fits) as lines of UTF-8 half blocks (U+2580 ▀, U+2584 ▄, U+2588 █),
// two modules per character row, with a quiet zone of 2 modules. Light
// modules are drawn as blocks, as `qrencode -t UTF8` does, so the code
// scans from a terminal with a dark background. INTERNAL when libqrencode
// fails (e.g. `text` is too long for a QR code).
absl::StatusOr<std::string> RenderQr(std::string_view text);

// The whole command line (args without the program name): "keygen",
// "issue", "inspect", or "--help". Writes results to `out`, errors to
// `err`; returns kExitOk, kExitRefused or kExitUsage. The clock is the
// system's unless --issued-at / --now say otherwise.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace medsettle::voucher_tool

#endif  // MEDSETTLE_TOOLS_VOUCHER_VOUCHER_TOOL_H_
