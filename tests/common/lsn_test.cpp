// Lsn parsing, formatting and ordering.
#include "common/lsn.h"

#include <gtest/gtest.h>

namespace lifeline {

TEST(LsnTest, ParsesAndFormatsLikePostgres) {
  auto lsn = Lsn::Parse("16/B374D848");
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(lsn->value(), 0x16B374D848ull);
  EXPECT_EQ(lsn->ToString(), "16/B374D848");
  EXPECT_EQ(Lsn::Parse("0/0")->value(), 0u);
  EXPECT_EQ(Lsn::Parse("ffffffff/ffffffff")->value(), ~0ull);
  EXPECT_EQ(Lsn(0x100000001ull).ToString(), "1/1");
  EXPECT_EQ(Lsn::Parse("0/16b3748")->ToString(), "0/16B3748");
  EXPECT_EQ(Lsn(0).ToString(), "0/0");
  EXPECT_EQ(Lsn(~0ull).ToString(), "FFFFFFFF/FFFFFFFF");
  EXPECT_EQ(Lsn(0xABCDEF0012345ull).ToString(), "ABCDE/F0012345");
}

TEST(LsnTest, RejectsMalformedTextWithAClearMessage) {
  for (const char* bad :
       {"", "/", "1/", "/1", "12", "1/2/3", "g/1", "123456789/0", " 1/2", "1/2 "}) {
    auto r = Lsn::Parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("malformed LSN"), std::string::npos);
    EXPECT_EQ(r.status().ExitCode(), 2);
  }
}

TEST(LsnTest, OrdersByPosition) {
  EXPECT_LT(*Lsn::Parse("0/FFFFFFFF"), *Lsn::Parse("1/0"));
  EXPECT_EQ(*Lsn::Parse("A/1"), *Lsn::Parse("a/1"));
  EXPECT_FALSE(Lsn().valid());
}

}  // namespace lifeline
