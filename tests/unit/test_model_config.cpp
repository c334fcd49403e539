#include <stdexcept>

#include <gtest/gtest.h>

#include "runtime/common/ModelConfig.hpp"

using namespace moe;

TEST(ModelConfig, PresetsHaveTheShapesOfTheNotes) {
  const auto g = preset_shape("gpt-oss-120b");
  EXPECT_EQ(g.num_experts, 128);
  EXPECT_EQ(g.hidden, 2880);
  EXPECT_EQ(g.ffn, 2880);
  EXPECT_EQ(g.top_k, 4);
  EXPECT_EQ(g.activation, Activation::GptOss);
  const auto d = preset_shape("deepseek-v3");
  EXPECT_EQ(d.num_experts, 256);
  EXPECT_EQ(d.hidden, 7168);
  EXPECT_EQ(d.ffn, 2048);
  EXPECT_EQ(d.top_k, 8);
  EXPECT_EQ(preset_shape("kimi-k2").num_experts, 384);
  EXPECT_EQ(preset_shape("mixtral-8x7b").ffn, 14336);
  EXPECT_EQ(preset_shape("qwen3-30b-a3b").ffn, 768);
  EXPECT_THROW(preset_shape("gpt-5"), std::invalid_argument);
}

TEST(ModelConfig, ValidationNamesTheFlag) {
  ModelShape s = preset_shape("small");
  EXPECT_EQ(validate_shape(s, 4), "");
  EXPECT_NE(validate_shape(s, 3).find("--experts"), std::string::npos);
  s.top_k = 33;
  EXPECT_NE(validate_shape(s, 4).find("--top-k"), std::string::npos);
  s.top_k = 32;  // K = N is allowed
  EXPECT_EQ(validate_shape(s, 4), "");
  s.tokens = -1;
  EXPECT_NE(validate_shape(s, 4).find("--tokens"), std::string::npos);
}

TEST(ModelConfig, ExpertBytesCountBiasesOnlyForGptOss) {
  ModelShape s = preset_shape("small");
  EXPECT_EQ(s.expert_weight_bytes(), 4 * (128 * 512 + 256 * 128));
  s.activation = Activation::GptOss;
  EXPECT_EQ(s.expert_weight_bytes(), 4 * (128 * 512 + 256 * 128 + 512 + 128));
}
