// Sharded checkpoints: the rank files, the manifest, and the one layout check both the committing
// rank and every reader run (see sharded_checkpoint.h for the layout and its invariants).
#include "distill/sharded_checkpoint.h"

#include "common/atomic_output.h"
#include "common/error.h"
#include "model/companion_files.h"

#include <ATen/ops/empty.h>
#include <c10/core/TensorOptions.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <tuple>

namespace fs = std::filesystem;

namespace mp {

const char* const kShardManifestName = "manifest.json";
const char* const kShardKindWeight = "weight";
const char* const kShardKindExpAvg = "exp_avg";
const char* const kShardKindExpAvgSq = "exp_avg_sq";

namespace {

using json = nlohmann::json;

constexpr const char* kFormat = "minipuzzle-sharded-checkpoint";
constexpr int kVersion = 1;

bool known_kind(const std::string& k) { return k == kShardKindWeight || k == kShardKindExpAvg || k == kShardKindExpAvgSq; }

bool dtype_allowed(const std::string& kind, StDType d) {
  if (kind == kShardKindWeight) return d == StDType::F32 || d == StDType::BF16 || d == StDType::F16;
  return d == StDType::F32;
}

std::string piece_key(const std::string& kind, const std::string& name) { return kind + "/" + name; }

// One piece as a manifest or a rank file describes it.
struct PieceRec {
  std::string name, kind;
  int64_t begin = 0, end = 0;
  StDType dtype = StDType::F32;
  int rank = 0;
};

int64_t numel_of(const TensorSpec& t, const std::string& where) {
  int64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) fail_input("{}: tensor '{}' has a negative size in shape {}", where, t.name, shape_string(t.shape));
    if (__builtin_mul_overflow(n, d, &n))
      fail_input("{}: tensor '{}': shape {} overflows 64 bits", where, t.name, shape_string(t.shape));
  }
  return n;
}

// The invariants of sharded_checkpoint.h over the whole layout; bad input naming `where`.
void check_layout(const std::vector<TensorSpec>& tensors, const std::vector<PieceRec>& pieces, int world_size,
                  const std::string& where) {
  std::map<std::string, int64_t> numel;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty()) fail_input("{}: a tensor has an empty name", where);
    if (!numel.emplace(t.name, numel_of(t, where)).second)
      fail_input("{}: tensor '{}' is listed twice", where, t.name);
  }
  std::map<std::pair<std::string, std::string>, std::vector<const PieceRec*>> by_key;
  std::set<std::tuple<int, std::string, std::string>> held;
  for (const PieceRec& p : pieces) {
    auto it = numel.find(p.name);
    if (it == numel.end()) fail_input("{}: rank {} holds a piece of '{}', which is not among the tensors", where, p.rank, p.name);
    if (!known_kind(p.kind))
      fail_input("{}: rank {}: tensor '{}' has unknown kind '{}' (expected weight, exp_avg or exp_avg_sq)", where,
                 p.rank, p.name, p.kind);
    if (p.rank < 0 || p.rank >= world_size)
      fail_input("{}: tensor '{}' ({}): rank {} is outside world size {}", where, p.name, p.kind, p.rank, world_size);
    if (!dtype_allowed(p.kind, p.dtype))
      fail_input("{}: rank {}: tensor '{}' ({}) is {}, expected {}", where, p.rank, p.name, p.kind,
                 st_dtype_name(p.dtype), p.kind == kShardKindWeight ? "F32, BF16 or F16" : "F32");
    if (p.begin < 0 || p.end <= p.begin || p.end > it->second)
      fail_input("{}: rank {}: tensor '{}' ({}) range [{}, {}) is not a non-empty part of [0, {})", where, p.rank,
                 p.name, p.kind, p.begin, p.end, it->second);
    if (!held.emplace(p.rank, p.name, p.kind).second)
      fail_input("{}: rank {} holds two pieces of tensor '{}' ({})", where, p.rank, p.name, p.kind);
    by_key[{p.name, p.kind}].push_back(&p);
  }
  std::map<std::string, int> tensors_with_kind;
  for (auto& [key, list] : by_key) {
    const auto& [name, kind] = key;
    std::sort(list.begin(), list.end(), [](const PieceRec* a, const PieceRec* b) { return a->begin < b->begin; });
    int64_t pos = 0;
    const PieceRec* prev = nullptr;
    for (const PieceRec* p : list) {
      if (p->dtype != list.front()->dtype)
        fail_input("{}: tensor '{}' ({}) is {} on rank {} but {} on rank {}", where, name, kind,
                   st_dtype_name(list.front()->dtype), list.front()->rank, st_dtype_name(p->dtype), p->rank);
      if (p->begin < pos)
        fail_input("{}: tensor '{}' ({}): ranks {} and {} both hold elements [{}, {})", where, name, kind, prev->rank,
                   p->rank, p->begin, std::min(pos, p->end));
      if (p->begin > pos)
        fail_input("{}: tensor '{}' ({}): elements [{}, {}) are held by no rank", where, name, kind, pos, p->begin);
      pos = p->end;
      prev = p;
    }
    if (pos != numel[name])
      fail_input("{}: tensor '{}' ({}): elements [{}, {}) are held by no rank", where, name, kind, pos, numel[name]);
    ++tensors_with_kind[kind];
  }
  for (const TensorSpec& t : tensors) {
    if (numel[t.name] > 0 && !by_key.count({t.name, kShardKindWeight}))
      fail_input("{}: tensor '{}' has no weight pieces on any rank", where, t.name);
    for (const char* k : {kShardKindExpAvg, kShardKindExpAvgSq})
      if (numel[t.name] > 0 && tensors_with_kind.count(k) && !by_key.count({t.name, k}))
        fail_input("{}: tensor '{}' has no {} pieces on any rank, while other tensors have", where, t.name, k);
  }
}

