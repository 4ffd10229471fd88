// The weight stream: one piece that moves a weight version (a safetensors blob) from the
// learner to the coordinator and from the coordinator to the actors, and from actor to
// actor (relays). Learner, coordinator, actors and grpo-bench-weights all use it.
//
// On the wire it is the grpo.v1.Weights service (proto/grpo/v1/weights.proto): a stream
// of WeightChunk messages. The bytes are not copied into messages: a chunk is sent as
// one small header slice plus a slice that points into the sender's blob, and a
// receiver parses the header and copies the data straight into its own blob at the
// chunk's offset, folding the CRC-32 in while the bytes are in cache. So a hop costs
// the kernel's copies plus one copy into the destination, and the CRC is computed once
// (by the learner) and checked as the bytes arrive on every other hop.
//
// Relays: a WeightBlob is filled in order and readers may stream any prefix that has
// arrived, so an actor serves a version to its peers while it is still receiving it.
// The coordinator plans who fetches from whom (PlanWeightFetch); a fetcher whose source
// dies or stalls asks again, naming the failed source, and resumes at its offset.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "grpo/v1/weights.pb.h"

namespace grpo::rpc {

// Keeps gRPC's read buffers (up to a few MB each) in the heap and the heap mapped:
// glibc's defaults hand buffers over 128 KB back to the kernel on free, so every
// buffer of a 1 GB stream was a fresh mapping whose pages the kernel zeroed and faulted
// in again (180000 faults per version fetched; 0.75 s against 0.45 s without). The
// threshold is glibc's ceiling (32 MB), so the tensors of a training step stay in the
// heap too. Called once at start by ServiceMain.
void KeepStreamBuffers();

inline constexpr uint32_t kDefaultWeightChunk = 1u << 20;
inline constexpr uint32_t kMaxWeightChunk = 16u << 20;
inline constexpr uint64_t kMaxWeightBlob = uint64_t{16} << 30;

struct WeightHeader {
  uint64_t version = 0;
  uint64_t step = 0;
  uint64_t total_size = 0;  // of the bytes this blob holds (a delta's: the patch's)
  uint32_t crc32 = 0;       // of those bytes
  // A delta version (core/rpc/weight_delta.h): the bytes are a patch against the full
  // version base_version, whose bytes have CRC base_crc32; applied, they give the full
  // version's result_size bytes with CRC result_crc32 (the CRC actors echo).
  bool delta = false;
  uint64_t base_version = 0;
  uint32_t base_crc32 = 0;
  uint64_t result_size = 0;
  uint32_t result_crc32 = 0;

  // The full version's size and CRC, whichever kind this is.
  uint64_t full_size() const { return delta ? result_size : total_size; }
  uint32_t full_crc32() const { return delta ? result_crc32 : crc32; }
  bool operator==(const WeightHeader& o) const {
    return version == o.version && step == o.step && total_size == o.total_size && crc32 == o.crc32 &&
           delta == o.delta && base_version == o.base_version && base_crc32 == o.base_crc32 &&
           result_size == o.result_size && result_crc32 == o.result_crc32;
  }
};

// One version's bytes: complete (made from bytes in memory) or being filled in order by
// one receiver while any number of readers stream the part that has arrived.
class WeightBlob {
 public:
  ~WeightBlob();
  WeightBlob(const WeightBlob&) = delete;
  WeightBlob& operator=(const WeightBlob&) = delete;

  // A complete blob over `bytes` (kept, not copied); computes the CRC.
  static std::shared_ptr<WeightBlob> FromBytes(std::string bytes, uint64_t version, uint64_t step);
  // The same with the other header fields (a delta's) from `h`; total_size and crc32 are
  // those of `bytes`.
  static std::shared_ptr<WeightBlob> FromBytes(std::string bytes, WeightHeader h);
  // An empty blob to receive `h` into. Its memory is taken from `reuse` when that is the
  // last reference to a blob at least as large (an actor receives every version into
  // the same pages: no page faults after the first), else freshly mapped.
  static absl::StatusOr<std::shared_ptr<WeightBlob>> ForReceiving(const WeightHeader& h,
                                                                  std::shared_ptr<WeightBlob> reuse = nullptr);

