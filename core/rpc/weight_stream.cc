#include "core/rpc/weight_stream.h"

#include <malloc.h>
#include <sys/mman.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/sync_stream.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/rpc/rpc.h"
#include "core/rpc/weight_delta.h"

namespace grpo::rpc {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using google::protobuf::internal::WireFormatLite;

// The service is registered by hand rather than through the generated code because the
// generated code would parse every chunk into a protobuf string (a copy) and serialize
// every send from one (another); grpc::ByteBuffer messages skip both. The handler and
// reader/writer factories are the ones generated code itself instantiates.
constexpr char kPublishMethod[] = "/grpo.v1.Weights/Publish";
constexpr char kFetchMethod[] = "/grpo.v1.Weights/Fetch";

// ---- WeightChunk encoding: a small header slice, then a slice pointing into the blob.

void UnrefBlob(void* p) { delete static_cast<std::shared_ptr<const WeightBlob>*>(p); }

grpc::ByteBuffer EncodeChunk(const std::shared_ptr<const WeightBlob>& blob, uint64_t offset, size_t n) {
  v1::WeightChunk h;
  h.set_version(blob->header().version);
  h.set_step(blob->header().step);
  h.set_offset(offset);
  h.set_total_size(blob->header().total_size);
  h.set_crc32(blob->header().crc32);
  if (blob->header().delta) {
    h.set_delta(true);
    h.set_base_version(blob->header().base_version);
    h.set_base_crc32(blob->header().base_crc32);
    h.set_result_size(blob->header().result_size);
    h.set_result_crc32(blob->header().result_crc32);
  }
  std::string head = h.SerializeAsString();  // data is empty, so not in it
  uint8_t tag[16];
  uint8_t* end = WireFormatLite::WriteTagToArray(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, tag);
  end = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(n), end);
  head.append(reinterpret_cast<const char*>(tag), static_cast<size_t>(end - tag));
  grpc::Slice slices[2] = {grpc::Slice(head), grpc::Slice()};
  if (n == 0) return grpc::ByteBuffer(slices, 1);
  slices[1] = grpc::Slice(const_cast<char*>(blob->data() + offset), n, &UnrefBlob,
                          new std::shared_ptr<const WeightBlob>(blob));
  return grpc::ByteBuffer(slices, 2);
}

struct ChunkHeader {
  WeightHeader blob;
  uint64_t offset = 0;
  int data_fields = 0;
  uint32_t data_len = 0;
};

// Pass 1 over a received chunk: every field but the data, which is skipped. Fields may
// come in any order (protobuf writers put data before total_size and crc32).
absl::Status ScanChunk(grpc::ByteBuffer* bb, ChunkHeader* h) {
  grpc::ProtoBufferReader r(bb);
  CodedInputStream in(&r);
  in.SetTotalBytesLimit(std::numeric_limits<int>::max());
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto wire = WireFormatLite::GetTagWireType(tag);
    bool ok = true;
    if (field == 3 && wire == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      ok = in.ReadVarint32(&h->data_len) && in.Skip(static_cast<int>(h->data_len));
      ++h->data_fields;
    } else if (wire == WireFormatLite::WIRETYPE_VARINT && field >= 1 && field <= 11 && field != 3) {
      uint64_t v = 0;
      ok = in.ReadVarint64(&v);
      WeightHeader& b = h->blob;
      switch (field) {
        case 1: b.version = v; break;
        case 2: h->offset = v; break;
        case 4: b.total_size = v; break;
        case 5: b.crc32 = static_cast<uint32_t>(v); break;
        case 6: b.step = v; break;
        case 7: b.delta = v != 0; break;
        case 8: b.base_version = v; break;
        case 9: b.base_crc32 = static_cast<uint32_t>(v); break;
        case 10: b.result_size = v; break;
        case 11: b.result_crc32 = static_cast<uint32_t>(v); break;
      }
    } else {
      ok = WireFormatLite::SkipField(&in, tag);
    }
    if (!ok) return absl::InvalidArgumentError("malformed WeightChunk message");
  }
  if (!in.ConsumedEntireMessage()) return absl::InvalidArgumentError("malformed WeightChunk message");
  if (h->data_fields > 1) return absl::InvalidArgumentError("WeightChunk with more than one data field");
  return absl::OkStatus();
}

