// The pseudonymous person key: HMAC-SHA256 vectors computed independently
// with the openssl command line, the normalisation of an ID number, and the
// refusals (with their reasons and field path).
#include "cache/person_key.h"

#include <string>

#include <gtest/gtest.h>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using engine::FieldOf;
using engine::ReasonOf;

// Secrets of the vectors below (38, 33 and exactly 32 bytes).
constexpr std::string_view kSecretA = "medsettle-test-secret-0123456789abcdef";
constexpr std::string_view kSecretB = "another-32-byte-secret-for-tests!";
constexpr std::string_view kSecret32 = "exactly-32-bytes-of-secret-key!!";

PersonKeyer Keyer(std::string_view secret) {
  absl::StatusOr<PersonKeyer> keyer = PersonKeyer::Create(secret);
  EXPECT_TRUE(keyer.ok()) << keyer.status();
  return *std::move(keyer);
}

struct Vector {
  std::string_view secret;
  std::string_view id_number;  // normalised
  std::string_view expected_hex;
};

// Each expected value was computed with
//   printf '%s' <id_number> | openssl dgst -sha256 -hmac '<secret>'
// (OpenSSL 3.0.19), not with the code under test.
constexpr Vector kVectors[] = {
    {kSecretA, "11010519491231002X",
     "e39a0eb9d6cc684dee96ef12e4d0d4227de02c2c34064e2d44e17ab64a5f0edb"},
    {kSecretA, "330802200001011238",
     "2fa6384bd3e9efba8de6c21a41f1461643999a6c0d21f799c4fd790d38c66610"},
    {kSecretB, "11010519491231002X",
     "4267e48a62b6e59c5eb91b1a51f26f1d2df4fbc36bf6b9d69fabe60525000cfb"},
    {kSecret32, "500101199901010013",
     "49e250afdb7729ea30e3068d05d3b5c6b8187850a48b0375eb367434d7374a67"},
};

TEST(PersonKey, MatchesOpensslHmacSha256Vectors) {
  for (const Vector& v : kVectors) {
    PersonKeyer keyer = Keyer(v.secret);
    EXPECT_EQ(keyer.KeyOfNormalized(v.id_number), v.expected_hex) << v.id_number;
    absl::StatusOr<std::string> key = keyer.KeyOfIdNumber(v.id_number);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(*key, v.expected_hex);
  }
}

TEST(PersonKey, IsSixtyFourLowercaseHexCharacters) {
  std::string key = Keyer(kSecretA).KeyOfNormalized("330802200001011238");
  ASSERT_EQ(key.size(), 64u);
  for (char c : key) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << key;
  }
}

TEST(PersonKey, SameNumberDifferentSecretGivesDifferentKey) {
  EXPECT_NE(Keyer(kSecretA).KeyOfNormalized("11010519491231002X"),
            Keyer(kSecretB).KeyOfNormalized("11010519491231002X"));
}

TEST(PersonKey, SpellingsOfOneNumberGiveOneKey) {
  PersonKeyer keyer = Keyer(kSecretA);
  for (std::string_view spelling :
       {"11010519491231002X", "11010519491231002x", "  11010519491231002x", "11010519491231002X   ",
        " 11010519491231002x "}) {
    absl::StatusOr<std::string> key = keyer.KeyOfIdNumber(spelling);
    ASSERT_TRUE(key.ok()) << spelling << ": " << key.status();
    EXPECT_EQ(*key, kVectors[0].expected_hex) << spelling;
  }
}

TEST(PersonKey, MovedKeyerKeepsItsSecret) {
  PersonKeyer original = Keyer(kSecretA);
  PersonKeyer moved = std::move(original);
  EXPECT_EQ(moved.KeyOfNormalized("11010519491231002X"), kVectors[0].expected_hex);
  PersonKeyer assigned = Keyer(kSecretB);
  assigned = std::move(moved);
  EXPECT_EQ(assigned.KeyOfNormalized("11010519491231002X"), kVectors[0].expected_hex);
}

TEST(PersonKey, SecretShorterThan32BytesIsRefused) {
  for (std::string_view secret : {std::string_view(""), std::string_view("short"),
                                  kSecret32.substr(0, 31)}) {
    absl::StatusOr<PersonKeyer> keyer = PersonKeyer::Create(secret);
    ASSERT_FALSE(keyer.ok()) << secret.size();
    EXPECT_EQ(keyer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(keyer.status()), reason::kPersonKeySecretTooShort);
  }
  EXPECT_TRUE(PersonKeyer::Create(kSecret32).ok());
}

TEST(NormalizeIdNumber, TrimsSpacesAndUppercasesTheFinalX) {
  struct Case {
    std::string_view raw;
    std::string_view normalized;
  };
  for (const Case& c : {Case{"330802200001011238", "330802200001011238"},
                        Case{"  330802200001011238  ", "330802200001011238"},
                        Case{"11010519491231002x", "11010519491231002X"},
                        Case{"11010519491231002X", "11010519491231002X"},
                        Case{" 11010519491231002x", "11010519491231002X"}}) {
    absl::StatusOr<std::string> normalized = NormalizeIdNumber(c.raw);
    ASSERT_TRUE(normalized.ok()) << c.raw << ": " << normalized.status();
    EXPECT_EQ(*normalized, c.normalized);
  }
}

