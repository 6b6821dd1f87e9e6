// Loss curves (distill/curves.h, common/svg_chart.h) and `minipuzzle plot`.
#include "common/atomic_output.h"
#include "common/error.h"
#include "common/svg_chart.h"
#include "distill/curves.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <fstream>

namespace {

void write_run(const std::string& dir, double start, double slope) {
  std::filesystem::create_directories(dir);
  std::ofstream f(dir + "/metrics.jsonl");
  f << R"({"type":"eval","step":0,"model":"teacher","loss":1.5,"tokens":999})" << "\n";
  f << R"({"type":"eval","step":0,"model":"student","loss":)" << start << R"(,"tokens":999})" << "\n";
  for (int s = 1; s <= 20; ++s) {
    f << R"({"type":"train","step":)" << s << R"(,"tokens":)" << s * 100 << R"(,"loss":)" << start - slope * s << "}\n";
    if (s % 10 == 0)
      f << R"({"type":"eval","step":)" << s << R"(,"model":"student","loss":)" << start - slope * s << R"(,"tokens":999})" << "\n";
  }
}

TEST(Curves, EvalRecordsAreKeyedByTrainingTokensAndSmoothingAverages) {
  mp::test::ScratchDir d;
  write_run(d.file("a"), 3.0, 0.05);
  const mp::RunRecords r = mp::read_run_records(d.file("a"), "a");
  ASSERT_EQ(r.eval.size(), 3u);
  ASSERT_EQ(r.teacher_eval.size(), 1u);
  EXPECT_EQ(r.eval[1]["tokens"].get<double>(), 1000.0);  // step 10 -> the train record's tokens, not 999
  mp::CurveOptions o;
  o.records = "train", o.smooth = 4;
  const mp::LineChart ch = mp::curves_chart({r}, o, "t");
  ASSERT_EQ(ch.series.size(), 1u);
  // Trailing mean of 4 linear points = the value 1.5 steps back.
  EXPECT_NEAR(ch.series[0].points.back().second, 3.0 - 0.05 * 18.5, 1e-12);
  o.field = "nonexistent";
  EXPECT_THROW(mp::curves_chart({r}, o, "t"), mp::Error);
}

TEST(Curves, SvgEscapesTextAndSkipsNonFinitePoints) {
  mp::LineChart ch;
  ch.title = "a < b & c";
  ch.series.push_back({"s", {{0, 1}, {1, std::nan("")}, {2, 3}}, true});
  const std::string svg = mp::render_svg(ch);
  EXPECT_NE(svg.find("a &lt; b &amp; c"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), 'L'), 1 + 0) << svg;  // one segment between the two finite points
}

TEST(PlotCli, ComparesRunsAndRejectsBadInput) {
  mp::test::ScratchDir d;
  write_run(d.file("distilled"), 3.0, 0.05);
  write_run(d.file("scratch"), 3.5, 0.02);
  auto r = mp::test::run_cli("plot " + d.file("distilled") + " " + d.file("scratch") + " --output " + d.file("c.svg"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string svg = mp::read_file(d.file("c.svg"));
  for (const char* s : {"distilled", "scratch", "teacher"}) EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_NE(r.output.find("distilled"), std::string::npos);
  EXPECT_NE(r.output.find("2"), std::string::npos);

  r = mp::test::run_cli("plot " + d.file("distilled") + " --labels a,b --output " + d.file("x.svg"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  std::ofstream(d.file("bad.jsonl")) << "{\"type\":\"train\"}\nnot json\n";
  r = mp::test::run_cli("plot " + d.file("bad.jsonl") + " --output " + d.file("y.svg"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.jsonl:2"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(d.file("y.svg")));
  r = mp::test::run_cli("plot " + d.file("missing") + " --output " + d.file("z.svg"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
