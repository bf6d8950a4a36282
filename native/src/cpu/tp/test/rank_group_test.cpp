// Driver for test/native/tensor-parallel-ranks.test.ts: the in-process all-reduce and barrier of RankGroup, and the
// shard plan (native/include/tslora/shard-plan.h). Usage: rank_group_test --list | <case>; prints "ok <case>".
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../rank-group.h"
#include "tslora/shard-plan.h"

using namespace tslora;

#define EXPECT(cond, ...)                                     \
  do {                                                        \
    if (!(cond)) {                                            \
      std::fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);    \
      std::fprintf(stderr, __VA_ARGS__);                      \
      std::fprintf(stderr, "\n");                             \
      std::exit(1);                                           \
    }                                                         \
  } while (0)

namespace {

// Every rank ends with the sum in rank order, bit for bit the same on every rank, over many rounds and sizes.
void allReduceSums() {
  for (int ranks : {1, 2, 3, 4}) {
    cpu::tp::RankGroup group(ranks);
    std::mt19937 rng(ranks);
    for (int round = 0; round < 200; ++round) {
      const size_t n = 1 + rng() % 3000;
      std::vector<std::vector<float>> data(ranks, std::vector<float>(n));
      std::uniform_real_distribution<float> value(-1e3f, 1e3f);
      for (auto& d : data)
        for (auto& x : d) x = value(rng);
      std::vector<float> expected(n);
      for (size_t i = 0; i < n; ++i) {
        float s = data[0][i];
        for (int r = 1; r < ranks; ++r) s += data[r][i];
        expected[i] = s;
      }
      group.reserve(n);
      group.run([&](int r) {
        group.allReduce(r, data[r].data(), n);
        group.allReduce(r, data[r].data(), 0);  // an empty all-reduce is a no-op barrier pair
      });
      for (int r = 0; r < ranks; ++r)
        EXPECT(std::memcmp(data[r].data(), expected.data(), n * sizeof(float)) == 0, "ranks %d round %d rank %d", ranks, round, r);
    }
  }
}

// A rank that throws releases its peers waiting at the all-reduce; run() rethrows that error; the group still works.
void failedRankReleasesPeers() {
  cpu::tp::RankGroup group(4);
  group.reserve(16);
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::vector<std::vector<float>> data(4, std::vector<float>(16, 1.0f));
    bool threw = false;
    try {
      group.run([&](int r) {
        group.allReduce(r, data[r].data(), 16);
        if (r == attempt % 4) throw std::invalid_argument("rank failed on purpose");
        group.allReduce(r, data[r].data(), 16);  // the peers wait here until the failure releases them
      });
    } catch (const std::invalid_argument& e) {
      threw = std::string(e.what()) == "rank failed on purpose";
    }
    EXPECT(threw, "attempt %d: the failing rank's error is rethrown", attempt);
    group.run([&](int r) { group.allReduce(r, data[r].data(), 16); });
    for (int r = 0; r < 4; ++r) EXPECT(data[r][0] == 16.0f, "attempt %d: usable after a failure (got %g)", attempt, data[r][0]);
  }
}

// Heads, KV heads, intermediate and vocabulary ranges tile their dimensions; each rank holds the KV heads its q
// heads read (GQA); LoRA slices follow the column / row split.
void shardPlanLayout() {
  struct Case {
    shard::ModelShape shape;
    int tp, kvReplicas;
  };
  const std::vector<Case> cases = {
      {{4096, 14336, 32, 8, 128, 128256}, 2, 1}, {{4096, 14336, 32, 8, 128, 128256}, 8, 1},
      {{64, 160, 4, 2, 16, 320}, 4, 2},          {{256, 512, 8, 4, 32, 128}, 8, 2},
      {{64, 128, 4, 1, 16, 383}, 4, 4},
  };
  for (const Case& c : cases) {
    const shard::ShardPlan plan = shard::makeShardPlan(c.shape, c.tp);
    const shard::ModelShape& m = c.shape;
    EXPECT(plan.kvReplicas == c.kvReplicas, "kvReplicas %d, expected %d", plan.kvReplicas, c.kvReplicas);
    int q = 0, inter = 0, vocab = 0;
    for (const shard::RankShard& s : plan.ranks) {
      EXPECT(s.qHeads.begin == q && s.intermediate.begin == inter && s.vocab.begin == vocab, "rank %d ranges tile", s.rank);
      q = s.qHeads.end, inter = s.intermediate.end, vocab = s.vocab.end;
      const int group = m.numHeads / m.numKvHeads;
      for (int h = s.qHeads.begin; h < s.qHeads.end; ++h)
        EXPECT(h / group >= s.kvHeads.begin && h / group < s.kvHeads.end, "rank %d holds KV head %d of q head %d", s.rank, h / group, h);
      EXPECT(s.qHeads.size() % s.kvHeads.size() == 0, "local GQA group");
      EXPECT((s.qHeads.begin / group) - s.kvHeads.begin == 0, "first local q head reads the first local KV head");
      const shard::LoraModuleSlice o = shard::loraModuleSlice(1, plan, s.rank);
      EXPECT(o.sharding == shard::LoraSharding::SplitAInputs && o.aInputCols.size() == s.qHeads.size() * m.headDim &&
                 o.bOutputRows[0].size() == m.hidden, "o_proj: A split by input columns, B whole");
      const shard::LoraModuleSlice qkv = shard::loraModuleSlice(0, plan, s.rank);
      EXPECT(qkv.sharding == shard::LoraSharding::SplitBOutputs && qkv.aInputCols.size() == m.hidden &&
                 qkv.bOutputRows[1].size() == s.kvHeads.size() * m.headDim, "qkv: A whole, B split by outputs");
      const shard::LoraModuleSlice embed = shard::loraModuleSlice(4, plan, s.rank);
      EXPECT(embed.aInputCols.begin == s.vocab.begin && embed.aInputCols.end == s.vocab.end, "embed: A by vocabulary");
    }
    EXPECT(q == m.numHeads && inter == m.intermediate && vocab == m.vocab, "ranges cover the dimensions");
  }
  const std::map<int, std::string> refused = {{3, "does not divide the model's 4 attention heads"}};
  EXPECT(shard::shardPlanProblem({64, 160, 4, 2, 16, 320}, 3).find(refused.at(3)) != std::string::npos, "heads rule");
  EXPECT(shard::shardPlanProblem({64, 160, 12, 3, 16, 320}, 4).find("3 KV heads must divide one another") != std::string::npos, "KV rule");
  EXPECT(shard::shardPlanProblem({64, 130, 4, 2, 16, 320}, 4).find("intermediate size 130") != std::string::npos, "intermediate rule");
  bool threw = false;
  try {
    shard::makeShardPlan({64, 160, 4, 2, 16, 320}, 3);
  } catch (const NativeError& e) {
    threw = e.code() == "native_invalid_argument";
  }
  EXPECT(threw, "makeShardPlan throws native_invalid_argument");
}

const std::map<std::string, std::function<void()>> kCases = {
    {"all-reduce", allReduceSums}, {"failed-rank", failedRankReleasesPeers}, {"shard-plan", shardPlanLayout}};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& [name, fn] : kCases) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (argc != 2 || !kCases.count(argv[1])) {
    std::fprintf(stderr, "usage: rank_group_test --list | <case>\n");
    return 2;
  }
  kCases.at(argv[1])();
  std::printf("ok %s\n", argv[1]);
  return 0;
}
