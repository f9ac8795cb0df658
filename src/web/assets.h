// The web console's pages, script, stylesheet and icon, embedded in the
// binary at build time from the real files under src/web/assets/
// (cmake/embed_assets.cmake writes them into a generated source): nothing
// is read from disk or fetched from the network at run time.
#pragma once

#include <span>
#include <string_view>

namespace media_sync::web {

struct Asset {
  std::string_view name;          // file name under src/web/assets/: "app.js"
  std::string_view content_type;  // from its extension
  std::string_view body;
};

// Every embedded file, sorted by name. The views point into static storage.
std::span<const Asset> EmbeddedAssets();

// The asset of that name, or nullptr.
const Asset* FindAsset(std::string_view name);

}  // namespace media_sync::web