// Pass 2: copies the data field into dest (h.data_len bytes).
bool CopyChunkData(grpc::ByteBuffer* bb, char* dest) {
  grpc::ProtoBufferReader r(bb);
  CodedInputStream in(&r);
  in.SetTotalBytesLimit(std::numeric_limits<int>::max());
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return false;
    if (WireFormatLite::GetTagFieldNumber(tag) == 3 &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t len = 0;
      return in.ReadVarint32(&len) && in.ReadRaw(dest, static_cast<int>(len));
    }
    if (!WireFormatLite::SkipField(&in, tag)) return false;
  }
}

grpc::ByteBuffer Serialize(const google::protobuf::MessageLite& m) {
  grpc::Slice s(m.SerializeAsString());
  return grpc::ByteBuffer(&s, 1);
}

bool Parse(grpc::ByteBuffer* bb, google::protobuf::MessageLite* m) {
  grpc::ProtoBufferReader r(bb);
  return m->ParseFromZeroCopyStream(&r);
}

}  // namespace

void KeepStreamBuffers() {
  // 32 MB is the most glibc accepts, and the ceiling its own sliding threshold climbs
  // to. Setting any threshold stops that sliding, so a lower one (8 MB here until #21's
  // follow-up) sent every 8-32 MB tensor of a learner step (logits, attention scores,
  // MLP activations of a whole minibatch) to a fresh mapping, zeroed and faulted in on
  // every use: the demo's learner step took 2.7 s instead of 1.8 s.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

// ---- WeightBlob

WeightBlob::~WeightBlob() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

std::shared_ptr<WeightBlob> WeightBlob::FromBytes(std::string bytes, uint64_t version, uint64_t step) {
  WeightHeader h;
  h.version = version;
  h.step = step;
  return FromBytes(std::move(bytes), h);
}

std::shared_ptr<WeightBlob> WeightBlob::FromBytes(std::string bytes, WeightHeader h) {
  std::shared_ptr<WeightBlob> b(new WeightBlob());
  h.total_size = bytes.size();
  h.crc32 = Crc32(bytes);
  b->header_ = h;
  b->owned_ = std::move(bytes);
  b->data_ = b->owned_.data();
  absl::MutexLock l(&b->mu_);
  b->filled_ = b->header_.total_size;
  b->complete_ = true;
  return b;
}

absl::StatusOr<std::shared_ptr<WeightBlob>> WeightBlob::ForReceiving(const WeightHeader& h,
                                                                     std::shared_ptr<WeightBlob> reuse) {
  if (h.total_size > kMaxWeightBlob) {
    return absl::InvalidArgumentError(absl::StrCat("weight blob of ", h.total_size, " bytes is larger than 16 GiB"));
  }
  std::shared_ptr<WeightBlob> b(new WeightBlob());
  b->header_ = h;
  if (reuse != nullptr && reuse.use_count() == 1 && reuse->map_ != nullptr && reuse->map_size_ >= h.total_size) {
    // use_count is a relaxed load: order the last reader's reads before our writes.
    std::atomic_thread_fence(std::memory_order_acquire);
    std::swap(b->map_, reuse->map_);
    std::swap(b->map_size_, reuse->map_size_);
  } else if (h.total_size > 0) {
    // Plain pages: asking for huge ones (MADV_HUGEPAGE) made the first 1 GB fetch 3.7x
    // slower here (the kernel compacts memory to find them); later versions reuse these.
    const size_t size = h.total_size;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return absl::ResourceExhaustedError(absl::StrCat("cannot map ", size, " bytes for weight version ", h.version));
    }
    b->map_ = p;
    b->map_size_ = size;
  }
  b->data_ = b->map_ != nullptr ? static_cast<char*>(b->map_) : b->owned_.data();
  if (h.total_size == 0) {
    if (Crc32("") != h.crc32) return absl::DataLossError("an empty weight blob with a non-empty CRC");
    absl::MutexLock l(&b->mu_);
    b->complete_ = true;
  }
  return b;
}

uint64_t WeightBlob::filled() const {
  absl::MutexLock l(&mu_);
  return filled_;
}