// The rank file's own record of step, rank and world size must be this checkpoint's; its
// tensors must be exactly `pieces` (names, dtypes, lengths).
void check_rank_file(const SafetensorsFile& f, int64_t step, int rank, int world_size,
                     const std::vector<PieceRec>& pieces) {
  const std::string& path = f.path();
  const std::pair<const char*, int64_t> ids[] = {{"step", step}, {"rank", rank}, {"world_size", world_size}};
  for (const auto& [key, want] : ids) {
    auto it = f.metadata().find(key);
    if (it == f.metadata().end() || it->second != std::to_string(want))
      fail_input("{}: metadata '{}' is {}, expected {} (a rank file of another checkpoint?)", path, key,
                 it == f.metadata().end() ? std::string("missing") : "'" + it->second + "'", want);
  }
  if (f.tensors().size() != pieces.size())
    fail_input("{}: holds {} tensors, expected {}", path, f.tensors().size(), pieces.size());
  for (const PieceRec& p : pieces) {
    const StTensorInfo* t = f.find(piece_key(p.kind, p.name));
    if (!t) fail_input("{}: tensor '{}' is missing", path, piece_key(p.kind, p.name));
    if (t->dtype != p.dtype)
      fail_input("{}: tensor '{}' is {}, expected {}", path, t->name, st_dtype_name(t->dtype), st_dtype_name(p.dtype));
    if (t->shape != std::vector<int64_t>{p.end - p.begin})
      fail_input("{}: tensor '{}' has shape {}, expected [{}] for elements [{}, {})", path, t->name,
                 shape_string(t->shape), p.end - p.begin, p.begin, p.end);
  }
}

// Typed JSON field access for the manifest and the rank files' metadata.
const json& field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object()) fail_input("{}: expected an object holding '{}', found {}", where, key, j.type_name());
  auto it = j.find(key);
  if (it == j.end()) fail_input("{}: field '{}' is missing", where, key);
  return *it;
}
int64_t int_field(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_number_integer()) fail_input("{}: field '{}' must be a whole number, got {}", where, key, v.dump());
  return v.get<int64_t>();
}
std::string str_field(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_string()) fail_input("{}: field '{}' must be a string, got {}", where, key, v.dump());
  return v.get<std::string>();
}
const json& array_field(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_array()) fail_input("{}: field '{}' must be an array, got {}", where, key, v.type_name());
  return v;
}

json parse_json(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) fail_input("{}: not valid JSON (truncated or corrupt)", where);
  return j;
}

StDType dtype_field(const json& j, const std::string& where) {
  StDType d;
  std::string name = str_field(j, "dtype", where);
  if (!st_dtype_from_name(name, &d)) fail_input("{}: unknown dtype '{}'", where, name);
  return d;
}

