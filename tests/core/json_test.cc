#include "core/json.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

namespace medic {
namespace {

TEST(JsonTest, ParseJsonAcceptsDocuments) {
  const std::string kCases[] = {"{}",
                                "[]",
                                "1",
                                "\"s\"",
                                "null",
                                "true",
                                " {\"a\": [1, 2.5, \"x\", null]} ",
                                "\"\\u00e9\\ud83d\\udd25\""};
  for (const std::string& text : kCases) {
    SCOPED_TRACE(text);
    Result<Json> j = ParseJson(text);
    EXPECT_TRUE(j.has_value()) << j.error().ToString();
  }
}

TEST(JsonTest, ParseJsonRejectsMalformedTextWithoutThrowing) {
  const std::string kCases[] = {
      "",
      " ",
      "{",
      "}",
      "{\"a\":}",
      "{\"a\" 1}",
      "{a: 1}",
      "[1,]",
      "[1 2]",
      "nul",
      "True",
      "'single'",
      "\"unterminated",
      "{} trailing",
      "{}{}",
      "\"\xff\"",      // invalid UTF-8 inside a string
      "\"\xc3\x28\"",  // invalid continuation byte
      "\"a\nb\"",      // raw control character in a string
      "\"\\x41\"",     // not a JSON escape
      "\"\\ud800\"",   // lone surrogate
      "01",
      "1.",
      "-",
      "NaN",
      "Infinity",
      std::string("{\"a\":1}\0", 8),  // trailing NUL
      std::string(100'000, '['),      // unbalanced, deep
  };
  for (const std::string& text : kCases) {
    SCOPED_TRACE(text.substr(0, 40));
    Result<Json> j = ParseJson(text);
    if (j.has_value()) {
      ADD_FAILURE() << "parsed as " << DumpJson(*j);
      continue;
    }
    EXPECT_EQ(j.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(j.error().message.find("malformed JSON"), std::string::npos) << j.error().message;
  }
}

TEST(JsonTest, ParseJsonObjectRequiresAnObject) {
  struct Case {
    std::string text;
    bool ok;
  };
  const Case kCases[] = {
      {"{}", true},      {"{\"a\":1}", true}, {"[]", false},   {"[{}]", false}, {"1", false},
      {"\"{}\"", false}, {"null", false},     {"true", false}, {"{", false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.text);
    Result<Json> j = ParseJsonObject(c.text);
    EXPECT_EQ(j.has_value(), c.ok);
    if (!j.has_value()) {
      EXPECT_EQ(j.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

const Json& Sample() {
  static const Json kSample = Json::parse(R"({
    "s": "text", "empty": "", "n": null, "i": 42, "neg": -7, "f": 1.5, "b": true,
    "arr": [1], "obj": {"k": "v"}, "big": 18446744073709551615, "i64max": 9223372036854775807
  })");
  return kSample;
}

TEST(JsonTest, RequireString) {
  struct Case {
    std::string key;
    std::optional<std::string> want;  // nullopt: an error naming the key
  };
  const Case kCases[] = {
      {"s", "text"},       {"empty", ""},       {"missing", std::nullopt}, {"n", std::nullopt},
      {"i", std::nullopt}, {"b", std::nullopt}, {"arr", std::nullopt},     {"obj", std::nullopt},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    Result<std::string> r = RequireString(Sample(), c.key);
    if (c.want) {
      ASSERT_TRUE(r.has_value()) << r.error().ToString();
      EXPECT_EQ(*r, *c.want);
    } else {
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(r.error().message.find("'" + c.key + "'"), std::string::npos);
    }
  }
}

// For the Optional* readers: absent and null are "not given", a wrong type is an error.
enum class Want { kAbsent, kValue, kError };

TEST(JsonTest, OptionalString) {
  struct Case {
    std::string key;
    Want want;
    std::string value;
  };
  const Case kCases[] = {{"s", Want::kValue, "text"},    {"empty", Want::kValue, ""},
                         {"missing", Want::kAbsent, ""}, {"n", Want::kAbsent, ""},
                         {"i", Want::kError, ""},        {"b", Want::kError, ""},
                         {"obj", Want::kError, ""}};
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    auto r = OptionalString(Sample(), c.key);
    ASSERT_EQ(r.has_value(), c.want != Want::kError);
    if (c.want == Want::kError) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      continue;
    }
    ASSERT_EQ(r->has_value(), c.want == Want::kValue);
    if (c.want == Want::kValue) {
      EXPECT_EQ(**r, c.value);
    }
  }
}

TEST(JsonTest, OptionalBool) {
  struct Case {
    std::string key;
    Want want;
    bool value;
  };
  const Case kCases[] = {{"b", Want::kValue, true},   {"missing", Want::kAbsent, false},
                         {"n", Want::kAbsent, false}, {"i", Want::kError, false},
                         {"s", Want::kError, false},  {"arr", Want::kError, false}};
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    auto r = OptionalBool(Sample(), c.key);
    ASSERT_EQ(r.has_value(), c.want != Want::kError);
    if (c.want == Want::kError) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      continue;
    }
    ASSERT_EQ(r->has_value(), c.want == Want::kValue);
    if (c.want == Want::kValue) {
      EXPECT_EQ(**r, c.value);
    }
  }
}

TEST(JsonTest, OptionalInt) {
  struct Case {
    std::string key;
    Want want;
    int64_t value;
  };
  const Case kCases[] = {
      {"i", Want::kValue, 42},
      {"neg", Want::kValue, -7},
      {"i64max", Want::kValue, INT64_MAX},
      {"missing", Want::kAbsent, 0},
      {"n", Want::kAbsent, 0},
      {"f", Want::kError, 0},  // not an integer
      {"s", Want::kError, 0},
      {"b", Want::kError, 0},
      {"big", Want::kError, 0},  // does not fit int64: must not wrap to -1
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    auto r = OptionalInt(Sample(), c.key);
    ASSERT_EQ(r.has_value(), c.want != Want::kError)
        << (r.has_value() && r->has_value() ? std::to_string(**r) : "");
    if (c.want == Want::kError) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      continue;
    }
    ASSERT_EQ(r->has_value(), c.want == Want::kValue);
    if (c.want == Want::kValue) {
      EXPECT_EQ(**r, c.value);
    }
  }
}

TEST(JsonTest, OptionalNumber) {
  struct Case {
    std::string key;
    Want want;
    double value;
  };
  const Case kCases[] = {{"f", Want::kValue, 1.5},    {"i", Want::kValue, 42.0},
                         {"neg", Want::kValue, -7.0}, {"missing", Want::kAbsent, 0},
                         {"n", Want::kAbsent, 0},     {"s", Want::kError, 0},
                         {"b", Want::kError, 0},      {"arr", Want::kError, 0}};
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.key);
    auto r = OptionalNumber(Sample(), c.key);
    ASSERT_EQ(r.has_value(), c.want != Want::kError);
    if (c.want == Want::kError) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      continue;
    }
    ASSERT_EQ(r->has_value(), c.want == Want::kValue);
    if (c.want == Want::kValue) {
      EXPECT_DOUBLE_EQ(**r, c.value);
    }
  }
}

