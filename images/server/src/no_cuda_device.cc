// Linked instead of cuda_device.cc when the build found no CUDA toolkit.
#include <stdexcept>

#include "device.h"

namespace trtaoti {

std::unique_ptr<Device> MakeCudaDevice(int) {
  throw std::runtime_error(
      "this trtaoti-server was built without CUDA support (no CUDA toolkit at build time); rebuild it where "
      "nvcc and the CUDA headers are installed to serve on a GPU");
}

}  // namespace trtaoti
