// String building for messages and notes. Debian's Abseil is built with its
// own absl::string_view (not std::string_view), so absl::StrCat does not
// take std::string_view; Cat does, and takes integers too.
#ifndef MEDSETTLE_ENGINE_TEXT_H_
#define MEDSETTLE_ENGINE_TEXT_H_

#include <concepts>
#include <string>
#include <string_view>

namespace medsettle::engine {

namespace text_internal {
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, const char* s) { out.append(s); }
inline void Append(std::string& out, const std::string& s) { out.append(s); }
inline void Append(std::string& out, char c) { out.push_back(c); }
template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>)
void Append(std::string& out, T v) {
  out.append(std::to_string(v));
}
}  // namespace text_internal

// Concatenates strings, string_views, chars and integers.
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (text_internal::Append(out, args), ...);
  return out;
}

// Lowercase hexadecimal of raw bytes ("\x3f\xa0" → "3fa0"): person keys,
// digests, fingerprints, nonces.
inline std::string LowerHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

// True when `s` is only lowercase hexadecimal digits (and not empty).
inline bool IsLowerHex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The bytes LowerHex made. REQUIRES: IsLowerHex(hex), even length.
inline std::string BytesOfLowerHex(std::string_view hex) {
  auto value = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t k = 0; k + 1 < hex.size(); k += 2) {
    out.push_back(static_cast<char>(value(hex[k]) * 16 + value(hex[k + 1])));
  }
  return out;
}

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_TEXT_H_
