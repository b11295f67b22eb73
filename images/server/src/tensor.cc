#include "tensor.h"

#include <array>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace trtaoti {
namespace {

struct DataTypeInfo {
  DataType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DataTypeInfo, 10> kDataTypes = {{
    {DataType::kBool, "BOOL", 1},
    {DataType::kUint8, "UINT8", 1},
    {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},
    {DataType::kFp16, "FP16", 2},
    {DataType::kBf16, "BF16", 2},
    {DataType::kFp32, "FP32", 4},
    {DataType::kFp64, "FP64", 8},
}};

const DataTypeInfo& Info(DataType dtype) { return kDataTypes[static_cast<size_t>(dtype)]; }

}  // namespace

std::string_view DataTypeName(DataType dtype) { return Info(dtype).name; }
size_t ElementSize(DataType dtype) { return Info(dtype).size; }

std::optional<DataType> ParseDataType(std::string_view name) {
  for (const auto& info : kDataTypes) {
    if (info.name == name) return info.dtype;
  }
  return std::nullopt;
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

HostTensor HostTensor::Allocate(DataType dtype, Shape shape) {
  size_t nbytes = static_cast<size_t>(NumElements(shape)) * ElementSize(dtype);
  // make_shared<T[]> value-initialises; one allocation, no separate deleter.
  std::shared_ptr<std::byte[]> buffer = std::make_shared<std::byte[]>(nbytes ? nbytes : 1);
  const std::byte* data = buffer.get();
  return HostTensor(dtype, std::move(shape), std::shared_ptr<const void>(buffer, data), data);
}

size_t HostTensor::row_bytes() const {
  if (shape_.empty()) return ElementSize(dtype_);
  size_t n = ElementSize(dtype_);
  for (size_t i = 1; i < shape_.size(); ++i) n *= static_cast<size_t>(shape_[i]);
  return n;
}

HostTensor HostTensor::Rows(int64_t begin, int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > rows()) {
    throw std::out_of_range("row slice outside the tensor");
  }
  Shape shape = shape_;
  shape[0] = count;
  return HostTensor(dtype_, std::move(shape), owner_, data_ + static_cast<size_t>(begin) * row_bytes());
}

}  // namespace trtaoti