bool WeightBlob::failed() const {
  absl::MutexLock l(&mu_);
  return !failed_.empty();
}

bool WeightBlob::complete() const {
  absl::MutexLock l(&mu_);
  return complete_;
}

absl::Status WeightBlob::Append(uint64_t n, const std::function<bool(char*)>& read) {
  uint64_t at;
  {
    absl::MutexLock l(&mu_);
    if (!failed_.empty()) return absl::AbortedError(failed_);
    at = filled_;
  }
  if (n > header_.total_size - at) {
    return absl::InvalidArgumentError(absl::StrCat("weight chunks exceed total_size ", header_.total_size));
  }
  if (n == 0) return absl::OkStatus();
  // Only the one receiver writes; readers see bytes below filled_ only.
  if (!read(data_ + at)) return absl::InvalidArgumentError("malformed WeightChunk data");
  running_crc_ = Crc32(std::string_view(data_ + at, n), running_crc_);
  absl::MutexLock l(&mu_);
  filled_ = at + n;
  if (filled_ == header_.total_size) {
    if (running_crc_ != header_.crc32) {
      failed_ = absl::StrCat("weights of version ", header_.version, " arrived corrupt (CRC mismatch)");
      return absl::DataLossError(failed_);
    }
    complete_ = true;
  }
  return absl::OkStatus();
}

absl::Status WeightBlob::Append(std::string_view bytes) {
  return Append(bytes.size(), [&](char* dest) {
    std::memcpy(dest, bytes.data(), bytes.size());
    return true;
  });
}

void WeightBlob::Abandon(const std::string& why) {
  absl::MutexLock l(&mu_);
  if (!complete_ && failed_.empty()) failed_ = why.empty() ? "the relay's source gave up" : why;
}

absl::StatusOr<uint64_t> WeightBlob::WaitBeyond(uint64_t offset, absl::Duration stall,
                                                const std::function<bool()>& cancelled) const {
  const absl::Time give_up = absl::Now() + stall;
  absl::MutexLock l(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return complete_ || !failed_.empty() || filled_ > offset; };
  while (!ready()) {
    if (cancelled && cancelled()) return absl::CancelledError("the reader went away");
    const absl::Time now = absl::Now();
    if (now >= give_up) {
      return absl::AbortedError(absl::StrCat("weight version ", header_.version, ": no new bytes for ",
                                             absl::FormatDuration(stall), " (the relay's source stalled)"));
    }
    mu_.AwaitWithTimeout(absl::Condition(&ready), std::min(absl::Milliseconds(100), give_up - now));
  }
  if (complete_) return header_.total_size;
  if (!failed_.empty() && filled_ <= offset) return absl::AbortedError(failed_);
  return filled_;
}

// ---- Streams

namespace {

// Reads a WeightChunk stream (a ClientReader or ServerReader of ByteBuffer) into *blob,
// resuming at its filled() offset; when *blob is null the first chunk's header creates it.
template <typename Reader>
absl::Status ReceiveWeightStream(Reader* reader, std::shared_ptr<WeightBlob>* blob) {
  grpc::ByteBuffer bb;
  while (reader->Read(&bb)) {
    ChunkHeader h;
    if (absl::Status s = ScanChunk(&bb, &h); !s.ok()) return s;
    if (*blob == nullptr) {
      // Weights are never empty (safetensors has a header); an empty or field-less
      // message would otherwise read as a complete version 0 of 0 bytes.
      if (h.blob.total_size == 0) return absl::InvalidArgumentError("weight chunk of an empty blob (total_size 0)");
      if (h.blob.delta && (h.blob.result_size == 0 || h.blob.result_size > kMaxWeightBlob)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight patch for a version of ", h.blob.result_size, " bytes (1 byte to 16 GiB)"));
      }
      absl::StatusOr<std::shared_ptr<WeightBlob>> made = WeightBlob::ForReceiving(h.blob);
      if (!made.ok()) return made.status();
      *blob = *std::move(made);
    }
    WeightBlob& b = **blob;
    const uint64_t at = b.filled();
    if (!(h.blob == b.header())) {
      auto what = [](const WeightHeader& x) {
        return absl::StrCat("version ", x.version, x.delta ? absl::StrCat(" (a patch against ", x.base_version, ")") : "",
                            " (", x.total_size, " bytes, CRC ", x.crc32, ")");
      };
      return absl::InvalidArgumentError(
          absl::StrCat("weight chunk of ", what(h.blob), " in a stream of ", what(b.header())));
    }
    if (h.offset != at) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight chunk out of order: offset ", h.offset, ", expected ", at));
    }
    if (h.data_len > 0) {
      absl::Status s = b.Append(h.data_len, [&](char* dest) { return CopyChunkData(&bb, dest); });
      if (!s.ok()) return s;
    }
    bb.Clear();
  }
  return absl::OkStatus();
}