TEST(NormalizeIdNumber, RefusesAnythingButSeventeenDigitsAndADigitOrX) {
  for (std::string_view raw : {
           "",                      // empty
           "      ",                // only spaces
           "33080220000101123",     // 17 characters
           "3308022000010112385",   // 19 characters
           "33080220000101123X5",   // 19 with an X inside
           "3308022000X1011234",    // X not last
           "x30802200001011234",    // x first
           "33080220000101123Y",    // last neither digit nor X
           "330802 200001011234",   // space inside (19 characters)
           "33080220000 011234",    // space inside (18 characters)
           "３30802200001011234",   // a full-width digit (UTF-8, more bytes)
           "33080220000101123\t",   // tab is not trimmed
           "330802200001011238\n",  // nor a newline
       }) {
    absl::StatusOr<std::string> normalized = NormalizeIdNumber(raw);
    ASSERT_FALSE(normalized.ok()) << "accepted: [" << raw << "]";
    EXPECT_EQ(normalized.status().code(), absl::StatusCode::kInvalidArgument) << raw;
    EXPECT_EQ(ReasonOf(normalized.status()), reason::kIdNumberInvalid) << raw;
    EXPECT_EQ(FieldOf(normalized.status()), "credential.id_card_no") << raw;
  }
}

TEST(NormalizeIdNumber, RefusalNeverRepeatsTheNumber) {
  absl::StatusOr<std::string> normalized = NormalizeIdNumber("3308022000010112A4");
  ASSERT_FALSE(normalized.ok());
  EXPECT_EQ(std::string(normalized.status().message()).find("3308022000"), std::string::npos)
      << normalized.status();
}

TEST(NormalizeIdNumber, ChecksTheGb11643CheckCharacter) {
  // The standard's example 11010519491231002X; every other last character
  // is a typing error.
  EXPECT_TRUE(NormalizeIdNumber("11010519491231002X").ok());
  EXPECT_TRUE(NormalizeIdNumber("11010519491231002x").ok());
  for (char last : std::string("0123456789")) {
    std::string wrong = std::string("11010519491231002") + last;
    absl::StatusOr<std::string> normalized = NormalizeIdNumber(wrong);
    ASSERT_FALSE(normalized.ok()) << wrong;
    EXPECT_EQ(normalized.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(normalized.status()), reason::kIdNumberCheckDigit);
    EXPECT_EQ(FieldOf(normalized.status()), "credential.id_card_no");
    EXPECT_EQ(std::string(normalized.status().message()).find("110105"), std::string::npos);
  }
  // One swapped pair of digits is caught (the weights differ).
  EXPECT_EQ(ReasonOf(NormalizeIdNumber("11010519491213002X").status()),
            reason::kIdNumberCheckDigit);
}

TEST(IdNumberCheckCharacter, MatchesKnownNumbers) {
  EXPECT_EQ(IdNumberCheckCharacter("11010519491231002"), 'X');
  EXPECT_EQ(IdNumberCheckCharacter("44052419800101001"), '3');
  // Every remainder class maps to one character of "10X98765432".
  std::string seen;
  for (int i = 0; i < 200; ++i) {
    std::string first17 = engine::Cat("3308021990010", 1000 + i);
    seen += IdNumberCheckCharacter(first17);
  }
  for (char c : std::string("10X98765432")) {
    EXPECT_NE(seen.find(c), std::string::npos) << c;
  }
}

TEST(NormalizeIdNumber, RefusesImplausibleRegionAndBirthDate) {
  auto with_check = [](std::string first17) {
    return first17 + IdNumberCheckCharacter(first17);
  };
  for (const std::string& id : {
           with_check("00010519491231002"),  // province 00
           with_check("99010519491231002"),  // province 99
           with_check("11010519491331002"),  // month 13
           with_check("11010519490230002"),  // 30 February
           with_check("11010518991231002"),  // before 1900
           with_check("11010520230229002"),  // 29 February of a common year
       }) {
    absl::StatusOr<std::string> normalized = NormalizeIdNumber(id);
    ASSERT_FALSE(normalized.ok()) << id;
    EXPECT_EQ(ReasonOf(normalized.status()), reason::kIdNumberInvalid) << id;
  }
  EXPECT_TRUE(NormalizeIdNumber(with_check("11010520240229002")).ok());  // leap day
}

TEST(MaskIdNumber, KeepsFirstFourAndLastFour) {
  EXPECT_EQ(MaskIdNumber("11010519491231002X"), "1101**********002X");
  EXPECT_EQ(MaskIdNumber("12345678"), "********");
  EXPECT_EQ(MaskIdNumber(""), "");
  EXPECT_EQ(MaskIdNumber("123456789"), "1234*6789");
}

TEST(PersonKey, KeyOfIdNumberRefusesWhatNormalizationRefuses) {
  absl::StatusOr<std::string> key = Keyer(kSecretA).KeyOfIdNumber("12345");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(ReasonOf(key.status()), reason::kIdNumberInvalid);
  EXPECT_EQ(FieldOf(key.status()), "credential.id_card_no");
}

}  // namespace
}  // namespace medsettle::cache