void move_folder_into_place(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::string old;
  if (fs::exists(to)) {
    fs::path p(to);
    old = (p.parent_path() / fmt::format(".{}.old-{}", p.filename().string(), ::getpid())).string();
    fs::remove_all(old, ec);
    fs::rename(to, old, ec);
    if (ec) fail_runtime("{}: cannot move the previous folder aside: {}", to, ec.message());
  }
  fs::rename(from, to, ec);
  if (ec) fail_runtime("{}: cannot move finished folder into place: {}", to, ec.message());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace

std::string rank_shard_file_name(int rank, int world_size) {
  return fmt::format("rank-{}-of-{}.safetensors", rank, world_size);
}

std::string sharded_staging_dir(const std::string& output, int64_t step) {
  return output + "/." + checkpoint_dir_name(step) + ".partial-sharded";
}

bool is_sharded_checkpoint(const std::string& dir) { return fs::is_regular_file(dir + "/" + kShardManifestName); }

void write_rank_shard(const std::string& output, int64_t step, int rank, int world_size,
                      const std::vector<ShardPiece>& pieces) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    fail_runtime("write_rank_shard: rank {} of world size {} is not a rank", rank, world_size);
  const std::string staging = sharded_staging_dir(output, step);
  const std::string path = staging + "/" + rank_shard_file_name(rank, world_size);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  json ranges = json::array();
  std::set<std::string> keys;
  for (const ShardPiece& p : pieces) {
    if (!known_kind(p.kind))
      fail_runtime("{}: tensor '{}': unknown kind '{}' (expected weight, exp_avg or exp_avg_sq)", path, p.name, p.kind);
    if (!p.data.defined() || p.begin < 0 || p.end < p.begin || p.data.numel() != p.end - p.begin)
      fail_runtime("{}: tensor '{}' ({}): range [{}, {}) needs {} elements, the data has {}", path, p.name, p.kind,
                   p.begin, p.end, p.end - p.begin, p.data.defined() ? p.data.numel() : 0);
    StDType d;
    if (!st_dtype_from_scalar_type(p.data.scalar_type(), &d) || !dtype_allowed(p.kind, d))
      fail_runtime("{}: tensor '{}' ({}) is {}, which that kind cannot be stored as", path, p.name, p.kind,
                   c10::toString(p.data.scalar_type()));
    if (!keys.insert(piece_key(p.kind, p.name)).second)
      fail_runtime("{}: tensor '{}' ({}) given twice", path, p.name, p.kind);
    if (p.end == p.begin) continue;
    tensors.emplace_back(piece_key(p.kind, p.name), p.data.detach().reshape({-1}));
    ranges.push_back({p.name, p.kind, p.begin, p.end});
  }
  std::error_code ec;
  fs::create_directories(staging, ec);  // every rank may race to create it; that is fine
  if (!fs::is_directory(staging)) fail_runtime("{}: cannot create the staging folder: {}", staging, ec.message());
  write_safetensors(path, tensors,
                    {{"step", std::to_string(step)},
                     {"rank", std::to_string(rank)},
                     {"world_size", std::to_string(world_size)},
                     {"ranges", ranges.dump()}});
}

