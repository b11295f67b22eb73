// KServe V2 request parsing and response encoding, good and malformed.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "protocol.h"
#include "status.h"

namespace trtaoti {
namespace {

using nlohmann::json;

ModelSignature TestSignature() {
  ModelSignature sig;
  sig.name = "m";
  sig.inputs = {{"x", DataType::kFp32, {-1, 3}}, {"ids", DataType::kInt64, {-1, 2}}};
  sig.outputs = {{"y", DataType::kFp32, {-1, 2}}, {"h", DataType::kFp16, {-1}}};
  sig.batch_min = 1;
  sig.batch_opt = 4;
  sig.batch_max = 8;
  return sig;
}

std::shared_ptr<const std::string> Body(const std::string& text) { return std::make_shared<std::string>(text); }

json GoodJson(int rows = 2) {
  json x = json::array(), ids = json::array();
  for (int r = 0; r < rows; ++r) {
    x.push_back({r + 0.5, r + 1.5, r + 2.5});  // nested rows
    ids.push_back(r);
    ids.push_back(-r);  // flat
  }
  return {{"id", "req-1"},
          {"inputs",
           {{{"name", "ids"}, {"datatype", "INT64"}, {"shape", {rows, 2}}, {"data", ids}},
            {{"name", "x"}, {"datatype", "FP32"}, {"shape", {rows, 3}}, {"data", x}}}}};
}

template <typename T>
T At(const HostTensor& tensor, int64_t i) {
  T v;
  std::memcpy(&v, tensor.data() + i * sizeof(T), sizeof(T));
  return v;
}

// Parsing must fail with 400 and a message containing `needle`.
void ExpectBadRequest(const std::string& body, const std::string& needle,
                      std::optional<size_t> json_length = std::nullopt) {
  try {
    ParseInferRequest(Body(body), json_length, TestSignature());
    ADD_FAILURE() << "accepted: " << body.substr(0, 200);
  } catch (const RequestError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

void ExpectBadJson(const json& doc, const std::string& needle) { ExpectBadRequest(doc.dump(), needle); }

TEST(Protocol, ParsesJsonInputsIntoSignatureOrder) {
  InferRequest request = ParseInferRequest(Body(GoodJson().dump()), std::nullopt, TestSignature());
  EXPECT_EQ(request.id, "req-1");
  ASSERT_EQ(request.inputs.size(), 2u);
  EXPECT_EQ(request.batch_size(), 2);
  EXPECT_EQ(request.inputs[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(request.inputs[0].dtype(), DataType::kFp32);
  EXPECT_FLOAT_EQ(At<float>(request.inputs[0], 4), 2.5f);  // row 1, col 1
  EXPECT_EQ(At<int64_t>(request.inputs[1], 3), -1);
  ASSERT_EQ(request.outputs.size(), 2u);  // all outputs, JSON by default
  EXPECT_FALSE(request.outputs[0].binary);
}

TEST(Protocol, BinaryInputsAreViewsIntoTheBody) {
  json header = {{"inputs",
                  {{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 3}}, {"parameters", {{"binary_data_size", 12}}}},
                   {{"name", "ids"}, {"datatype", "INT64"}, {"shape", {1, 2}}, {"data", {7, 8}}}}},
                 {"parameters", {{"binary_data_output", true}}}};
  std::string text = header.dump();
  const size_t json_length = text.size();
  float values[3] = {1.f, 2.f, 3.f};
  text.append(reinterpret_cast<const char*>(values), sizeof(values));
  auto body = Body(text);
  InferRequest request = ParseInferRequest(body, json_length, TestSignature());
  EXPECT_EQ(request.inputs[0].data(), reinterpret_cast<const std::byte*>(body->data()) + json_length);
  EXPECT_FLOAT_EQ(At<float>(request.inputs[0], 2), 3.f);
  EXPECT_TRUE(request.outputs[0].binary && request.outputs[1].binary);
}

TEST(Protocol, RequestedOutputsSelectAndOrderTheResponse) {
  json doc = GoodJson();
  doc["outputs"] = {{{"name", "h"}, {"parameters", {{"binary_data", true}}}}};
  InferRequest request = ParseInferRequest(Body(doc.dump()), std::nullopt, TestSignature());
  ASSERT_EQ(request.outputs.size(), 1u);
  EXPECT_EQ(request.outputs[0].index, 1);
  EXPECT_TRUE(request.outputs[0].binary);
}

TEST(Protocol, ConvertsNumbersToHalfPrecision) {
  ModelSignature sig = TestSignature();
  sig.inputs = {{"x", DataType::kFp16, {-1, 2}}, {"b", DataType::kBf16, {-1, 1}}};
  json doc = {{"inputs",
               {{{"name", "x"}, {"datatype", "FP16"}, {"shape", {1, 2}}, {"data", {1.5, 3}}},
                {{"name", "b"}, {"datatype", "BF16"}, {"shape", {1, 1}}, {"data", {-2.0}}}}}};
  InferRequest request = ParseInferRequest(Body(doc.dump()), std::nullopt, sig);
  EXPECT_EQ(At<uint16_t>(request.inputs[0], 0), 0x3E00);  // 1.5 in IEEE half
  EXPECT_EQ(At<uint16_t>(request.inputs[0], 1), 0x4200);  // 3.0
  EXPECT_EQ(At<uint16_t>(request.inputs[1], 0), 0xC000);  // -2.0 in bfloat16
}

TEST(Protocol, RejectsMalformedRequestsNamingTheProblem) {
  ExpectBadRequest(std::string("{\"inputs\": ["), "malformed JSON");
  ExpectBadRequest(std::string("[1, 2]"), "JSON object");
  ExpectBadJson(json{{"inputs", json::array()}}, "non-empty 'inputs'");

  json doc = GoodJson();
  doc["inputs"][0]["name"] = "nope";
  ExpectBadJson(doc, "unknown input 'nope'");

  doc = GoodJson();
  doc["inputs"].erase(0);
  ExpectBadJson(doc, "missing input 'ids'");

  doc = GoodJson();
  doc["inputs"].push_back(doc["inputs"][0]);
  ExpectBadJson(doc, "given twice");

  doc = GoodJson();
  doc["inputs"][1]["datatype"] = "FP64";
  ExpectBadJson(doc, "datatype FP64, the model expects FP32");

  doc = GoodJson();
  doc["inputs"][1]["shape"] = {2, 3, 1};
  ExpectBadJson(doc, "has rank 3");

  doc = GoodJson();
  doc["inputs"][1]["shape"] = {2, 4};
  ExpectBadJson(doc, "dimension 1 is 4");

  doc = GoodJson();
  doc["inputs"][1]["shape"] = {0, 3};
  doc["inputs"][1]["data"] = json::array();
  ExpectBadJson(doc, "batch size 0");

  doc = GoodJson();
  doc["inputs"][1]["data"].erase(0);
  ExpectBadJson(doc, "'data' has 3 elements but shape [2, 3] needs 6");

  doc = GoodJson();
  doc["inputs"][0]["data"][0] = 1.5;
  ExpectBadJson(doc, "is not an integer for INT64");

  doc = GoodJson();
  doc["inputs"][1]["data"][0][0] = "one";
  ExpectBadJson(doc, "is not a number for FP32");

  doc = GoodJson();
  doc["inputs"][1]["data"] = {{{{1, 2, 3}}}, {{{4, 5, 6}}}};
  ExpectBadJson(doc, "nested deeper than the tensor's rank");

  doc = GoodJson(1);
  doc["inputs"][1]["shape"] = {2, 3};
  doc["inputs"][1]["data"] = {1, 2, 3, 4, 5, 6};
  ExpectBadJson(doc, "disagree on the batch size");

  doc = GoodJson();
  doc["outputs"] = {{{"name", "zzz"}}};
  ExpectBadJson(doc, "unknown output 'zzz'");

  doc = GoodJson();
  doc["inputs"][1]["shape"] = {2147483647, 3};
  ExpectBadJson(doc, "too large");
}

TEST(Protocol, ReadsTheSchedulePolicyParameters) {
  json doc = GoodJson();
  doc["parameters"] = {{"priority", 2}, {"timeout", 1500}};
  InferRequest request = ParseInferRequest(Body(doc.dump()), std::nullopt, TestSignature());
  EXPECT_EQ(request.schedule.priority, 2u);
  EXPECT_EQ(request.schedule.timeout_us, 1500);
  InferRequest plain = ParseInferRequest(Body(GoodJson().dump()), std::nullopt, TestSignature());
  EXPECT_EQ(plain.schedule.priority, 0u);
  EXPECT_EQ(plain.schedule.timeout_us, 0);
}

TEST(Protocol, RejectsSchedulePolicyParametersThatAreNotNonNegativeIntegers) {
  for (const json& bad : {json(-1), json(1.5), json("1"), json(true), json::array()}) {
    for (const char* name : {"priority", "timeout"}) {
      json doc = GoodJson();
      doc["parameters"] = {{name, bad}};
      ExpectBadJson(doc, std::string("parameter '") + name + "' must be a non-negative integer");
    }
  }
  json doc = GoodJson();
  doc["parameters"] = {{"timeout", 18446744073709551615ull}};
  ExpectBadJson(doc, "parameter 'timeout' is out of range");
}

TEST(Protocol, RejectsRangeErrorsInNarrowIntegerTypes) {
  ModelSignature sig = TestSignature();
  sig.inputs = {{"x", DataType::kInt8, {-1, 1}}};
  json doc = {{"inputs", {{{"name", "x"}, {"datatype", "INT8"}, {"shape", {1, 1}}, {"data", {300}}}}}};
  EXPECT_THROW(ParseInferRequest(Body(doc.dump()), std::nullopt, sig), RequestError);
}

TEST(Protocol, RejectsFloatsBeyondTheInputTypesFiniteRange) {
  ModelSignature sig = TestSignature();
  sig.inputs = {{"h", DataType::kFp16, {-1, 1}}, {"b", DataType::kBf16, {-1, 1}}, {"f", DataType::kFp32, {-1, 1}}};
  auto doc = [](json h, json b, json f) {
    return json{{"inputs",
                 {{{"name", "h"}, {"datatype", "FP16"}, {"shape", {1, 1}}, {"data", {h}}},
                  {{"name", "b"}, {"datatype", "BF16"}, {"shape", {1, 1}}, {"data", {b}}},
                  {{"name", "f"}, {"datatype", "FP32"}, {"shape", {1, 1}}, {"data", {f}}}}}};
  };
  auto expect_rejected = [&](const json& body, const std::string& needle) {
    try {
      ParseInferRequest(Body(body.dump()), std::nullopt, sig);
      ADD_FAILURE() << "accepted: " << body.dump();
    } catch (const RequestError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    }
  };
  // The largest finite values (and what rounds down to them) are accepted.
  InferRequest edge = ParseInferRequest(Body(doc(65504, 3.38e38, 3.4028235e38).dump()), std::nullopt, sig);
  EXPECT_EQ(At<uint16_t>(edge.inputs[0], 0), 0x7BFF);  // 65504, FP16's largest
  expect_rejected(doc(65536, 1, 1), "input 'h': element 65536 is out of range for FP16");
  expect_rejected(doc(1, -1e39, 1), "input 'b': element -1e+39 is out of range for BF16");
  expect_rejected(doc(1, 1, 1e308), "input 'f': element 1e+308 is out of range for FP32");
  expect_rejected(doc(1, 1, 3.5e38), "input 'f'");
}

TEST(Protocol, NumberOverflowInJsonNamesTheInput) {
  // 1e999 is valid JSON grammar but beyond a double: a client error (400), not a model
  // failure. The parser stops there, before any signature check.
  ExpectBadRequest(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,1e999,2]}]})",
                   "input 'x': element 1e999 is out of range");
  // The name after the data: the position is all the parser has seen.
  ExpectBadRequest(R"({"inputs":[{"data":[[-1e999,0,0]],"name":"x","datatype":"FP32","shape":[1,3]}]})",
                   "inputs[0]: element -1e999 is out of range");
  ExpectBadRequest(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1e999,3],"data":[1,2,3]}]})",
                   "number 1e999 at /inputs/0/shape/0 is out of range");
}