  const WeightHeader& header() const { return header_; }
  uint64_t version() const { return header_.version; }
  // All the bytes; meaningful once complete().
  std::string_view bytes() const { return {data_, header_.total_size}; }
  uint64_t filled() const;
  // Every byte arrived and the CRC matched.
  bool complete() const;
  // The receiver gave up on it (Abandon) or the CRC did not match.
  bool failed() const;

  // Receiver side: the next `n` bytes, at offset filled(), read by `read(dest)` (which
  // fills exactly n bytes or returns false). At the last byte the CRC is checked:
  // DATA_LOSS when it does not match (the blob is then failed).
  absl::Status Append(uint64_t n, const std::function<bool(char* dest)>& read);
  absl::Status Append(std::string_view bytes);
  // The receiver gave up: readers waiting for more get `why` (ABORTED).
  void Abandon(const std::string& why);

  // Reader side: waits until more than `offset` bytes are in (returns how many), the blob
  // is complete (returns total_size), or it failed (ABORTED with the reason). Gives up
  // after `stall` without progress (ABORTED) or when `cancelled` says so (CANCELLED); it
  // looks at `cancelled` every 100 ms.
  absl::StatusOr<uint64_t> WaitBeyond(uint64_t offset, absl::Duration stall,
                                      const std::function<bool()>& cancelled = nullptr) const;

  // A pointer into the bytes (for zero-copy sends); valid while the blob lives.
  const char* data() const { return data_; }

 private:
  WeightBlob() = default;

  WeightHeader header_;
  std::string owned_;        // FromBytes: the bytes
  char* data_ = nullptr;     // owned_.data() or the mapping
  void* map_ = nullptr;      // ForReceiving: an anonymous mapping of map_size_ bytes
  size_t map_size_ = 0;
  mutable absl::Mutex mu_;
  uint64_t filled_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t running_crc_ = 0;  // the receiver's alone
  bool complete_ ABSL_GUARDED_BY(mu_) = false;
  std::string failed_ ABSL_GUARDED_BY(mu_);
};

// The grpo.v1.Weights service over two hooks: `lookup` finds the blob a Fetch asks for
// (-1: newest; with `delta`, the version's patch; NOT_FOUND or UNAVAILABLE when there is
// none) and `accept` takes a
// complete, checked blob from Publish (nullptr: Publish is UNIMPLEMENTED, as on actors).
// `served` (optional) is told the bytes each Fetch sent.
class WeightService final : public grpc::Service {
 public:
  using Lookup = std::function<absl::StatusOr<std::shared_ptr<const WeightBlob>>(int64_t version, bool delta)>;
  using Accept = std::function<grpc::Status(std::shared_ptr<WeightBlob> blob, v1::PublishWeightsResponse* resp)>;
  WeightService(Lookup lookup, Accept accept, std::function<void(uint64_t bytes)> served = nullptr);

 private:
  grpc::Status Fetch(grpc::ServerContext* ctx, const grpc::ByteBuffer* request, grpc::ServerWriter<grpc::ByteBuffer>* writer);
  grpc::Status Publish(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader, grpc::ByteBuffer* response);