std::string commit_sharded_checkpoint(const std::string& output, const ShardedCommit& c) {
  const int64_t step = c.state.step;
  const std::string staging = sharded_staging_dir(output, step);
  const std::string final_dir = output + "/" + checkpoint_dir_name(step);
  if (c.world_size < 1) fail_runtime("{}: world size {} is not positive", staging, c.world_size);
  if (!fs::is_directory(staging))
    fail_runtime("{}: no staging folder; every rank must call write_rank_shard before the commit", staging);
  json ranks = json::array();
  std::vector<PieceRec> all;
  std::set<std::string> expected_files = {kShardManifestName};
  try {
    for (int r = 0; r < c.world_size; ++r) {
      const std::string file = rank_shard_file_name(r, c.world_size);
      const std::string path = staging + "/" + file;
      expected_files.insert(file);
      if (!fs::is_regular_file(path)) fail_input("{}: missing; rank {} has not written its shard", path, r);
      auto f = SafetensorsFile::open(path);
      auto it = f->metadata().find("ranges");
      if (it == f->metadata().end()) fail_input("{}: metadata 'ranges' is missing", path);
      json rs = parse_json(it->second, path + " metadata 'ranges'");
      if (!rs.is_array()) fail_input("{}: metadata 'ranges' is not an array", path);
      std::vector<PieceRec> mine;
      for (const json& e : rs) {
        if (!e.is_array() || e.size() != 4 || !e[0].is_string() || !e[1].is_string() || !e[2].is_number_integer() ||
            !e[3].is_number_integer())
          fail_input("{}: metadata 'ranges' entry {} is not [name, kind, begin, end]", path, e.dump());
        PieceRec p{e[0].get<std::string>(), e[1].get<std::string>(), e[2].get<int64_t>(), e[3].get<int64_t>(),
                   StDType::F32, r};
        const StTensorInfo* t = f->find(piece_key(p.kind, p.name));
        if (t) p.dtype = t->dtype;
        mine.push_back(p);
      }
      check_rank_file(*f, step, r, c.world_size, mine);
      json list = json::array();
      for (const PieceRec& p : mine)
        list.push_back({{"name", p.name}, {"kind", p.kind}, {"begin", p.begin}, {"end", p.end},
                        {"dtype", st_dtype_name(p.dtype)}});
      ranks.push_back({{"rank", r}, {"file", file}, {"bytes", fs::file_size(path)}, {"pieces", list}});
      all.insert(all.end(), mine.begin(), mine.end());
    }
    check_layout(c.tensors, all, c.world_size, staging);
  } catch (const Error& e) {
    fail_runtime("cannot commit checkpoint step {}: {}", step, e.what());
  }

  // Leftovers of an earlier attempt at this step (another world size, killed writers' temporaries).
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(staging, ec))
    if (!expected_files.count(e.path().filename().string())) fs::remove_all(e.path(), ec);

  json tensors = json::array();
  for (const TensorSpec& t : c.tensors) tensors.push_back({{"name", t.name}, {"shape", t.shape}});
  json manifest = {{"format", kFormat},
                   {"version", kVersion},
                   {"step", step},
                   {"world_size", c.world_size},
                   {"shard_mode", c.shard_mode},
                   {"tensors", tensors},
                   {"ranks", ranks},
                   {"config", config_to_json(c.config)},
                   {"trainer_state", trainer_state_to_json(c.state)}};
  copy_companion_files(c.companions_from, staging);
  write_file_atomic(staging + "/" + kShardManifestName, manifest.dump(1) + "\n");
  move_folder_into_place(staging, final_dir);
  write_file_atomic(output + "/latest", checkpoint_dir_name(step) + "\n");
  return final_dir;
}

ShardedCheckpointReader::ShardedCheckpointReader(const std::string& dir) : dir_(dir) {
  const std::string mpath = dir_ + "/" + kShardManifestName;
  if (!fs::is_directory(dir_)) fail_input("{}: checkpoint folder not found", dir_);
  if (!fs::is_regular_file(mpath)) fail_input("{}: not found; {} is not a sharded checkpoint", mpath, dir_);
  const json m = parse_json(read_file(mpath), mpath);
  if (!m.is_object()) fail_input("{}: expected a JSON object, found {}", mpath, m.type_name());
  if (str_field(m, "format", mpath) != kFormat)
    fail_input("{}: field 'format' is '{}', expected '{}'", mpath, m["format"].get<std::string>(), kFormat);
  if (int_field(m, "version", mpath) != kVersion)
    fail_input("{}: version {} is not supported (expected {})", mpath, m["version"].dump(), kVersion);
  step_ = int_field(m, "step", mpath);
  const int64_t w = int_field(m, "world_size", mpath);
  if (w < 1 || w > 1000000) fail_input("{}: world_size {} is not a positive rank count", mpath, w);
  world_size_ = static_cast<int>(w);
  shard_mode_ = str_field(m, "shard_mode", mpath);
  config_ = config_from_json(field(m, "config", mpath), mpath + " (config)");
  state_ = trainer_state_from_json(field(m, "trainer_state", mpath), mpath + " (trainer_state)");
  if (state_.step != step_)
    fail_input("{}: trainer_state.step {} differs from step {}", mpath, state_.step, step_);

  for (const json& t : array_field(m, "tensors", mpath)) {
    const std::string where = mpath + " (tensors)";
    TensorSpec s{str_field(t, "name", where), {}};
    const json& shape = array_field(t, "shape", where);
    for (const json& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail_input("{}: tensor '{}': shape {} must hold whole numbers >= 0", mpath, s.name, shape.dump());
      s.shape.push_back(d.get<int64_t>());
    }
    tensor_index_[s.name] = tensors_.size();
    tensors_.push_back(std::move(s));
  }

  const json& ranks = array_field(m, "ranks", mpath);
  if (static_cast<int64_t>(ranks.size()) != w)
    fail_input("{}: lists {} ranks, expected world_size {}", mpath, ranks.size(), w);
  std::vector<PieceRec> all;
  std::vector<std::vector<PieceRec>> by_rank(world_size_);
  std::vector<std::string> files(world_size_);
  std::vector<int64_t> bytes(world_size_);
  for (size_t i = 0; i < ranks.size(); ++i) {
    const json& r = ranks[i];
    const std::string where = fmt::format("{} (ranks[{}])", mpath, i);
    if (int_field(r, "rank", where) != static_cast<int64_t>(i))
      fail_input("{}: rank {} listed where rank {} belongs", where, r["rank"].dump(), i);
    files[i] = str_field(r, "file", where);
    if (files[i] != rank_shard_file_name(static_cast<int>(i), world_size_))
      fail_input("{}: file '{}', expected '{}'", where, files[i], rank_shard_file_name(static_cast<int>(i), world_size_));
    bytes[i] = int_field(r, "bytes", where);
    for (const json& p : array_field(r, "pieces", where)) {
      PieceRec rec{str_field(p, "name", where), str_field(p, "kind", where), int_field(p, "begin", where),
                   int_field(p, "end", where), dtype_field(p, where), static_cast<int>(i)};
      by_rank[i].push_back(rec);
      all.push_back(rec);
    }
  }
  check_layout(tensors_, all, world_size_, mpath);

  for (int r = 0; r < world_size_; ++r) {
    const std::string path = dir_ + "/" + files[r];
    if (!fs::exists(path)) fail_input("{}: rank {}'s file is missing (the manifest lists it)", path, r);
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec || static_cast<int64_t>(size) != bytes[r])
      fail_input("{}: is {} bytes, the manifest records {} (truncated or replaced?)", path,
                 ec ? std::string("unreadable") : std::to_string(size), bytes[r]);
    files_.push_back(SafetensorsFile::open(path));
    check_rank_file(*files_.back(), step_, r, world_size_, by_rank[r]);
    for (const PieceRec& p : by_rank[r])
      pieces_[{p.name, p.kind}].push_back({p.begin, p.end, r, files_.back()->find(piece_key(p.kind, p.name))});
  }
  for (auto& [key, list] : pieces_)
    std::sort(list.begin(), list.end(), [](const Piece& a, const Piece& b) { return a.begin < b.begin; });
}

