// Checks a package file before anything loads it. torch's zip reader (miniz, built
// without its CRC checks) loads whatever bytes a member holds: a damaged .so member
// loads and computes wrong values, or crashes the process. Torch-free.
#pragma once

#include <string>

namespace trtaoti {

// Throws std::runtime_error with a one-line message naming the check that failed:
//  - the file is missing ("does not exist or is not a file");
//  - `expected_sha256` (64 hex digits, any case; empty: not checked) differs from the
//    file's ("sha256 mismatch: expected <hex> got <hex>");
//  - the zip structure is inconsistent ("package is not a valid zip archive: ...");
//  - a member's data does not match its CRC-32 ("crc mismatch in member <name>").
// Reads the whole file (twice with a digest): startup time, once per process.
void VerifyPackage(const std::string& path, const std::string& expected_sha256);

}  // namespace trtaoti
