// See weight_delta.h.
#include "core/rpc/weight_delta.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace grpo::rpc {
namespace {

constexpr size_t kPiece = 1 << 20;  // XOR and (de)compress a megabyte at a time (stays in cache)

// dst[i] = a[i] ^ b[i]; word-wise (the compiler vectorizes it), bytes for the tail.
void Xor(const char* a, const char* b, char* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    x ^= y;
    std::memcpy(dst + i, &x, 8);
  }
  for (; i < n; ++i) dst[i] = static_cast<char>(a[i] ^ b[i]);
}

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

}  // namespace

absl::StatusOr<std::string> MakeWeightPatch(std::string_view base, std::string_view next, int level) {
  if (base.size() != next.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a patch needs versions of one size: ", base.size(), " and ", next.size(), " bytes"));
  }
  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  if (cctx == nullptr) return absl::ResourceExhaustedError("zstd: cannot make a compression context");
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 0);  // the blob's CRCs cover it
  ZSTD_CCtx_setPledgedSrcSize(cctx.get(), base.size());       // the frame carries the size
  std::vector<char> piece(std::min(kPiece, std::max<size_t>(base.size(), 1)));
  std::string out;
  out.resize(std::max<size_t>(ZSTD_CStreamOutSize(), 1 << 16));
  size_t written = 0;
  auto drain = [&](ZSTD_inBuffer* in, ZSTD_EndDirective mode) -> absl::Status {
    for (;;) {
      if (out.size() - written < ZSTD_CStreamOutSize()) out.resize(out.size() * 2);
      ZSTD_outBuffer ob{out.data() + written, out.size() - written, 0};
      const size_t left = ZSTD_compressStream2(cctx.get(), &ob, in, mode);
      if (ZSTD_isError(left)) return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(left)));
      written += ob.pos;
      const bool done = mode == ZSTD_e_end ? left == 0 : in->pos == in->size;
      if (done) return absl::OkStatus();
    }
  };
  for (size_t at = 0; at < base.size(); at += kPiece) {
    const size_t n = std::min(kPiece, base.size() - at);
    Xor(base.data() + at, next.data() + at, piece.data(), n);
    ZSTD_inBuffer in{piece.data(), n, 0};
    if (absl::Status s = drain(&in, ZSTD_e_continue); !s.ok()) return s;
  }
  ZSTD_inBuffer none{nullptr, 0, 0};
  if (absl::Status s = drain(&none, ZSTD_e_end); !s.ok()) return s;
  out.resize(written);
  out.shrink_to_fit();
  return out;
}

absl::Status ApplyWeightPatch(std::string_view base, std::string_view patch, char* dest) {
  const unsigned long long content = ZSTD_getFrameContentSize(patch.data(), patch.size());
  if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::InvalidArgumentError("the weight patch is not a zstd frame with its size");
  }
  if (content != base.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the weight patch decodes to ", content, " bytes, the base version has ", base.size()));
  }
  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (dctx == nullptr) return absl::ResourceExhaustedError("zstd: cannot make a decompression context");
  // A hostile frame cannot ask for more than a 128 MB window (the encoder's level 1 uses 512 KB).
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);
  ZSTD_inBuffer in{patch.data(), patch.size(), 0};
  size_t left = 1;
  // Decode straight into dest a megabyte at a time, then XOR that piece with the base
  // while it is in cache.
  for (size_t at = 0; at < base.size();) {
    const size_t n = std::min(kPiece, base.size() - at);
    ZSTD_outBuffer ob{dest + at, n, 0};
    while (ob.pos < ob.size) {
      const size_t before_in = in.pos, before_out = ob.pos;
      left = ZSTD_decompressStream(dctx.get(), &ob, &in);
      if (ZSTD_isError(left)) {
        return absl::InvalidArgumentError(absl::StrCat("the weight patch is corrupt: zstd: ", ZSTD_getErrorName(left)));
      }
      if (in.pos == before_in && ob.pos == before_out) {
        return absl::InvalidArgumentError(absl::StrCat("the weight patch ends early, at byte ", at + ob.pos));
      }
    }
    Xor(dest + at, base.data() + at, dest + at, n);
    at += n;
  }
  if (left != 0) {
    // The frame's last block (or its end mark) has not been read yet.
    char spare = 0;
    ZSTD_outBuffer ob{&spare, 1, 0};
    left = ZSTD_decompressStream(dctx.get(), &ob, &in);
    if (ZSTD_isError(left) || ob.pos != 0 || left != 0) {
      return absl::InvalidArgumentError("the weight patch decodes to more bytes than its base, or does not end");
    }
  }
  if (in.pos != in.size) {
    return absl::InvalidArgumentError(absl::StrCat("the weight patch has ", in.size - in.pos, " bytes after its frame"));
  }
  return absl::OkStatus();
}

std::shared_ptr<WeightBlob> MakeDeltaBlob(std::string patch, const WeightBlob& base, const WeightBlob& result) {
  WeightHeader h;
  h.version = result.header().version;
  h.step = result.header().step;
  h.delta = true;
  h.base_version = base.header().version;
  h.base_crc32 = base.header().full_crc32();
  h.result_size = result.header().full_size();
  h.result_crc32 = result.header().full_crc32();
  return WeightBlob::FromBytes(std::move(patch), h);
}

absl::StatusOr<std::shared_ptr<WeightBlob>> ApplyDeltaBlob(const WeightBlob& base, const WeightBlob& patch,
                                                           std::shared_ptr<WeightBlob> reuse) {
  const WeightHeader& p = patch.header();
  const WeightHeader& b = base.header();
  if (!p.delta) return absl::InvalidArgumentError(absl::StrCat("weight version ", p.version, " is not a patch"));
  if (!patch.complete() || !base.complete() || b.delta) {
    return absl::FailedPreconditionError("a patch is applied to a complete full version, once it is complete itself");
  }
  if (b.version != p.base_version || b.crc32 != p.base_crc32 || b.total_size != p.result_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the patch for version ", p.version, " is against version ", p.base_version, " (CRC ", p.base_crc32, ", ",
        p.result_size, " bytes), not the held version ", b.version, " (CRC ", b.crc32, ", ", b.total_size, " bytes)"));
  }
  WeightHeader full;
  full.version = p.version;
  full.step = p.step;
  full.total_size = p.result_size;
  full.crc32 = p.result_crc32;
  absl::StatusOr<std::shared_ptr<WeightBlob>> made = WeightBlob::ForReceiving(full, std::move(reuse));
  if (!made.ok()) return made.status();
  absl::Status applied;
  // Append folds the CRC over the result and fails the blob (DATA_LOSS) when it differs.
  absl::Status s = (*made)->Append(full.total_size, [&](char* dest) {
    applied = ApplyWeightPatch(base.bytes(), patch.bytes(), dest);
    return applied.ok();
  });
  if (!applied.ok()) return applied;
  if (!s.ok()) {
    if (absl::IsDataLoss(s)) {
      return absl::DataLossError(absl::StrCat("the patch for version ", p.version, " against version ", p.base_version,
                                              " gave bytes whose CRC is not the version's: refused"));
    }
    return s;
  }
  return made;
}

}  // namespace grpo::rpc
