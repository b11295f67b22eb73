// Where a JSON number overflowed a double, for an error that names the input.
#pragma once

#include <string>
#include <string_view>

namespace trtaoti {

// `text` failed to parse with a number overflow (nlohmann's out_of_range 406: valid
// JSON grammar such as 1e999, beyond a double). Parses it again, only to locate that
// number, and returns a client-facing message: the input's name when the number is
// in an input's `data` and its "name" came before it, else its JSON pointer.
std::string DescribeNumberOverflow(std::string_view text);

}  // namespace trtaoti