ShardedCheckpointReader::~ShardedCheckpointReader() = default;

const TensorSpec& ShardedCheckpointReader::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  if (it == tensor_index_.end()) fail_input("{}: tensor '{}' is not in the checkpoint", dir_, name);
  return tensors_[it->second];
}

bool ShardedCheckpointReader::has(const std::string& name, const std::string& kind) const {
  return pieces_.count({name, kind}) != 0;
}

StDType ShardedCheckpointReader::dtype(const std::string& name, const std::string& kind) const {
  auto it = pieces_.find({name, kind});
  if (it == pieces_.end()) fail_input("{}: holds no {} for tensor '{}'", dir_, kind, name);
  return it->second.front().info->dtype;
}

at::Tensor ShardedCheckpointReader::read_range(const std::string& name, const std::string& kind, int64_t begin,
                                               int64_t end) const {
  const TensorSpec& spec = tensor(name);
  int64_t numel = 1;
  for (int64_t d : spec.shape) numel *= d;
  if (begin < 0 || end < begin || end > numel)
    fail_runtime("{}: range [{}, {}) of tensor '{}' is not inside [0, {})", dir_, begin, end, name, numel);
  at::ScalarType st = at::kFloat;
  if (numel == 0) return at::empty({0}, at::TensorOptions().dtype(st));  // no pieces to hold it
  auto it = pieces_.find({name, kind});
  if (it == pieces_.end()) fail_input("{}: holds no {} for tensor '{}'", dir_, kind, name);
  st_dtype_to_scalar_type(it->second.front().info->dtype, &st);
  at::Tensor out = at::empty({end - begin}, at::TensorOptions().dtype(st));
  const int64_t es = static_cast<int64_t>(out.element_size());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  const std::vector<Piece>& list = it->second;
  // First piece ending after `begin`; pieces tile [0, numel), so they cover the range in order.
  auto p = std::upper_bound(list.begin(), list.end(), begin, [](int64_t b, const Piece& q) { return b < q.end; });
  for (; p != list.end() && p->begin < end; ++p) {
    const int64_t lo = std::max(begin, p->begin), hi = std::min(end, p->end);
    std::memcpy(dst + (lo - begin) * es, files_[p->rank]->data(*p->info) + (lo - p->begin) * es,
                static_cast<size_t>((hi - lo) * es));
  }
  return out;
}

at::Tensor ShardedCheckpointReader::read(const std::string& name, const std::string& kind) const {
  const TensorSpec& spec = tensor(name);
  int64_t numel = 1;
  for (int64_t d : spec.shape) numel *= d;
  return read_range(name, kind, 0, numel).view(spec.shape);
}

}  // namespace mp