  Lookup lookup_;
  Accept accept_;
  std::function<void(uint64_t)> served_;
};

// Client side of Weights/Publish: streams a complete blob to `channel`.
absl::StatusOr<v1::PublishWeightsResponse> PublishWeightStream(const std::shared_ptr<grpc::Channel>& channel,
                                                               grpc::ClientContext* ctx,
                                                               const std::shared_ptr<const WeightBlob>& blob,
                                                               uint32_t chunk = kDefaultWeightChunk);
// Client side of Weights/Fetch: receives `version` (its patch with `delta`) into *blob
// from its filled() offset (creating it from the first chunk when null; else the kind is
// the blob's). Each chunk must carry the blob's header (version, size, CRC, and a
// patch's base and result) and start where the last ended: INVALID_ARGUMENT names what
// was wrong, DATA_LOSS when the CRC does not match.
absl::Status FetchWeightStream(const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* ctx,
                               int64_t version, std::shared_ptr<WeightBlob>* blob,
                               uint32_t chunk = kDefaultWeightChunk, bool delta = false);

// What an actor does on a new version: asks the coordinator where to fetch it from
// (PlanWeightFetch, naming the full version it holds), fetches from that peer or from
// the coordinator, and around a source that fails: it asks again naming it and resumes
// at its offset. When the plan is a patch against the held version, the patch is
// fetched (relayed like a full version), applied into the pages of the version before
// (ApplyDeltaBlob: base and result CRCs checked), and a patch that does not apply is
// refused and the version fetched in full. The bytes being received (full or patch)
// are held (Held) from the first byte on, for this process's relay to serve to peers.
class WeightFetcher {
 public:
  struct Options {
    std::string member_id;      // as registered with the coordinator
    std::string relay_address;  // where this process serves Weights/Fetch; empty: no relay
    uint32_t chunk_bytes = kDefaultWeightChunk;
    absl::Duration call_timeout = absl::Seconds(300);  // one fetch from one source
    int max_sources = 8;  // sources tried for one version before giving up
    std::function<bool()> stopping;  // optional: true once the caller shuts down
    // Take a version as a patch against the full version held, when the coordinator
    // has one (core/rpc/weight_delta.h); false: always the full bytes.
    bool deltas = true;
  };
  struct Stats {
    uint64_t bytes_from_peers = 0, bytes_from_coordinator = 0, source_failures = 0;
    uint64_t versions_full = 0, versions_delta = 0;  // versions fetched, by kind
    uint64_t patches_refused = 0;  // patches that did not apply (then fetched in full)
  };
  // `coordinator`: the channel to the coordinator (which also serves Weights/Fetch).
  // `make_channel`: a channel to a peer's address (rpc::MakeChannel when null).
  // `track`/`untrack`: register each call's context for cancellation (optional).
  WeightFetcher(std::shared_ptr<grpc::Channel> coordinator,
                std::function<std::shared_ptr<grpc::Channel>(const std::string&)> make_channel = nullptr);

  absl::StatusOr<std::shared_ptr<WeightBlob>> Fetch(int64_t version, const Options& options,
                                                    const std::function<std::shared_ptr<grpc::ClientContext>(absl::Duration)>& new_context,
                                                    const std::function<void(const std::shared_ptr<grpc::ClientContext>&)>& forget);
  // The blob held for `version` (-1: the newest held), complete or still arriving; for
  // the relay's Fetch handler (with `delta`: the version's patch, as this process
  // receives it). NOT_FOUND when not held. A peer told to fetch from this process may
  // ask before this process has heard back from the coordinator itself, so while a
  // fetch is being planned this waits for it (at most 5 s).
  absl::StatusOr<std::shared_ptr<const WeightBlob>> Held(int64_t version, bool delta = false) const;
  Stats stats() const;

 private:
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address);

  std::shared_ptr<grpc::Channel> coordinator_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  std::function<std::shared_ptr<grpc::Channel>(const std::string&)> make_channel_;
  mutable absl::Mutex mu_;
  // The newest full version (complete, or arriving when fetched in full); the patch
  // being received for the next one (applied to held_ once complete); and the pages of
  // the version before held_, which a patch's result is written into.
  std::shared_ptr<WeightBlob> held_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<WeightBlob> held_patch_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<WeightBlob> spare_ ABSL_GUARDED_BY(mu_);
  bool planning_ ABSL_GUARDED_BY(mu_) = false;  // a Fetch is between its first plan and held_
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace grpo::rpc