// Writes chunks to any writer with Write(ByteBuffer).
template <typename Writer>
absl::Status WriteChunks(Writer* writer, const std::shared_ptr<const WeightBlob>& blob, uint64_t offset,
                         uint32_t chunk, absl::Duration stall, const std::function<bool()>& cancelled) {
  chunk = std::clamp<uint32_t>(chunk == 0 ? kDefaultWeightChunk : chunk, 1, kMaxWeightChunk);
  const uint64_t total = blob->header().total_size;
  if (offset > total) return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is beyond the blob's ", total, " bytes"));
  if (total == 0) {
    return writer->Write(EncodeChunk(blob, 0, 0)) ? absl::OkStatus() : absl::CancelledError("stream broke");
  }
  for (uint64_t off = offset; off < total;) {
    absl::StatusOr<uint64_t> have = blob->WaitBeyond(off, stall, cancelled);
    if (!have.ok()) return have.status();
    while (off < *have) {
      if (cancelled && cancelled()) return absl::CancelledError("the reader went away");
      const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, *have - off));
      if (!writer->Write(EncodeChunk(blob, off, n))) return absl::CancelledError("stream broke");
      off += n;
    }
  }
  return absl::OkStatus();
}

// A server's Fetch: `blob` from `offset` on, waiting at most 30 s for each byte a relay
// has not received yet.
grpc::Status WriteWeightStream(grpc::ServerWriter<grpc::ByteBuffer>* writer, grpc::ServerContext* ctx,
                               const std::shared_ptr<const WeightBlob>& blob, uint64_t offset, uint32_t chunk,
                               absl::Duration stall = absl::Seconds(30)) {
  absl::Status s = WriteChunks(writer, blob, offset, chunk, stall, [ctx] { return ctx->IsCancelled(); });
  return ToGrpc(s);
}

}  // namespace

// ---- The service

WeightService::WeightService(Lookup lookup, Accept accept, std::function<void(uint64_t)> served)
    : lookup_(std::move(lookup)), accept_(std::move(accept)), served_(std::move(served)) {
  AddMethod(new grpc::internal::RpcServiceMethod(
      kPublishMethod, grpc::internal::RpcMethod::CLIENT_STREAMING,
      new grpc::internal::ClientStreamingHandler<WeightService, grpc::ByteBuffer, grpc::ByteBuffer>(
          [](WeightService* s, grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* r, grpc::ByteBuffer* resp) {
            return s->Publish(ctx, r, resp);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      kFetchMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<WeightService, grpc::ByteBuffer, grpc::ByteBuffer>(
          [](WeightService* s, grpc::ServerContext* ctx, const grpc::ByteBuffer* req, grpc::ServerWriter<grpc::ByteBuffer>* w) {
            return s->Fetch(ctx, req, w);
          },
          this)));
}

grpc::Status WeightService::Fetch(grpc::ServerContext* ctx, const grpc::ByteBuffer* request,
                                  grpc::ServerWriter<grpc::ByteBuffer>* writer) {
  v1::FetchWeightsRequest req;
  grpc::ByteBuffer copy(*request);  // shares the slices
  if (!Parse(&copy, &req)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed FetchWeightsRequest");
  absl::StatusOr<std::shared_ptr<const WeightBlob>> blob = lookup_(req.version(), req.delta());
  if (!blob.ok()) return ToGrpc(blob.status());
  const uint64_t total = (*blob)->header().total_size;
  grpc::Status s = WriteWeightStream(writer, ctx, *blob, req.offset(), req.chunk_bytes());
  if (s.ok() && served_) served_(total - std::min(total, req.offset()));
  return s;
}

grpc::Status WeightService::Publish(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                                    grpc::ByteBuffer* response) {
  if (!accept_) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "weights are published to the coordinator");
  std::shared_ptr<WeightBlob> blob;
  absl::Status s = ReceiveWeightStream(reader, &blob);
  if (!s.ok()) return ToGrpc(s);
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "publisher went away");
  if (blob == nullptr) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no weight chunks received");
  if (!blob->complete()) {
    return grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat("weights truncated: got ", blob->filled(), " of ",
                                                                  blob->header().total_size, " bytes"));
  }
  v1::PublishWeightsResponse resp;
  grpc::Status st = accept_(std::move(blob), &resp);
  if (st.ok()) *response = Serialize(resp);
  return st;
}