TEST(Protocol, RejectsBrokenBinaryFraming) {
  json header = {{"inputs",
                  {{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 3}}, {"parameters", {{"binary_data_size", 12}}}},
                   {{"name", "ids"}, {"datatype", "INT64"}, {"shape", {1, 2}}, {"data", {7, 8}}}}}};
  const std::string text = header.dump();
  ExpectBadRequest(text + std::string(8, '\0'), "runs past the end", text.size());
  ExpectBadRequest(text + std::string(16, '\0'), "4 bytes of binary data that no input claims", text.size());
  ExpectBadRequest(text + std::string(12, '\0'), "but the body has only", text.size() + 100);
  ExpectBadRequest(text, "runs past the end", std::nullopt);

  json wrong_size = header;
  wrong_size["inputs"][0]["parameters"]["binary_data_size"] = 8;
  ExpectBadRequest(wrong_size.dump() + std::string(8, '\0'), "needs 12 bytes", wrong_size.dump().size());
}

TEST(Protocol, EncodesJsonAndBinaryResponses) {
  ModelSignature sig = TestSignature();
  HostTensor y = HostTensor::Allocate(DataType::kFp32, {1, 2});
  float yv[2] = {0.25f, -4.f};
  std::memcpy(y.mutable_data(), yv, sizeof(yv));
  HostTensor h = HostTensor::Allocate(DataType::kFp16, {1});
  uint16_t hv = 0x3E00;  // 1.5
  std::memcpy(h.mutable_data(), &hv, sizeof(hv));

  InferRequest request;
  request.id = "abc";
  request.outputs = {{1, false}, {0, false}};
  HttpPayload json_payload = EncodeInferResponse("m", "1", request, sig, {y, h});
  EXPECT_EQ(json_payload.content_type, "application/json");
  EXPECT_FALSE(json_payload.json_length);
  json doc = json::parse(json_payload.body);
  EXPECT_EQ(doc["id"], "abc");
  EXPECT_EQ(doc["model_name"], "m");
  EXPECT_EQ(doc["outputs"][0]["name"], "h");
  EXPECT_EQ(doc["outputs"][0]["data"][0], 1.5);
  EXPECT_EQ(doc["outputs"][1]["shape"], json({1, 2}));
  EXPECT_EQ(doc["outputs"][1]["data"], json({0.25, -4.0}));

  request.outputs = {{0, true}, {1, false}};
  HttpPayload binary = EncodeInferResponse("m", "1", request, sig, {y, h});
  EXPECT_EQ(binary.content_type, "application/octet-stream");
  ASSERT_TRUE(binary.json_length);
  json header = json::parse(binary.body.substr(0, *binary.json_length));
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 8);
  ASSERT_EQ(binary.body.size(), *binary.json_length + 8);
  EXPECT_EQ(std::memcmp(binary.body.data() + *binary.json_length, yv, 8), 0);
}

