// JSON Lines and text renderings of events.
#include "common/event_format.h"

#include <gtest/gtest.h>

#include "tests/support/sample_events.h"

namespace lifeline {

TEST(EventFormatTest, TimestampsAreRfc3339UtcWithMicroseconds) {
  EXPECT_EQ(FormatTimestampUs(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTimestampUs(1'764'000'000'123'456LL), "2025-11-24T16:00:00.123456Z");
  EXPECT_EQ(FormatTimestampUs(-1), "1969-12-31T23:59:59.999999Z");
}

// Found by fuzz/config_fuzz: %lf reads "nan", which passed the range checks and was converted to
// an integer (undefined).
TEST(EventFormatTest, TimestampSecondsMustBeANumberInRange) {
  EXPECT_EQ(*ParseTimestampUs("2026-11-25T10:00:00.123456Z"), 1'795'600'800'123'456LL);
  for (const char* bad : {"2026-11-25T10:00:nanZ", "2026-11-25 10:00:nan", "2026-11-25T10:00:infZ",
                          "2026-11-25T10:00:61Z", "2026-11-25T10:00:-1Z"}) {
    auto t = ParseTimestampUs(bad);
    EXPECT_FALSE(t.ok()) << bad << " gave " << (t.ok() ? std::to_string(*t) : "");
    if (!t.ok()) {
      EXPECT_EQ(t.status().ExitCode(), 2) << bad;
    }
  }
}

TEST(EventFormatTest, JsonQuoteEscapes) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonQuote("Zoë"), "\"Zoë\"");
}

TEST(EventFormatTest, EventJsonHasTheDocumentedKeys) {
  v1::ChangeEvent ev = testing::SampleEvent(7, 0, 1, 200);
  ev.set_seq(42);
  ev.set_op(v1::OP_UPDATE);
  ev.mutable_after()->mutable_values(3)->set_unchanged_toast(true);
  ev.mutable_after()->mutable_values(2)->set_null(true);
  std::string j = EventToJson(ev);
  EXPECT_EQ(j.rfind("{\"seq\":42,\"op\":\"update\",\"schema\":\"public\","
                    "\"table\":\"emergency_requests\",\"xid\":7,",
                    0),
            0u)
      << j;
  EXPECT_NE(j.find("\"commit_lsn\":\"0/1007000\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"key\":{\"id\":\"00000000-0000-4000-8000-000000000007\"}"), std::string::npos)
      << j;
  EXPECT_NE(j.find("\"before\":null"), std::string::npos);
  EXPECT_NE(j.find("\"phone_number\":null"), std::string::npos);
  EXPECT_EQ(j.find("\"notes\":"), std::string::npos) << "unchanged TOAST is not a value";
  EXPECT_NE(j.find("\"unchanged\":[\"notes\"]"), std::string::npos) << j;
}

TEST(EventFormatTest, DeleteKeyComesFromTheBeforeImage) {
  v1::ChangeEvent ev = testing::SampleEvent(9, 0, 1, 100);
  ev.set_op(v1::OP_DELETE);
  *ev.mutable_before() = ev.after();
  ev.clear_after();
  std::string j = EventToJson(ev);
  EXPECT_NE(j.find("\"key\":{\"id\":\"00000000-0000-4000-8000-000000000009\"}"), std::string::npos);
  EXPECT_NE(j.find("\"after\":null"), std::string::npos);
  EXPECT_NE(EventToText(ev).find("delete public.emergency_requests"), std::string::npos);
}

}  // namespace lifeline