TEST(JsonTest, ReadersOnNonObjectsSeeNoFields) {
  for (const Json& j : {Json::array({1, 2}), Json("s"), Json(nullptr), Json(5)}) {
    SCOPED_TRACE(DumpJson(j));
    EXPECT_FALSE(RequireString(j, "a").has_value());
    auto s = OptionalString(j, "a");
    ASSERT_TRUE(s.has_value());
    EXPECT_FALSE(s->has_value());
  }
}

TEST(JsonTest, DumpJsonNeverThrowsOnInvalidUtf8) {
  Json j = {{"output", std::string("ok \xff\xfe bad \xc3\x28 end")}};
  const std::string dumped = DumpJson(j);
  EXPECT_NE(dumped.find("\xef\xbf\xbd"), std::string::npos) << dumped;  // U+FFFD
  EXPECT_NE(dumped.find(" end"), std::string::npos);
  // What it produced is valid JSON again.
  EXPECT_TRUE(ParseJson(dumped).has_value());
}

TEST(JsonTest, DumpJsonIndents) {
  EXPECT_EQ(DumpJson(Json{{"a", 1}}), "{\"a\":1}");
  EXPECT_EQ(DumpJson(Json{{"a", 1}}, 2), "{\n  \"a\": 1\n}");
}

// The one parser entry refuses nesting past the limit while it reads: 400,000 levels cost one
// pass and no stack, and no tree deeper than the limit ever exists.
TEST(JsonTest, ParseJsonRefusesDeepNestingFastAndWithoutACrash) {
  const std::string arrays = std::string(400'000, '[') + std::string(400'000, ']');
  std::string objects;
  for (int i = 0; i < 200'000; ++i) {
    objects += "{\"a\":";
  }
  objects += "1" + std::string(200'000, '}');
  const std::string kCases[] = {
      arrays,
      std::string(400'000, '['),  // unclosed too
      objects,
      "{\"params\":" + arrays + "}",
      "[1,2,{\"x\":" + arrays + "}]",
  };
  for (const std::string& text : kCases) {
    SCOPED_TRACE(text.substr(0, 20));
    const auto start = std::chrono::steady_clock::now();
    Result<Json> j = ParseJson(text);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    ASSERT_FALSE(j.has_value());
    EXPECT_EQ(j.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(j.error().message.find("nested deeper than 32 levels"), std::string::npos)
        << j.error().message;
    EXPECT_FALSE(ParseJsonObject(text).has_value());
  }
}

TEST(JsonTest, TheDepthLimitIsExactAndAdjustable) {
  auto arrays = [](size_t n) { return std::string(n, '[') + std::string(n, ']'); };
  auto objects = [](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      s += "{\"k\":";
    }
    return s + "null" + std::string(n, '}');
  };
  EXPECT_TRUE(ParseJson(arrays(kMaxJsonDepth)).has_value());
  EXPECT_FALSE(ParseJson(arrays(kMaxJsonDepth + 1)).has_value());
  EXPECT_TRUE(ParseJson(objects(kMaxJsonDepth)).has_value());
  EXPECT_FALSE(ParseJson(objects(kMaxJsonDepth + 1)).has_value());
  // Scalars add no level; siblings do not add up.
  EXPECT_TRUE(ParseJson("[" + arrays(kMaxJsonDepth - 1) + "," + arrays(kMaxJsonDepth - 1) + "]")
                  .has_value());
  EXPECT_TRUE(ParseJson("\"" + std::string(100, '[') + "\"").has_value());
  EXPECT_TRUE(ParseJson(arrays(3), JsonLimits{3, kMaxJsonBytes}).has_value());
  EXPECT_FALSE(ParseJson(arrays(4), JsonLimits{3, kMaxJsonBytes}).has_value());
  // The tree built is the same as nlohmann's own parser's.
  const std::string doc = R"({"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":{"d":[[]]},"e":18446744073709551615})";
  EXPECT_EQ(*ParseJson(doc), Json::parse(doc));
  // A repeated key keeps its last value, as before.
  EXPECT_EQ((*ParseJson(R"({"a":1,"a":[2]})"))["a"], Json::array({2}));
}

TEST(JsonTest, ParseJsonRefusesTextOverTheSizeLimit) {
  const std::string big = "\"" + std::string(100, 'x') + "\"";
  EXPECT_TRUE(ParseJson(big, JsonLimits{kMaxJsonDepth, big.size()}).has_value());
  Result<Json> j = ParseJson(big, JsonLimits{kMaxJsonDepth, big.size() - 1});
  ASSERT_FALSE(j.has_value());
  EXPECT_NE(j.error().message.find("more than the limit"), std::string::npos) << j.error().message;
  EXPECT_FALSE(ParseJson(std::string(kMaxJsonBytes + 1, ' ')).has_value());
}

TEST(JsonTest, NumbersAtTheEdges) {
  // Too large for a double: an error, not infinity.
  for (const std::string text : {"1e400", "-1e400", "[1e999]"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(ParseJson(text).has_value());
  }
  // Integers past uint64 become doubles; the readers say which are integers that fit.
  const Json j = *ParseJson(
      R"({"u":18446744073709551615,"big":18446744073709551616,"neg":-9223372036854775808,"f":1.5,"max":9223372036854775807})");
  EXPECT_FALSE(OptionalInt(j, "u").has_value());
  EXPECT_FALSE(OptionalInt(j, "big").has_value());
  EXPECT_EQ(*OptionalInt(j, "neg").value(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*OptionalInt(j, "max").value(), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(OptionalInt(j, "f").has_value());
  EXPECT_EQ(IntOr(j, "u", 7), 7);
  EXPECT_EQ(IntOr(j, "f", 7), 7);
  EXPECT_EQ(IntOr(j, "max", 7), std::numeric_limits<int64_t>::max());
  EXPECT_DOUBLE_EQ(*OptionalNumber(j, "big").value(), 18446744073709551616.0);
  // Built in code, a NaN or an infinity is still not a number a reader hands out.
  const Json odd{{"nan", std::nan("")}, {"inf", HUGE_VAL}};
  EXPECT_FALSE(OptionalNumber(odd, "nan").has_value());
  EXPECT_FALSE(OptionalNumber(odd, "inf").has_value());
  EXPECT_EQ(DumpJson(odd), R"({"inf":null,"nan":null})");
}

// The lenient readers never throw, whatever the type of the object or the field.
TEST(JsonTest, LenientReadersNeverThrow) {
  const Json values[] = {nullptr, true, 1, -1, 1.5, "s", Json::array({1}), Json::object(),
                         Json{{"k", nullptr}}, Json{{"k", 1}}, Json{{"k", "v"}},
                         Json{{"k", true}}, Json{{"k", Json::array()}}, Json{{"k", 1.5}}};
  for (const Json& v : values) {
    SCOPED_TRACE(v.dump());
    EXPECT_NO_THROW({
      (void)StringOr(v, "k", "d");
      (void)BoolOr(v, "k", false);
      (void)IntOr(v, "k", 0);
      (void)FieldOrNull(v, "k");
    });
  }
  EXPECT_EQ(StringOr(Json{{"k", "v"}}, "k", "d"), "v");
  EXPECT_EQ(StringOr(Json{{"k", 1}}, "k", "d"), "d");
  EXPECT_EQ(StringOr(Json::array({"k"}), "k"), "");
  EXPECT_TRUE(BoolOr(Json{{"k", true}}, "k", false));
  EXPECT_TRUE(BoolOr(Json{{"k", "false"}}, "k", true));
  EXPECT_EQ(IntOr(Json{{"k", 5}}, "k", 0), 5);
  EXPECT_EQ(IntOr(Json{{"k", "5"}}, "k", 0), 0);
  EXPECT_TRUE(FieldOrNull(Json("s"), "k").is_null());
  EXPECT_EQ(FieldOrNull(Json{{"k", 1}}, "k"), 1);
}

}  // namespace
}  // namespace medic
