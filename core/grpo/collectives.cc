#include "core/grpo/collectives.h"

#include <cstring>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

#ifdef GRPO_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace grpo {

#ifdef GRPO_HAVE_NCCL
namespace {

// LibTorch runs its kernels on the legacy default stream unless told otherwise; NCCL
// work queued there is ordered after them, and synchronised before returning.
constexpr cudaStream_t kStream = nullptr;

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(ncclComm_t comm, int device, std::chrono::milliseconds timeout)
      : comm_(comm), device_(device), timeout_(timeout) {}
  ~NcclCollectives() override {
    if (aborted_) return;
    ncclCommDestroy(comm_);
  }

  void AllReduceSum(at::Tensor& t) override {
    TORCH_CHECK(!aborted_, "NCCL communicator was aborted");
    Check(t);
    Ok(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), Type(t), ncclSum, comm_, kStream),
       "ncclAllReduce");
    Sync();
  }
  void Broadcast(at::Tensor& t, int root) override {
    TORCH_CHECK(!aborted_, "NCCL communicator was aborted");
    Check(t);
    Ok(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), Type(t), root, comm_, kStream),
       "ncclBroadcast");
    Sync();
  }

 private:
  static void Check(const at::Tensor& t) {
    TORCH_CHECK(t.is_cuda() && t.is_contiguous(), "NCCL collectives need a contiguous CUDA tensor");
  }
  static ncclDataType_t Type(const at::Tensor& t) {
    switch (t.scalar_type()) {
      case at::kFloat:
        return ncclFloat32;
      case at::kDouble:
        return ncclFloat64;
      case at::kBFloat16:
        return ncclBfloat16;
      default:
        TORCH_CHECK(false, "NCCL collectives: unsupported dtype ", t.scalar_type());
    }
  }
  static void Ok(ncclResult_t r, const char* what) {
    TORCH_CHECK(r == ncclSuccess, what, ": ", ncclGetErrorString(r));
  }
  // Waits for the queued collective, polling so that a peer that died or hangs fails
  // this rank after the timeout (and aborts the communicator) instead of blocking it.
  void Sync() {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      cudaError_t e = cudaStreamQuery(kStream);
      if (e == cudaSuccess) return;
      TORCH_CHECK(e == cudaErrorNotReady, "CUDA device ", device_, ": ", cudaGetErrorString(e));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        Abort();
        TORCH_CHECK(false, "NCCL: ", ncclGetErrorString(async));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        Abort();
        TORCH_CHECK(false, "NCCL collective did not finish within ", timeout_.count(), " ms (a peer is gone or hung)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  void Abort() {
    if (!aborted_) ncclCommAbort(comm_);
    aborted_ = true;
  }

  ncclComm_t comm_;
  int device_;
  std::chrono::milliseconds timeout_;
  bool aborted_ = false;
};

}  // namespace

bool HaveNccl() { return true; }

absl::StatusOr<std::unique_ptr<DeviceCollectives>> MakeNcclCollectives(c10d::Store& store, int rank, int size,
                                                                       int device, std::chrono::milliseconds timeout) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || device >= count) {
    return absl::FailedPreconditionError(absl::StrCat("NCCL: CUDA device ", device, " is not available (",
                                                      e == cudaSuccess ? absl::StrCat(count, " device(s)")
                                                                       : cudaGetErrorString(e),
                                                      ")"));
  }
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess) {
    return absl::FailedPreconditionError(absl::StrCat("NCCL: cudaSetDevice(", device, "): ", cudaGetErrorString(e)));
  }
  ncclUniqueId id;
  const std::string key = "grpo/nccl_unique_id";
  try {
    if (rank == 0) {
      if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
        return absl::InternalError(absl::StrCat("ncclGetUniqueId: ", ncclGetErrorString(r)));
      }
      const auto* p = reinterpret_cast<const uint8_t*>(&id);
      store.set(key, std::vector<uint8_t>(p, p + sizeof(id)));
    } else {
      std::vector<uint8_t> bytes = store.get(key);  // waits for rank 0
      if (bytes.size() != sizeof(id)) return absl::DataLossError("NCCL unique id from rank 0 has the wrong size");
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("exchanging the NCCL id: ", e.what()));
  }
  ncclComm_t comm;
  if (ncclResult_t r = ncclCommInitRank(&comm, size, id, rank); r != ncclSuccess) {
    return absl::InternalError(absl::StrCat("ncclCommInitRank (rank ", rank, " of ", size, "): ", ncclGetErrorString(r)));
  }
  return std::unique_ptr<DeviceCollectives>(new NcclCollectives(comm, device, timeout));
}

#else

bool HaveNccl() { return false; }

absl::StatusOr<std::unique_ptr<DeviceCollectives>> MakeNcclCollectives(c10d::Store&, int, int, int,
                                                                       std::chrono::milliseconds) {
  return absl::UnimplementedError("this build has no NCCL (nccl.h, libnccl and libcudart were not found at configure time)");
}

#endif

}  // namespace grpo
