#include "json_overflow.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <vector>

namespace trtaoti {
namespace {

using nlohmann::json;

// A SAX handler that builds nothing: it follows the path to the current value and
// remembers each input's "name" and "datatype" strings, so that at the parse error it
// can tell where the parser stopped. Used only after a failed parse (off the hot path).
class OverflowLocator : public nlohmann::json_sax<json> {
 public:
  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool string(string_t& value) override {
    if (InputObject() && (path_.back().key == "name" || path_.back().key == "datatype")) {
      auto& input = inputs_[path_[1].index];
      (path_.back().key == "name" ? input.name : input.datatype) = value;
    }
    return Value();
  }
  bool start_object(std::size_t) override { return Open(false); }
  bool start_array(std::size_t) override { return Open(true); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }
  bool key(string_t& key) override {
    path_.back().key = key;
    return true;
  }
  bool parse_error(std::size_t, const std::string& last_token, const nlohmann::detail::exception&) override {
    token_ = last_token;
    return false;
  }

  std::string Message() const {
    // path_ ends at the container that holds the number: its next element in an array.
    std::string pointer;
    for (size_t i = 0; i < path_.size(); ++i) {
      const Frame& frame = path_[i];
      const size_t index = i + 1 == path_.size() ? frame.next : frame.index;
      pointer += "/" + (frame.array ? std::to_string(index) : frame.key);
    }
    const bool in_data = path_.size() >= 4 && IsInputsArray(path_[0], path_[1]) && path_[2].key == "data";
    if (!in_data) return "number " + token_ + " at " + pointer + " is out of range";
    const Input& input = inputs_.at(path_[1].index);
    std::string message = input.name ? "input '" + *input.name + "'" : "inputs[" + std::to_string(path_[1].index) + "]";
    message += ": element " + token_ + " is out of range";
    if (input.datatype) message += " for " + *input.datatype;
    return message;
  }

 private:
  struct Frame {
    bool array = false;
    std::string key;   // objects: the key of the current member
    size_t index = 0;  // arrays: the index of the current element
    size_t next = 0;   // arrays: the index of the next one
  };
  struct Input {
    std::optional<std::string> name, datatype;
  };

  static bool IsInputsArray(const Frame& root, const Frame& inputs) {
    return !root.array && root.key == "inputs" && inputs.array;
  }
  // Directly inside inputs[i], the object of one input.
  bool InputObject() const { return path_.size() == 3 && IsInputsArray(path_[0], path_[1]) && !path_[2].array; }
  bool Value() {
    if (!path_.empty() && path_.back().array) path_.back().index = path_.back().next++;
    return true;
  }
  bool Open(bool array) {
    Value();
    if (path_.size() == 2 && IsInputsArray(path_[0], path_[1])) inputs_.resize(path_[1].index + 1);
    path_.emplace_back().array = array;
    return true;
  }
  bool Close() {
    path_.pop_back();
    return true;
  }

  std::vector<Frame> path_;
  std::vector<Input> inputs_;
  std::string token_;
};

}  // namespace

std::string DescribeNumberOverflow(std::string_view text) {
  OverflowLocator locator;
  json::sax_parse(text.begin(), text.end(), &locator);
  return locator.Message();
}

}  // namespace trtaoti