// ---- Clients

absl::StatusOr<v1::PublishWeightsResponse> PublishWeightStream(const std::shared_ptr<grpc::Channel>& channel,
                                                               grpc::ClientContext* ctx,
                                                               const std::shared_ptr<const WeightBlob>& blob,
                                                               uint32_t chunk) {
  static const grpc::internal::RpcMethod method(kPublishMethod, grpc::internal::RpcMethod::CLIENT_STREAMING);
  grpc::ByteBuffer response;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel.get(), method, ctx, &response));
  WriteChunks(writer.get(), blob, 0, chunk, absl::Seconds(1), nullptr).IgnoreError();  // a broken stream shows in Finish
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return ToAbsl(s);
  v1::PublishWeightsResponse resp;
  if (!Parse(&response, &resp)) return absl::InternalError("malformed PublishWeightsResponse");
  return resp;
}

absl::Status FetchWeightStream(const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* ctx,
                               int64_t version, std::shared_ptr<WeightBlob>* blob, uint32_t chunk, bool delta) {
  static const grpc::internal::RpcMethod method(kFetchMethod, grpc::internal::RpcMethod::SERVER_STREAMING);
  v1::FetchWeightsRequest req;
  req.set_version(*blob != nullptr ? static_cast<int64_t>((*blob)->version()) : version);
  req.set_delta(*blob != nullptr ? (*blob)->header().delta : delta);
  req.set_chunk_bytes(chunk);
  req.set_offset(*blob != nullptr ? (*blob)->filled() : 0);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), method, ctx, Serialize(req)));
  absl::Status received = ReceiveWeightStream(reader.get(), blob);
  if (!received.ok()) ctx->TryCancel();  // a call must be finished before its reader goes away
  grpc::Status s = reader->Finish();
  if (!received.ok()) return received;
  // Every byte in and checked: a status racing the stream's end does not undo that.
  if (*blob != nullptr && (*blob)->complete()) return absl::OkStatus();
  if (!s.ok()) return ToAbsl(s);
  if (*blob == nullptr) return absl::DataLossError("the weight stream ended before its first chunk");
  if (!(*blob)->complete()) {
    return absl::DataLossError(absl::StrCat("the weight stream of version ", (*blob)->version(), " ended at byte ",
                                            (*blob)->filled(), " of ", (*blob)->header().total_size));
  }
  return absl::OkStatus();
}

// ---- WeightFetcher

WeightFetcher::WeightFetcher(std::shared_ptr<grpc::Channel> coordinator,
                             std::function<std::shared_ptr<grpc::Channel>(const std::string&)> make_channel)
    : coordinator_(std::move(coordinator)),
      stub_(v1::Coordinator::NewStub(coordinator_)),
      make_channel_(make_channel ? std::move(make_channel) : [](const std::string& a) { return MakeChannel(a); }) {}

std::shared_ptr<grpc::Channel> WeightFetcher::ChannelTo(const std::string& address) {
  absl::MutexLock l(&mu_);
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  if (channels_.size() >= 64) channels_.clear();  // peers come and go; keep the map small
  return channels_[address] = make_channel_(address);
}

