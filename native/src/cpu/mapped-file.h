// A read-only memory mapping of a whole file (safetensors weights stay in the page cache, never copied).
#pragma once
#include <cstddef>
#include <string>

namespace tslora::cpu {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws NativeError (code "corrupt_file" / "not_found")
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t sizeBytes() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tslora::cpu
