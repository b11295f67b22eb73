#include "package_check.h"

#include <openssl/evp.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

namespace trtaoti {
namespace {

constexpr size_t kChunk = 1 << 20;

std::string Sha256Hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read model package '" + path + "'");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL cannot compute a sha256");
  }
  std::vector<char> buffer(kChunk);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("cannot read model package '" + path + "' to the end");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  std::string hex(2 * length, '0');
  for (unsigned int i = 0; i < length; ++i) std::snprintf(&hex[2 * i], 3, "%02x", digest[i]);
  return hex;
}

std::string ZipErrorText(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = zip_error_strerror(&error);
  zip_error_fini(&error);
  return text;
}

// ZIP_CHECKCONS: libzip cross-checks the central directory against each local header.
// Reading a member to its end makes libzip compare the data's CRC-32 with the recorded one.
void CheckZip(const std::string& path) {
  int open_error = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> archive(
      zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &open_error), zip_discard);
  if (!archive) throw std::runtime_error("package is not a valid zip archive: " + ZipErrorText(open_error));
  const zip_int64_t members = zip_get_num_entries(archive.get(), 0);
  std::vector<char> buffer(kChunk);
  for (zip_int64_t i = 0; i < members; ++i) {
    const char* raw_name = zip_get_name(archive.get(), i, 0);
    const std::string name = raw_name ? raw_name : "number " + std::to_string(i);
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(zip_fopen_index(archive.get(), i, 0), zip_fclose);
    if (!file) {
      throw std::runtime_error("cannot open member " + name + " of the package: " + zip_strerror(archive.get()));
    }
    zip_int64_t read = 0;
    while ((read = zip_fread(file.get(), buffer.data(), buffer.size())) > 0) {
    }
    if (read < 0) {
      zip_error_t* error = zip_file_get_error(file.get());
      if (zip_error_code_zip(error) == ZIP_ER_CRC) throw std::runtime_error("crc mismatch in member " + name);
      throw std::runtime_error("cannot read member " + name + " of the package: " + zip_error_strerror(error));
    }
  }
}

}  // namespace

void VerifyPackage(const std::string& path, const std::string& expected_sha256) {
  if (!std::filesystem::is_regular_file(path)) {
    throw std::runtime_error("model package '" + path + "' does not exist or is not a file");
  }
  if (!expected_sha256.empty()) {
    std::string expected = expected_sha256;
    std::transform(expected.begin(), expected.end(), expected.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string actual = Sha256Hex(path);
    if (actual != expected) throw std::runtime_error("sha256 mismatch: expected " + expected + " got " + actual);
  }
  CheckZip(path);
}

}  // namespace trtaoti