absl::StatusOr<std::shared_ptr<WeightBlob>> WeightFetcher::Fetch(
    int64_t version, const Options& opt,
    const std::function<std::shared_ptr<grpc::ClientContext>(absl::Duration)>& new_context,
    const std::function<void(const std::shared_ptr<grpc::ClientContext>&)>& forget) {
  auto context = [&](absl::Duration t) {
    return new_context ? new_context(t) : std::shared_ptr<grpc::ClientContext>(ContextWithDeadline(t));
  };
  auto done = [&](const std::shared_ptr<grpc::ClientContext>& c) {
    if (forget) forget(c);
  };
  v1::PlanWeightFetchRequest plan_req;
  plan_req.set_member_id(opt.member_id);
  plan_req.set_version(version);
  plan_req.set_relay_address(opt.relay_address);
  // The full version held, complete and checked: what a patch can be applied to.
  std::shared_ptr<WeightBlob> base;
  {
    absl::MutexLock l(&mu_);
    if (opt.deltas && held_ != nullptr && held_->complete()) base = held_;
  }
  if (base != nullptr) {
    plan_req.set_held_version(base->version());
    plan_req.set_held_crc32(base->header().crc32);
  }
  std::shared_ptr<WeightBlob> blob;  // what is being received: the full version or its patch
  absl::Status last = absl::UnavailableError("no weight source tried");
  {
    absl::MutexLock l(&mu_);
    planning_ = true;
  }
  struct EndPlanning {
    WeightFetcher* f;
    ~EndPlanning() {
      absl::MutexLock l(&f->mu_);
      f->planning_ = false;
    }
  } end_planning{this};
  // Asking for the full version from here on (a patch was refused or cannot apply).
  auto want_full = [&] {
    plan_req.clear_held_version();
    plan_req.clear_held_crc32();
    base.reset();
    blob.reset();
    absl::MutexLock l(&mu_);
    held_patch_.reset();
    planning_ = true;
  };
  for (int attempt = 0; attempt < opt.max_sources; ++attempt) {
    v1::PlanWeightFetchResponse plan;
    {
      auto ctx = context(absl::Seconds(10));
      grpc::Status s = stub_->PlanWeightFetch(ctx.get(), plan_req, &plan);
      done(ctx);
      if (!s.ok()) {
        last = ToAbsl(s);
        break;
      }
    }
    // Every later question is about this version: a fetch resumes, it does not switch.
    plan_req.set_version(static_cast<int64_t>(plan.version()));
    if (plan.delta() && (base == nullptr || base->version() != plan.base_version() ||
                         base->header().crc32 != plan.base_crc32())) {
      // A patch against something this process does not hold: never applied.
      last = absl::FailedPreconditionError(absl::StrCat("planned a patch against version ", plan.base_version(),
                                                        ", which this member does not hold"));
      want_full();
      continue;
    }
    WeightHeader want;
    want.version = plan.version();
    want.step = plan.step();
    if (plan.delta()) {
      want.total_size = plan.patch_size();
      want.crc32 = plan.patch_crc32();
      want.delta = true;
      want.base_version = plan.base_version();
      want.base_crc32 = plan.base_crc32();
      want.result_size = plan.total_size();
      want.result_crc32 = plan.crc32();
    } else {
      want.total_size = plan.total_size();
      want.crc32 = plan.crc32();
    }
    if (blob != nullptr && !(blob->header() == want)) blob.reset();
    if (blob == nullptr) {
      // What this process already holds of it (an earlier fetch that failed part way) is
      // resumed, not fetched again from byte 0.
      absl::MutexLock l(&mu_);
      const std::shared_ptr<WeightBlob>& slot = want.delta ? held_patch_ : held_;
      if (slot != nullptr && slot->header() == want && !slot->failed()) {
        blob = slot;
        planning_ = false;
      }
    }
    if (blob == nullptr && want.delta) {
      // A patch is small: fresh pages. The full version held stays served meanwhile.
      absl::StatusOr<std::shared_ptr<WeightBlob>> made = WeightBlob::ForReceiving(want);
      if (!made.ok()) return made.status();
      blob = *std::move(made);
      absl::MutexLock l(&mu_);
      held_patch_ = blob;  // peers fetching the patch may stream it from the first byte on
      planning_ = false;
    } else if (blob == nullptr) {
      base.reset();
      std::shared_ptr<WeightBlob> reuse;
      {
        absl::MutexLock l(&mu_);
        // The previous version stops being served; its pages (or the spare ones) take this one.
        reuse = spare_ != nullptr ? std::move(spare_) : std::move(held_);
        held_.reset();
        held_patch_.reset();
      }
      absl::StatusOr<std::shared_ptr<WeightBlob>> made = WeightBlob::ForReceiving(want, std::move(reuse));
      if (!made.ok()) return made.status();
      blob = *std::move(made);
      absl::MutexLock l(&mu_);
      held_ = blob;  // peers may stream it from the first byte on
      planning_ = false;
    }
    const std::string& source = plan.source_address();
    const uint64_t before = blob->filled();
    auto ctx = context(opt.call_timeout);
    absl::Status s = FetchWeightStream(source.empty() ? coordinator_ : ChannelTo(source), ctx.get(),
                                       static_cast<int64_t>(plan.version()), &blob, opt.chunk_bytes);
    const bool cancelled = opt.stopping && opt.stopping();
    done(ctx);
    {
      absl::MutexLock l(&mu_);
      (source.empty() ? stats_.bytes_from_coordinator : stats_.bytes_from_peers) += blob->filled() - before;
    }
    if (s.ok() || blob->complete()) {
      if (!blob->header().delta) {
        absl::MutexLock l(&mu_);
        ++stats_.versions_full;
        return blob;
      }
      std::shared_ptr<WeightBlob> reuse;
      {
        absl::MutexLock l(&mu_);
        reuse = std::move(spare_);
      }
      absl::StatusOr<std::shared_ptr<WeightBlob>> full = ApplyDeltaBlob(*base, *blob, std::move(reuse));
      if (full.ok()) {
        absl::MutexLock l(&mu_);
        spare_ = std::move(held_);  // the base: its pages take the version after next
        held_ = *full;
        ++stats_.versions_delta;
        return *std::move(full);
      }
      if (absl::IsResourceExhausted(full.status())) return full.status();
      {
        absl::MutexLock l(&mu_);
        ++stats_.patches_refused;
      }
      spdlog::warn("weights version {}: the patch against version {} is refused ({}); fetching it in full",
                   plan.version(), plan.base_version(), full.status().message());
      last = full.status();
      want_full();
      continue;
    }
    last = s;
    if (cancelled) break;
    if (absl::IsDataLoss(s) && blob->filled() == blob->header().total_size) {
      // Every byte came and the sum is wrong: start over rather than resume.
      blob->Abandon(std::string(s.message()));
      absl::MutexLock l(&mu_);
      if (held_ == blob) held_.reset();
      if (held_patch_ == blob) held_patch_.reset();
      planning_ = true;  // peers asking now wait for the next blob
      blob.reset();
    }
    if (source.empty()) {
      // The coordinator itself failed: the caller's retry loop backs off.
      break;
    }
    {
      absl::MutexLock l(&mu_);
      ++stats_.source_failures;
    }
    spdlog::warn("weights version {} from peer {} ({}): {}; asking the coordinator for another source at byte {}",
                 plan.version(), source, plan.source_member(), s.message(), blob ? blob->filled() : 0);
    plan_req.set_failed_source(source);
  }
  // A partial blob stays held: the next Fetch of this version resumes it (a coordinator
  // that failed, or a deadline, costs the bytes not yet received, not those already in).
  return last;
}

absl::StatusOr<std::shared_ptr<const WeightBlob>> WeightFetcher::Held(int64_t version, bool delta) const {
  absl::MutexLock l(&mu_);
  auto slot = [this, delta]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return delta ? held_patch_ : held_; };
  auto settled = [&, version]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !planning_ || (slot() != nullptr && version >= 0 && slot()->version() == static_cast<uint64_t>(version));
  };
  mu_.AwaitWithTimeout(absl::Condition(&settled), absl::Seconds(5));
  std::shared_ptr<WeightBlob> held = slot();
  if (held == nullptr || (version >= 0 && held->version() != static_cast<uint64_t>(version))) {
    return absl::NotFoundError(
        absl::StrCat("this actor does not hold ", delta ? "a patch for " : "", "weight version ", version));
  }
  return std::shared_ptr<const WeightBlob>(held);
}

WeightFetcher::Stats WeightFetcher::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

}  // namespace grpo::rpc
