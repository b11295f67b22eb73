// Torch-free tensor vocabulary shared by the protocol, the batcher and the model.
//
// A HostTensor is a view of contiguous, row-major bytes plus the owner that keeps
// them alive (a request body, a pooled batch buffer, an output at::Tensor). Views
// are cheap to copy and slice, which is how the server avoids copies: a request's
// input points into its HTTP body, a batch output slice points into the model's
// output tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trtaoti {

// KServe V2 datatypes the server can carry (BYTES, i.e. strings, is not a tensor
// dtype an AOTInductor graph takes).
enum class DataType { kBool, kUint8, kInt8, kInt16, kInt32, kInt64, kFp16, kBf16, kFp32, kFp64 };

std::string_view DataTypeName(DataType dtype);
std::optional<DataType> ParseDataType(std::string_view name);
size_t ElementSize(DataType dtype);

using Shape = std::vector<int64_t>;
constexpr int64_t kDynamicDim = -1;

// Number of elements of a fully specified shape (no -1).
int64_t NumElements(const Shape& shape);
std::string ShapeString(const Shape& shape);

struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kFp32;
  Shape shape;  // dim 0 is the batch dimension (-1); other dims may be -1 too
};

class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DataType dtype, Shape shape, std::shared_ptr<const void> owner, const std::byte* data)
      : dtype_(dtype), shape_(std::move(shape)), owner_(std::move(owner)), data_(data) {}

  // A fresh, owned, zero-initialised buffer.
  static HostTensor Allocate(DataType dtype, Shape shape);

  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const std::byte* data() const { return data_; }
  // Only for tensors made by Allocate or another writable owner.
  std::byte* mutable_data() const { return const_cast<std::byte*>(data_); }
  const std::shared_ptr<const void>& owner() const { return owner_; }

  int64_t rows() const { return shape_.empty() ? 0 : shape_[0]; }
  size_t row_bytes() const;
  size_t nbytes() const { return static_cast<size_t>(NumElements(shape_)) * ElementSize(dtype_); }

  // Rows [begin, begin + count) sharing this tensor's storage: no copy.
  HostTensor Rows(int64_t begin, int64_t count) const;

 private:
  DataType dtype_ = DataType::kFp32;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
};

}  // namespace trtaoti