TEST(Protocol, ErrorJsonSurvivesInvalidUtf8) {
  json doc = json::parse(ErrorJson("bad \xff\xfe bytes"));
  EXPECT_TRUE(doc["error"].is_string());
}

}  // namespace
}  // namespace trtaoti

namespace trtaoti {
namespace {

TEST(ModelConfig, TritonShapeOfWhatIsServed) {
  const ServingConfig serving{.batch_min = 2,
                              .batch_opt = 4,
                              .batch_max = 8,
                              .max_queue_delay_us = 500,
                              .max_queue_size = 1024,
                              .runners = 3,
                              .gpu = true};
  const nlohmann::json config = ModelConfigJson(TestSignature(), "served-name", serving);
  EXPECT_EQ(config["name"], "served-name");
  EXPECT_EQ(config["max_batch_size"], 8);
  // Per-row dims (no batch dimension) and Triton's type names.
  EXPECT_EQ(config["input"][0], (nlohmann::json{{"name", "x"}, {"data_type", "TYPE_FP32"}, {"dims", {3}}}));
  EXPECT_EQ(config["input"][1]["data_type"], "TYPE_INT64");
  EXPECT_EQ(config["output"][1],
            (nlohmann::json{{"name", "h"}, {"data_type", "TYPE_FP16"}, {"dims", nlohmann::json::array()}}));
  EXPECT_EQ(config["dynamic_batching"]["preferred_batch_size"], (nlohmann::json{4, 8}));
  EXPECT_EQ(config["dynamic_batching"]["max_queue_delay_microseconds"], 500);
  EXPECT_EQ(config["instance_group"][0]["kind"], "KIND_GPU");
  EXPECT_EQ(config["instance_group"][0]["count"], 3);
  // One priority level and Triton's queue defaults: the fields Triton leaves out.
  EXPECT_FALSE(config["dynamic_batching"].contains("priority_levels"));
  EXPECT_EQ(config["dynamic_batching"]["default_queue_policy"], (nlohmann::json{{"max_queue_size", 1024}}));
}

TEST(ModelConfig, ReportsTheQueuePolicyInTritonsFields) {
  const ServingConfig serving{.priority_levels = 3,
                              .default_priority_level = 2,
                              .max_queue_size = 16,
                              .default_timeout_us = 2000,
                              .timeout_action_delay = true,
                              .allow_timeout_override = true};
  const nlohmann::json batching = ModelConfigJson(TestSignature(), "m", serving)["dynamic_batching"];
  EXPECT_EQ(batching["priority_levels"], 3);
  EXPECT_EQ(batching["default_priority_level"], 2);
  EXPECT_EQ(batching["default_queue_policy"], (nlohmann::json{{"max_queue_size", 16},
                                                              {"default_timeout_microseconds", 2000},
                                                              {"timeout_action", "DELAY"},
                                                              {"allow_timeout_override", true}}));
}

TEST(ModelConfig, ValuesBeyondTritonsIntegerTypesAreClamped) {
  // --max-queue-size may exceed Triton's uint32 field; the gRPC message must still parse.
  const ServingConfig serving{.batch_opt = 4, .batch_max = 8, .max_queue_size = 5'000'000'000};
  const nlohmann::json config = ModelConfigJson(TestSignature(), "m", serving);
  EXPECT_EQ(config["dynamic_batching"]["default_queue_policy"]["max_queue_size"], 4294967295LL);
  EXPECT_EQ(config["instance_group"][0]["kind"], "KIND_CPU");
}

}  // namespace
}  // namespace trtaoti
