// Reading the model signature from package metadata (docs/package-format.md).
#include <gtest/gtest.h>

#include "signature.h"

namespace trtaoti {
namespace {

std::unordered_map<std::string, std::string> Metadata() {
  return {{"trtaoti.format", "1"},
          {"trtaoti.model_name", "resnet"},
          {"trtaoti.inputs", R"([{"name":"x","datatype":"FP16","shape":[-1,3,224,224]}])"},
          {"trtaoti.outputs", R"([{"name":"logits","datatype":"FP16","shape":[-1,1000]}])"},
          {"trtaoti.batch_min", "1"},
          {"trtaoti.batch_opt", "8"},
          {"trtaoti.batch_max", "64"},
          {"trtaoti.backend", "tensorrt"},
          {"trtaoti.precision", "fp16"},
          {"trtaoti.device", "cuda"},
          {"trtaoti.requires_torchtrt_runtime", "true"},
          {"trtaoti.versions", R"({"torch":"2.14.0","tensorrt":"10.13"})"}};
}

TEST(Signature, ReadsEveryKey) {
  ModelSignature sig = SignatureFromMetadata(Metadata());
  EXPECT_EQ(sig.name, "resnet");
  ASSERT_EQ(sig.inputs.size(), 1u);
  EXPECT_EQ(sig.inputs[0].dtype, DataType::kFp16);
  EXPECT_EQ(sig.inputs[0].shape, (Shape{-1, 3, 224, 224}));
  EXPECT_EQ(sig.outputs[0].name, "logits");
  EXPECT_EQ(sig.batch_min, 1);
  EXPECT_EQ(sig.batch_opt, 8);
  EXPECT_EQ(sig.batch_max, 64);
  EXPECT_TRUE(sig.requires_torchtrt_runtime);
  EXPECT_EQ(sig.versions.at("tensorrt"), "10.13");
}

TEST(Signature, NamesTheBrokenKey) {
  auto expect_error = [](std::unordered_map<std::string, std::string> metadata, const std::string& needle) {
    try {
      SignatureFromMetadata(metadata);
      ADD_FAILURE() << "accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto m = Metadata();
  m.erase("trtaoti.inputs");
  expect_error(m, "lacks 'trtaoti.inputs'");
  m = Metadata();
  m["trtaoti.batch_max"] = "lots";
  expect_error(m, "'trtaoti.batch_max' is not a positive integer");
  m = Metadata();
  m["trtaoti.batch_min"] = "100";
  expect_error(m, "min <= opt <= max");
  m = Metadata();
  m["trtaoti.outputs"] = R"([{"name":"y","datatype":"STRING","shape":[-1]}])";
  expect_error(m, "unsupported datatype 'STRING'");
  m = Metadata();
  m["trtaoti.format"] = "2";
  expect_error(m, "unsupported trtaoti.format");
}

}  // namespace
}  // namespace trtaoti
